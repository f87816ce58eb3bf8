"""Helpers every blueprint uses: the runtime, a request-scoped session, JSON errors."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pro_service.runtime import Runtime


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["pro"]
    return rt


def db() -> Session:
    """One session per request, closed at teardown. Only services decide when to commit."""
    if "db_session" not in g:
        g.db_session = runtime().sessions()
    session: Session = g.db_session
    return session


def json_error(status: int, error: str, detail: Any = None) -> ResponseReturnValue:
    return jsonify({"error": error, "detail": detail}), status
