"""Liveness and readiness: 200 when the database and the broker answer, 503 naming the one that does not."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from pro_service.web.common import runtime

bp = Blueprint("health", __name__)


def _check_database() -> str | None:
    try:
        with runtime().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    return None


def _check_broker() -> str | None:
    rt = runtime()
    try:
        with rt.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=rt.settings.BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return type(exc).__name__
    return None


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    problems = {
        name: err for name, err in (("database", _check_database()), ("broker", _check_broker())) if err
    }
    if problems:
        return jsonify({"status": "unavailable", "failing": sorted(problems), "detail": problems}), 503
    return jsonify({"status": "ok"}), 200
