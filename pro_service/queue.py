"""The broker side of the app: a Celery instance configured from settings, and enqueue-after-commit.

The web only *publishes* tasks by name (it never imports `workers`). The database is the source of truth:
anything published is also a row with a status, and a beat sweep re-publishes what the broker lost, so a
publish that fails is logged and dropped, never retried inside a request.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from config.settings import ROOT, Settings

log = logging.getLogger(__name__)

QUEUES = ("ingest", "send", "score", "notify", "beat")
ROUTES = {
    "pro.process_inbound": "ingest",
    "pro.process_staff_inbound": "ingest",
    "pro.send_message": "send",
    "pro.score_check_in": "score",
    "pro.tick": "beat",
    "pro.reconcile_inbound": "beat",
    "pro.deliver_event": "notify",
}


def broker_url(settings: Settings) -> str:
    if settings.REDIS_URL:
        return settings.REDIS_URL
    # Embedded default: Celery's SQLAlchemy transport on a SQLite file, so no server is needed.
    return f"sqla+sqlite:///{ROOT / 'var' / 'celery-broker.sqlite3'}"


def _transport_options(settings: Settings) -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {}
    timeout = settings.BROKER_TIMEOUT_SECONDS
    # A frozen Redis must not hang a webhook: fail fast, the sweep re-publishes later. The visibility
    # timeout bounds how long an unacked task waits before redelivery (tasks are idempotent).
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_retries": 0,
        "visibility_timeout": 3600,
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("pro_service", set_as_current=False)
    timeout = settings.BROKER_TIMEOUT_SECONDS
    app.conf.update(
        broker_url=broker_url(settings),
        broker_connection_timeout=timeout,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings),
        task_publish_retry=False,
        task_ignore_result=True,
        task_acks_late=True,
        # With acks_late alone a worker child killed by SIGKILL loses its task.
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="beat",
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        beat_schedule={
            "tick": {"task": "pro.tick", "schedule": settings.BEAT_TICK_SECONDS, "options": {"expires": 60}},
            "reconcile-inbound": {
                "task": "pro.reconcile_inbound",
                "schedule": settings.RECONCILE_EVERY_SECONDS,
                "options": {"expires": 300},
            },
        },
        timezone="UTC",
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app


class TaskQueue:
    """Publishes tasks by name, optionally deferred until the current transaction commits."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def publish(self, name: str, *args: Any) -> bool:
        try:
            self.celery.send_task(name, args=list(args), retry=False)
        except Exception:  # the broker is down or slow; the sweep will publish it again
            log.warning("publish failed; the sweep will retry", extra={"task": name, "task_args": args})
            return False
        return True

    def after_commit(self, session: Session, name: str, *args: Any) -> None:
        pending: list[tuple[str, tuple[Any, ...]]] = session.info.setdefault("pro_pending_tasks", [])
        if (name, args) not in pending:
            pending.append((name, args))

    def install(self, factory: sessionmaker[Session]) -> None:
        """Publish each session's deferred tasks once its transaction has committed."""

        @event.listens_for(factory, "after_commit")
        def _publish(session: Session) -> None:
            for name, args in session.info.pop("pro_pending_tasks", []):
                self.publish(name, *args)

        @event.listens_for(factory, "after_soft_rollback")
        def _forget(session: Session, _previous: Any) -> None:
            session.info.pop("pro_pending_tasks", None)
