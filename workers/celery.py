"""The Celery entrypoint: `celery -A workers worker` / `celery -A workers beat`.

It builds the same app as the web (create_app, from the environment) and attaches the tasks; this is the
one place where building at import is right, because Celery's command line imports it to find the app.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from pro_service import create_app, runtime_of

flask_app = create_app()
runtime = runtime_of(flask_app)
app = runtime.celery

from workers import tasks  # noqa: E402  (registers the tasks on `app`)

tasks.register(app, runtime)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's database connections.
    runtime.engine.dispose(close=False)
