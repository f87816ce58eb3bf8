"""Server-side staff sessions: one row per signed-in browser, so a session can be ended for good.

The cookie (Flask's signed cookie) carries a random token; the row keeps only its SHA-256, so a copy of
the table signs nobody in. Every staff request looks the row up (one indexed read, joined with the
account): an ended row means "sign in again", whatever the cookie says. Logout ends the row, so a copied
cookie is dead; a password change, a reset, a deactivation or an administrator ends all of an account's
rows at once.

`last_seen_at` is for people (the signed-in devices list), not for the idle timer (that is the cookie's
`seen`, checked on every request in `web/auth.py`): it is written at most once a minute per session, not
on every request.

Times are the wall clock (`utcnow`), not the runtime's clock: a session is a real browser, and tests that
move clinical time must not sign their nurse out.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pro_service.models import StaffSession, StaffUser

TOUCH_EVERY = timedelta(minutes=1)

# Why a session ended (stored in `ended_reason`) and what the person is told at the sign-in page.
REASONS = {
    "signed_out": "You are signed out.",
    "signed_out_elsewhere": "You were signed out from another device.",
    "password_changed": "Your password was changed. Please sign in again.",
    "password_reset": "Your password was reset by an administrator. Please sign in again.",
    "deactivated": "Your account was deactivated.",
    "ended_by_admin": "An administrator ended your sessions. Please sign in again.",
    "time_limit": "Your session reached its time limit. Please sign in again.",
    "idle": "You were signed out after a time without activity, to protect patient data.",
    "replaced": "You signed in again on this browser.",
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def password_stamp(staff: StaffUser) -> str:
    """A fingerprint of the password hash: a session opened under another password is over, whichever
    code path set the new one."""
    return hashlib.sha256((staff.password_hash or "").encode("utf-8")).hexdigest()[:16]


def is_current(record: StaffSession, staff: StaffUser) -> bool:
    return record.password_stamp == password_stamp(staff)


def restamp(session: Session, session_id: int, staff: StaffUser) -> None:
    """The session that changed the password goes on under the new one."""
    record = session.get(StaffSession, session_id)
    if record is not None and record.staff_id == staff.id:
        record.password_stamp = password_stamp(staff)


def start(
    session: Session, staff: StaffUser, *, user_agent: str | None, ip: str | None, now: datetime
) -> tuple[StaffSession, str]:
    """A new session for `staff`: the row and the token for the cookie (never stored in clear)."""
    token = secrets.token_urlsafe(32)
    record = StaffSession(
        token_hash=hash_token(token),
        staff_id=staff.id,
        created_at=now,
        last_seen_at=now,
        user_agent=summarise_user_agent(user_agent),
        ip=(ip or None) and ip[:64],
        password_stamp=password_stamp(staff),
    )
    session.add(record)
    session.flush()
    return record, token


def find(session: Session, token: str) -> tuple[StaffSession, StaffUser] | None:
    """The session row for a cookie's token and its account, ended or not (one query)."""
    row = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.staff_id)
        .where(StaffSession.token_hash == hash_token(token))
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def needs_touch(record: StaffSession, now: datetime) -> bool:
    return now - record.last_seen_at >= TOUCH_EVERY


def touch(session: Session, record: StaffSession, now: datetime) -> bool:
    """Record activity at most once a minute (the caller commits when this says True)."""
    if record.ended_at is not None or not needs_touch(record, now):
        return False
    record.last_seen_at = now
    return True


def end(session: Session, record: StaffSession, reason: str, now: datetime) -> None:
    if record.ended_at is None:
        record.ended_at, record.ended_reason = now, reason


# --- use cases that keep their write whatever the request answers (a guard's 401 rolls the request back) ---
def end_now(session: Session, record: StaffSession, reason: str, now: datetime) -> None:
    """End one session for good, in its own transaction: the refusal that follows (a 401, a redirect to
    sign-in) must not bring a timed-out or deactivated session back."""
    if record.ended_at is None:
        end(session, record, reason, now)
        session.commit()


def touch_now(session: Session, record: StaffSession, now: datetime) -> None:
    """Record activity (at most once a minute) in its own transaction, whatever the page then answers."""
    if touch(session, record, now):
        session.commit()


def end_all(
    session: Session, staff_id: int, reason: str, now: datetime, *, except_id: int | None = None
) -> int:
    """End every live session of an account (but `except_id`, the one asking); how many ended."""
    query = update(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
    if except_id is not None:
        query = query.where(StaffSession.id != except_id)
    result = session.execute(
        query.values(ended_at=now, ended_reason=reason).execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def live(session: Session, staff_id: int, now: datetime, max_age: timedelta) -> list[StaffSession]:
    """An account's sessions that can still be used (not ended, within the hard limit), newest first."""
    return list(
        session.scalars(
            select(StaffSession)
            .where(
                StaffSession.staff_id == staff_id,
                StaffSession.ended_at.is_(None),
                StaffSession.created_at > now - max_age,
            )
            .order_by(StaffSession.last_seen_at.desc(), StaffSession.id.desc())
        )
    )


def end_one(session: Session, staff_id: int, session_id: int, reason: str, now: datetime) -> bool:
    """End one of the account's own sessions (False: not theirs, or already ended)."""
    record = session.get(StaffSession, session_id)
    if record is None or record.staff_id != staff_id or record.ended_at is not None:
        return False
    end(session, record, reason, now)
    return True


_BROWSERS = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def summarise_user_agent(user_agent: str | None) -> str | None:
    """A summary such as "Firefox on Windows": enough to recognise a device, not a fingerprint of it."""
    if not user_agent:
        return None
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    words = re.sub(r"[^\w./ -]", "", user_agent)[:60].strip()
    return browser or system or words or None
