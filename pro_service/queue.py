"""The broker side of the app: a Celery instance configured from settings, and enqueue-after-commit.

The web only *publishes* tasks by name (it never imports `workers`). The database is the source of truth:
anything published is also a row with a status, and a beat sweep re-publishes what the broker lost, so a
publish that fails is logged and dropped, never retried inside a request.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue
from sqlalchemy import event, make_url
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


def embedded_data_dir(settings: Settings) -> Path:
    """The embedded default's folder: the SQLite database's (`var/` unless DATABASE_URL moves it). Its broker
    and beat schedule live there, so two instances on different databases never share a queue."""
    database = make_url(settings.DATABASE_URL).database if settings.is_sqlite else None
    if not database or database == ":memory:":
        return ROOT / "var"
    return Path(database).parent


def broker_url(settings: Settings) -> str:
    if settings.REDIS_URL:
        return settings.REDIS_URL
    # Embedded default: Celery's SQLAlchemy transport on a SQLite file, so no server is needed.
    return f"sqla+sqlite:///{embedded_data_dir(settings) / 'celery-broker.sqlite3'}"


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


Job = tuple[str, tuple[Any, ...], str | None]  # task name, arguments, queue (None: the task's route)


class TaskQueue:
    """Publishes tasks by name, deferred until the current transaction commits.

    In the web process (`background=True`) the publish happens on a daemon thread, off the request: the
    webhook answers as soon as its row is committed. A publish lost there (a crash, a full buffer, Redis
    down) is found again by the beat sweep, which re-publishes rows stuck longer than
    SWEEP_STUCK_AFTER_SECONDS. Workers publish inline, inside the commit and before their task is
    acknowledged, so a worker killed after committing loses no follow-up (Role.WORKER in build_runtime).
    """

    BUFFER = 10_000

    def __init__(self, celery: Celery, *, background: bool = False) -> None:
        self.celery = celery
        self.background = background
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=self.BUFFER)
        self._thread_pid: int | None = None
        self._lock = threading.Lock()

    def publish(self, name: str, *args: Any, queue_name: str | None = None) -> bool:
        try:
            options = {"queue": queue_name} if queue_name else {}
            self.celery.send_task(name, args=list(args), retry=False, **options)
        except Exception:  # the broker is down or slow; the sweep will publish it again
            log.warning("publish failed; the sweep will retry", extra={"task": name, "task_args": args})
            return False
        return True

    def after_commit(self, session: Session, name: str, *args: Any, queue_name: str | None = None) -> None:
        pending: list[Job] = session.info.setdefault("pro_pending_tasks", [])
        if (name, args, queue_name) not in pending:
            pending.append((name, args, queue_name))

    def _submit(self, job: Job) -> None:
        if not self.background:
            self.publish(job[0], *job[1], queue_name=job[2])
            return
        self._ensure_thread()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            log.warning("publish buffer full; the sweep will publish it", extra={"task": job[0]})

    def _ensure_thread(self) -> None:
        # After a fork (gunicorn workers) the parent's thread does not exist in the child: start one per pid.
        if self._thread_pid == os.getpid():
            return
        with self._lock:
            if self._thread_pid != os.getpid():
                self._jobs = queue.Queue(maxsize=self.BUFFER)
                threading.Thread(target=self._drain, name="pro-publisher", daemon=True).start()
                self._thread_pid = os.getpid()

    def _drain(self) -> None:
        while True:
            name, args, queue_name = self._jobs.get()
            try:
                self.publish(name, *args, queue_name=queue_name)
            except Exception:  # never let one bad publish stop the thread (the sweep covers the task)
                log.exception("publisher thread error", extra={"task": name})

    def install(self, factory: sessionmaker[Session]) -> None:
        """Publish each session's deferred tasks once its transaction has committed."""

        @event.listens_for(factory, "after_commit")
        def _publish(session: Session) -> None:
            # SQLAlchemy fires after_commit when a SAVEPOINT is released too (begin_nested, as upsert_alert
            # uses): publishing then would let a worker race rows the outer transaction has not committed
            # (a safety text found "not queued" and left for the sweep). Only the outermost commit publishes.
            if session.in_nested_transaction():
                return
            for job in session.info.pop("pro_pending_tasks", []):
                self._submit(job)

        @event.listens_for(factory, "after_soft_rollback")
        def _forget(session: Session, previous: Any) -> None:
            if getattr(previous, "nested", False):
                return  # a savepoint rolled back; the outer transaction (and its tasks) goes on
            session.info.pop("pro_pending_tasks", None)
