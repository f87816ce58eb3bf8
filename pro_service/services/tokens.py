"""API tokens: shown once, stored as a SHA-256 hash (a token is 256 random bits, so no slow hash needed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.models import ApiToken, StaffRole, utcnow

PREFIX = "pro_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str


def create_token(session: Session, *, name: str, role: StaffRole) -> NewToken:
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=_hash(token), prefix=token[:10])
    session.add(row)
    session.flush()
    return NewToken(row.id, token)


def authenticate(session: Session, token: str) -> ApiToken | None:
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
