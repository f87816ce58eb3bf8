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


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready to take traffic: the database answers and its schema is at the code's migration head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from pro_service.migrate import alembic_config

    rt = runtime()
    try:
        with rt.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        return jsonify({"status": "unavailable", "failing": ["database"], "detail": type(exc).__name__}), 503
    head = ScriptDirectory.from_config(alembic_config(rt.settings.DATABASE_URL)).get_current_head()
    if current != head:
        detail = f"schema at {current}, code expects {head}: run `pro-service db upgrade`"
        return jsonify({"status": "unavailable", "failing": ["schema"], "detail": detail}), 503
    return jsonify({"status": "ready", "schema": current}), 200
