"""`Idempotency-Key`: a client retrying a write (a lost answer, a timeout) sends the same key, and gets the
first answer again instead of a second patient or a second alert action.

A key belongs to the token that sent it; its request is fingerprinted (method, path, body), so the same key
on a different request is refused rather than answered with something unrelated. The remembered answer is
written in the caller's transaction: it is kept exactly when the write it describes is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.models import IdempotencyKey
from pro_service.services.errors import ServiceError

MAX_KEY_LENGTH = 200
MAX_PATH_LENGTH = 300  # the column's width


class KeyReused(ServiceError):
    """The key was sent before with a different request."""

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for a different request")


@dataclass(frozen=True)
class Replay:
    """The first answer to a request: its status, its JSON body (None: it had none) and its path."""

    status: int
    response: Any
    path: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method} {path} ".encode() + body).hexdigest()


def replay(session: Session, *, token_id: int, key: str, request_hash: str) -> Replay | None:
    """The remembered answer to this key (None: a first request). Raises KeyReused for another request."""
    stored = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key)
    )
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise KeyReused()
    return Replay(stored.status_code, stored.response, stored.path)


def remember(
    session: Session,
    *,
    token_id: int,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    status: int,
    response: Any,
    now: datetime,
) -> None:
    """Keep the answer for a retry. A concurrent request with the same key fails at commit on the unique
    (token, key) constraint: the caller answers it as a conflict to retry."""
    session.add(
        IdempotencyKey(
            token_id=token_id,
            key=key,
            method=method,
            path=path[:MAX_PATH_LENGTH],
            request_hash=request_hash,
            status_code=status,
            response=response,
            created_at=now,
        )
    )
