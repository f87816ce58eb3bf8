"""A second factor for local (password) accounts: time-based one-time codes (TOTP, RFC 6238) from an
authenticator app, with pyotp.

- **Secrets are encrypted at rest** (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from SECRET_KEY
  by HKDF, so a copy of the database alone yields no authenticator. The secret is shown once, on the page
  that starts the enrolment (as text and as an otpauth:// URI), and never again: it is not logged, not in
  the audit, not in any later page. Rotating SECRET_KEY makes enrolled secrets unreadable: each person
  then enrols again (`reset` by an administrator, see docs/security.md).
- **Enrolment** keeps the new secret aside (`totp_pending_secret`) until the person types a code from it:
  a half-finished enrolment never locks anyone out, and a replacement takes effect only when confirmed.
- **No code works twice**: the time step of the last accepted code is stored (`totp_last_step`) and only a
  later step is accepted, by one conditional UPDATE (two requests racing with one code: one wins).
- Codes of the previous and next 30-second step are accepted too (a phone's clock a little off).
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Collection
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from pro_service.models import StaffUser
from pro_service.services import sessions
from pro_service.services.audit import record

ISSUER_NAME = "pro-service"
STEP_SECONDS = 30
WINDOW_STEPS = 1  # the step before and the step after the current one are accepted too


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"pro-service totp secret v1").derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(secret.encode("ascii")).decode("ascii")


def decrypt(token: str, secret_key: str) -> str | None:
    """The secret, or None when it cannot be read (SECRET_KEY rotated, or tampered with)."""
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        return None


def normalise_code(code: str) -> str | None:
    """Six ASCII digits (spaces and a middle dash allowed, as apps show them), or None."""
    digits = code.replace(" ", "").replace("-", "")
    if len(digits) != 6 or not all("0" <= ch <= "9" for ch in digits):
        return None
    return digits


def matching_step(secret: str, code: str, now: float, after: int | None = None) -> int | None:
    """The time step whose code `code` is (current ± WINDOW_STEPS), later than `after`; None if none."""
    digits = normalise_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(now) // STEP_SECONDS
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=email, issuer_name=ISSUER_NAME)


def enrolled(staff: StaffUser) -> bool:
    return staff.totp_confirmed_at is not None and staff.totp_secret is not None


def required(staff: StaffUser, roles: Collection[str]) -> bool:
    """Whether this account's role must use a second factor (MFA_REQUIRED_ROLES)."""
    return str(staff.role) in roles


def start_enrolment(staff: StaffUser, secret_key: str) -> str:
    """A new secret for the person's app (returned in clear, to show once); kept encrypted and pending
    until a code confirms it. An enrolled factor stays in force until then."""
    secret = pyotp.random_base32()
    staff.totp_pending_secret = encrypt(secret, secret_key)
    return secret


def _claim_step(session: Session, staff: StaffUser, step: int) -> bool:
    """Record `step` as used, unless this or a later step was already (one UPDATE: a race has one winner)."""
    result = session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == staff.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def confirm_enrolment(session: Session, staff: StaffUser, code: str, secret_key: str, now: datetime) -> bool:
    """The code from the pending secret turns the second factor on (replacing any earlier one)."""
    pending = decrypt(staff.totp_pending_secret or "", secret_key) if staff.totp_pending_secret else None
    if pending is None:
        return False
    step = matching_step(pending, code, now.timestamp(), after=staff.totp_last_step)
    if step is None or not _claim_step(session, staff, step):
        return False
    staff.totp_secret, staff.totp_pending_secret = staff.totp_pending_secret, None
    staff.totp_confirmed_at = now
    staff.totp_last_step = step
    return True


def verify(session: Session, staff: StaffUser, code: str, secret_key: str, now: float | None = None) -> bool:
    """A sign-in code: right for the enrolled secret and not used before (the caller commits)."""
    if not enrolled(staff):
        return False
    secret = decrypt(staff.totp_secret or "", secret_key)
    if secret is None:
        return False
    step = matching_step(secret, code, time.time() if now is None else now, after=staff.totp_last_step)
    if step is None or not _claim_step(session, staff, step):
        return False
    staff.totp_last_step = step
    return True


def reset(staff: StaffUser) -> None:
    """Turn the second factor off (the person removes it, or an administrator after a lost phone)."""
    staff.totp_secret = staff.totp_pending_secret = None
    staff.totp_confirmed_at = None
    staff.totp_last_step = (
        None  # a new secret's codes owe nothing to the old one's (else its first is refused)
    )


# --- use cases: each owns its transaction (the views only read the form and answer) ------------------------
def begin_enrolment(
    session: Session, staff: StaffUser, *, secret_key: str, actor: str, ip: str | None
) -> str:
    """Start setting up an authenticator (the caller has asked for the password): the new secret, to
    show once; recorded."""
    secret = start_enrolment(staff, secret_key)
    record(session, actor=actor, action="mfa_enrolment_started", subject=("staff", staff.id), ip=ip)
    session.commit()
    return secret


def finish_enrolment(
    session: Session,
    staff: StaffUser,
    code: str,
    *,
    secret_key: str,
    actor: str,
    ip: str | None,
    now: datetime,
    keep_session_id: int,
) -> int | None:
    """The code from the new app turns the factor on and ends every other session of the account (they
    never passed this code), recorded; how many ended. None when the code is wrong (nothing changes)."""
    if not confirm_enrolment(session, staff, code, secret_key, now):
        session.rollback()
        return None
    ended = sessions.end_all(session, staff.id, "second_factor_set", now, except_id=keep_session_id)
    record(
        session,
        actor=actor,
        action="mfa_enrolled",
        subject=("staff", staff.id),
        ip=ip,
        detail={"sessions_ended": ended},
    )
    session.commit()
    return ended


def remove_factor(session: Session, staff: StaffUser, *, actor: str, ip: str | None) -> None:
    """The person turns their own second factor off (their role does not require one), recorded."""
    reset(staff)
    record(session, actor=actor, action="mfa_removed", subject=("staff", staff.id), ip=ip)
    session.commit()
