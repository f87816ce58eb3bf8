"""`pro-service run`: the whole service on one machine with no servers to install.

SQLite for data, Celery on an SQLite-backed broker (kombu's SQLAlchemy transport) for the queue, and the
outbox SMS gateway. The worker runs the same task code as production, with beat embedded (`-B`), in a child
process; the web runs in this one. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from werkzeug.serving import make_server

from config.settings import ROOT, Settings


def seeds_demo(settings: Settings, demo: bool | None) -> bool:
    """Whether `pro-service run` seeds the demo accounts (a published admin password, a demo token):
    `--demo` / `--no-demo` when given, otherwise only on the embedded default (SQLite, outbox, no Redis)."""
    return settings.embedded_default if demo is None else demo


def prepare(settings: Settings, demo: bool | None) -> list[str]:
    """Before serving: the schema at head, and the demo seeded when `seeds_demo` says so. Returns what to
    print (the demo's logins and token, or why there are none)."""
    from pro_service.demo import refusal, seed
    from pro_service.migrate import upgrade
    from pro_service.runtime import Role, build_runtime

    upgrade(settings.DATABASE_URL)
    if not seeds_demo(settings, demo):
        return [
            "no demo data seeded: this is not the embedded default (SQLite, outbox, no Redis); "
            "`pro-service run --demo` seeds it"
        ]
    refused = refusal(settings.SMS_BACKEND)
    if refused:
        return [f"no demo data seeded: {refused}"]
    rt = build_runtime(settings, Role.CLI)
    try:
        return list(seed(rt))
    finally:
        rt.dispose()


def run_all(settings: Settings, host: str, port: int, *, demo: bool | None = None) -> int:
    from pro_service import create_app
    from pro_service.queue import embedded_data_dir

    data_dir = embedded_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    for line in prepare(settings, demo):
        print(line)
    seeded = seeds_demo(settings, demo)

    env = {**os.environ, "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL}
    env.setdefault("BEAT_TICK_SECONDS", "10")
    worker = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-B",
            "--pool=solo",
            "--loglevel=WARNING",
            "-s",
            str(data_dir / "celerybeat-schedule"),
        ],
        cwd=ROOT,
        env=env,
    )
    app = create_app(settings)
    server = make_server(host, port, app, threaded=True)
    print(f"\npro-service is running at http://{host}:{port}/  (Ctrl-C to stop)")
    if seeded:
        print(f"  triage queue (sign in as the nurse above): http://{host}:{port}/")
        print(f"  patient-phone simulator:                   http://{host}:{port}/simulator/")
    print(f"  health:   http://{host}:{port}/healthz")
    if seeded:
        print(f"  API:      http://{host}:{port}/api/v1/instruments  (Authorization: Bearer <token above>)")
    print()

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0
