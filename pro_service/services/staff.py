"""Staff accounts: argon2 password hashes, E.164 phones for pages, the password rules, temporary passwords
that must be changed, and the account changes that end every session (services/sessions.py).

Password rules (NIST SP 800-63B: length and a blocklist, no composition rules): at least 12 characters; not
one of the 20,000 most common breached passwords, nor one of them with digits or symbols added around it;
not containing the email's name or the product's name; not a password this project publishes (the demo's).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pro_service.models import OnCallShift, StaffRole, StaffUser
from pro_service.services import mfa, sessions
from pro_service.services.audit import record
from pro_service.services.errors import Conflict, Invalid
from pro_service.services.patients import EnrolmentError, normalise_phone

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
# Spellings of the product's name: the first word an attacker tries on a site.
PRODUCT_NAMES = ("proservice", "pro-service", "pro service", "pro_service")
# Passwords this project prints for anyone to read (demo.DEMO_PASSWORD): only the demo seed may use them.
PUBLISHED_PASSWORDS = frozenset({"demo-password-123"})


class StaffError(Invalid):
    """A staff-account value that cannot be accepted. Raised as StaffError(field, message), or in its older
    form StaffError("field: message"); either way str() is "field: message"."""

    def __init__(self, field: str, message: str | None = None) -> None:
        if message is None:
            field, _, message = field.partition(": ")
        super().__init__(field, message)


class AccountExists(Conflict):
    """The email already has an account: a clash with what exists, not a bad value (the API's 409). Shown
    at the form's email field and printed, like a StaffError, as "email: ..."."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} already has an account", field="email")

    def __str__(self) -> str:
        return f"email: {self.message}"


def staff_phone(session: Session, staff: StaffUser | None, raw: str | None) -> str | None:
    """A staff member's pager number, normalised (blank: none). EnrolmentError for a number that is not
    one; Conflict when another account has it (a page must reach one person)."""
    if not raw or not raw.strip():
        return None
    phone = normalise_phone(raw)
    others = select(StaffUser.id).where(StaffUser.phone == phone)
    if staff is not None:
        others = others.where(StaffUser.id != staff.id)
    if session.scalar(others) is not None:
        raise Conflict("another staff member has this phone", field="phone")
    return phone


def create_staff(
    session: Session,
    *,
    email: str,
    name: str,
    role: StaffRole,
    phone: str | None,
    password: str | None,
    must_change_password: bool = False,
    enforce_policy: bool = True,
) -> StaffUser:
    """`must_change_password`: the password is a temporary one an administrator chose (the person must
    replace it at sign-in). `enforce_policy=False` only for the embedded demo's published accounts."""
    if role == StaffRole.INTEGRATION:
        raise StaffError("role: integration is for API tokens of hospital systems, not for staff accounts")
    email = email.strip().lower()
    if "@" not in email:
        raise StaffError("email: not an email address")
    if session.scalar(select(StaffUser.id).where(func.lower(StaffUser.email) == email)) is not None:
        raise AccountExists(email)
    if password is not None and enforce_policy:
        check_new_password(password, email)
    try:
        phone = staff_phone(session, None, phone)  # a page must reach one person: no shared pager number
    except EnrolmentError as exc:
        raise StaffError(str(exc)) from None
    staff = StaffUser(
        email=email,
        name=name,
        role=role,
        phone=phone or None,
        password_hash=_hasher.hash(password) if password else None,
        must_change_password=must_change_password and bool(password),
    )
    session.add(staff)
    session.flush()
    return staff


def check_password(staff: StaffUser, password: str) -> bool:
    if not staff.password_hash or not staff.active:
        return False
    try:
        return _hasher.verify(staff.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _common_passwords() -> frozenset[str]:
    # Shipped with the package (no network at run time); see "about" in the file for its source.
    text = resources.files("pro_service.services").joinpath("common_passwords.json").read_text("utf-8")
    return frozenset(json.loads(text)["passwords"])


def password_problem(password: str, email: str) -> str | None:
    """Why `password` may not be the password of the account `email` (a sentence for the form), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters"
    lowered = password.lower()
    if lowered in PUBLISHED_PASSWORDS:
        return "this password is published in the demo instructions; choose another"
    common = _common_passwords()
    # "Summer2024!!" is "summer" with the usual padding: as guessable as the word itself.
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered)
    if lowered in common or (len(core) >= 4 and core in common):
        return "this is one of the most common passwords in breaches; choose a longer phrase of your own"
    squashed = re.sub(r"[\W_]+", "", lowered)
    if any(name in lowered for name in PRODUCT_NAMES) or "proservice" in squashed:
        return "must not contain the name of this service"
    local = email.strip().lower().partition("@")[0]
    local_squashed = re.sub(r"[\W_]+", "", local)
    if len(local) >= 3 and (local in lowered or (len(local_squashed) >= 3 and local_squashed in squashed)):
        return "must not contain your email name"
    return None


def check_new_password(password: str, email: str) -> None:
    problem = password_problem(password, email)
    if problem:
        raise StaffError(f"password: {problem}")


def reset_password(session: Session, staff: StaffUser, password: str, *, now: datetime) -> int:
    """An administrator's temporary password (generated, shown once): it must be changed at sign-in, and
    every session of the account ends (how many)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    staff.password_hash = _hasher.hash(password)
    staff.must_change_password = True
    return sessions.end_all(session, staff.id, "password_reset", now)


@dataclass(frozen=True)
class Deactivated:
    sessions_ended: int
    shifts_off_rota: int  # current or future on-call shifts it had (their levels now need someone)


def set_active(session: Session, staff: StaffUser, active: bool, *, now: datetime) -> Deactivated:
    """Activate or deactivate an account. Deactivating ends every session of it and takes it off every
    on-call rota (the rule the rota forms and the API share: no inactive account on a rota), so the rota
    shows the gap instead of a shift whose pages silently go nowhere."""
    staff.active = active
    if active:
        return Deactivated(0, 0)
    ended = sessions.end_all(session, staff.id, "deactivated", now)
    return Deactivated(ended, leave_every_rota(session, staff.id, now))


def leave_every_rota(session: Session, staff_id: int, now: datetime) -> int:
    """A shift in progress ends now and later ones are deleted; how many there were."""
    shifts = session.scalars(
        select(OnCallShift).where(OnCallShift.staff_id == staff_id, OnCallShift.ends_at > now)
    ).all()
    for shift in shifts:
        if shift.starts_at <= now:
            shift.ends_at = now
        else:
            session.delete(shift)
    return len(shifts)


def turn_off_second_factor(
    session: Session, staff_id: int, *, actor: str, ip: str | None, now: datetime
) -> tuple[StaffUser, int]:
    """An administrator turns a colleague's second factor off (a lost or replaced phone), in one recorded
    transaction: every session of the account ends, and if their role requires a second factor they enrol
    a new one at their next sign-in. Returns the person and how many sessions ended."""
    person = session.get(StaffUser, staff_id, with_for_update=True)
    if person is None:
        raise StaffError(f"staff: no staff member {staff_id}")
    had_one = mfa.enrolled(person)
    mfa.reset(person)
    ended = sessions.end_all(session, person.id, "second_factor_reset", now)
    record(
        session,
        actor=actor,
        action="reset_second_factor",
        subject=("staff", person.id),
        detail={"had_second_factor": had_one, "sessions_ended": ended},
        ip=ip,
        at=now,
    )
    session.commit()
    return person, ended


def end_sessions(session: Session, staff: StaffUser, *, now: datetime) -> int:
    """An administrator signs a colleague out everywhere (a lost phone, a shared computer left signed in)."""
    return sessions.end_all(session, staff.id, "ended_by_admin", now)


def change_password(
    session: Session,
    staff: StaffUser,
    *,
    current: str,
    new: str,
    confirm: str,
    keep_session_id: int | None,
    now: datetime,
) -> int:
    """The person changes their own password: the current one is required, the new one follows the rules
    and differs from it; the flag for a temporary password is cleared and every other session ends (how
    many). Errors name the field: "current_password: …", "password: …", "password_confirm: …"."""
    if not check_password(staff, current):
        raise StaffError("current_password: this is not your current password")
    check_new_password(new, staff.email)
    if new != confirm:
        raise StaffError("password_confirm: the two new passwords are not the same")
    if check_password(staff, new):
        raise StaffError("password: choose a password different from the current one")
    staff.password_hash = _hasher.hash(new)
    staff.must_change_password = False
    if keep_session_id is not None:
        sessions.restamp(session, keep_session_id, staff)
    return sessions.end_all(session, staff.id, "password_changed", now, except_id=keep_session_id)
