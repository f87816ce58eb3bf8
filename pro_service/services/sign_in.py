"""Password sign-in in equal time: every answer costs exactly one argon2 verification, whatever the
account's state (no such email, wrong password, deactivated, no password because it signs in by single
sign-on, throttled), so the time a refusal takes says nothing about the account (issue 15, item 11).

The hash verified when there is no usable one is made with the same parameters as real ones
(services/staff.py's PasswordHasher defaults).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from pro_service.models import StaffSession, StaffUser
from pro_service.services import mfa, sessions
from pro_service.services.audit import record, record_kept

_hasher = PasswordHasher()
_DUMMY_PASSWORD = "not a real password, equalises timing"  # noqa: S105  (hashed to waste time)
_DUMMY_HASH = _hasher.hash(_DUMMY_PASSWORD)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def password_matches(staff: StaffUser | None, password: str) -> bool:
    """True only for an active account whose password this is. One verification on every path: a
    deactivated account's password is still checked (and then refused), a missing account or a missing
    password verifies a dummy hash."""
    stored = staff.password_hash if staff is not None else None
    ok = _verify(stored or _DUMMY_HASH, password if stored else _DUMMY_PASSWORD + "x")
    return ok and stored is not None and staff is not None and staff.active


def spend_equal_time() -> None:
    """The same work as a sign-in, for a refusal that needs no password check (the throttle)."""
    _verify(_DUMMY_HASH, _DUMMY_PASSWORD + "x")


# --- use cases: each owns its transaction (the views keep only the cookie) ----------------------------------
def begin_session(
    session: Session, staff: StaffUser, *, user_agent: str, ip: str, via: str, now: datetime, **detail: Any
) -> tuple[StaffSession, str]:
    """A signed-in person's server-side session, recorded: (the row, the token the cookie carries)."""
    live, token = sessions.start(session, staff, user_agent=user_agent, ip=ip, now=now)
    record(
        session,
        actor=f"staff:{staff.id}",
        action="sign_in",
        subject=("staff", staff.id),
        ip=ip,
        detail={"session": live.id, "via": via, **detail},
    )
    session.commit()
    return live, token


def second_step(
    session: Session, staff: StaffUser, code: str, *, secret_key: str, ip: str, now: datetime
) -> bool:
    """The code after the password: True when right and unused (its time step is used up for good);
    otherwise the failure is recorded and nothing else changes."""
    if mfa.verify(session, staff, code, secret_key):
        session.commit()
        return True
    record_refusal(session, staff.id, ip=ip, now=now, factor="totp")
    return False


def record_refusal(
    session: Session, staff_id: int | None, *, ip: str | None, now: datetime, **detail: Any
) -> None:
    """A refused sign-in (password, code or single sign-on), audited in its own transaction: the refusal
    is answered with a 4xx, which rolls the request back, and this row must stay. Nothing else of the
    attempt is kept."""
    session.rollback()
    record_kept(
        session,
        actor="anonymous",
        action="sign_in_failed",
        subject=("staff", staff_id),
        ip=ip,
        at=now,
        detail=detail or None,
    )
