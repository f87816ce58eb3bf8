"""The Celery entrypoint: `celery -A workers worker` / `celery -A workers beat`.

It wires a worker runtime (build_runtime, role worker, from the environment) and attaches the tasks; this is
the one place where building at import is right, because Celery's command line imports it to find the app.
No Flask app: a worker inherits none of the web's choices. In particular it publishes follow-up tasks inline,
after its commit and before the task is acknowledged, so a worker killed after a commit loses no page.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, worker_process_init

from config.settings import load_settings
from pro_service import observability
from pro_service.metrics import TASK_DURATION, TASK_FAILURES
from pro_service.runtime import Role, build_runtime

_settings = load_settings()
observability.configure_logging(_settings.LOG_LEVEL)
runtime = build_runtime(_settings, Role.WORKER)
runtime.lexicon  # noqa: B018  (load the symptom vocabulary now: in the parent, shared by forked children)
app = runtime.celery
if runtime.settings.REDIS_URL:
    # A consumer waits out a frozen Redis instead of timing out mid-ack: a timed-out ack leaks the prefetch
    # slot and the worker stops fetching for good (tests/faults). Short timeouts stay on the web side,
    # where a request must never hang; keepalive still detects a dead peer.
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "socket_timeout": 120,
        "socket_keepalive": True,
    }

from workers import tasks, wake  # noqa: E402  (registers the tasks on `app`)

tasks.register(app, runtime)
wake.install(app, runtime)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's database connections.
    runtime.dispose(close=False)


_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id: str, task: Any, **_: Any) -> None:
    began = _started.pop(task_id, None)
    if began is not None:
        TASK_DURATION.labels(task.name).observe(time.perf_counter() - began)


@task_failure.connect
def _task_failed(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()
