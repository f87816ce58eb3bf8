"""Fault tests run on their OWN PostgreSQL cluster and Redis server (started here, on free ports, in a
temporary directory) so they can crash, stop and freeze them without touching the machine's shared ones."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    LiveServer,
    PrivatePostgres,
    PrivateRedis,
    Stack,
    free_port,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: crash, stop and freeze private PostgreSQL/Redis/workers (make faults)"
    )


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[Stack]:
    import psycopg

    from config.settings import Settings
    from dev.twilio_server import TwilioServer, TwilioServerState
    from pro_service import create_app, runtime_of
    from pro_service.migrate import upgrade

    base = Path(tempfile.mkdtemp(prefix="pro-faults-"))
    base.chmod(0o755)  # the postgres OS user must reach its directory inside
    pg = PrivatePostgres(base)
    redis_server = PrivateRedis(base)
    twilio = TwilioServer(TwilioServerState(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN), port=0)
    live: LiveServer | None = None
    rt = None
    try:
        pg.init()
        pg.start()
        with psycopg.connect(pg.url().replace("+psycopg", ""), autocommit=True, connect_timeout=5) as admin:
            admin.execute('CREATE DATABASE "pro_faults"')
        upgrade(pg.url("pro_faults"))
        redis_server.start()
        twilio.start()
        web_port = free_port()
        env = {
            "DATABASE_URL": pg.url("pro_faults"),
            "REDIS_URL": redis_server.url,
            "SECRET_KEY": "fault-secret-key-" + "x" * 16,
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_API_BASE_URL": twilio.url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "SWEEP_STUCK_AFTER_SECONDS": "1",
            "SEND_RATE_PER_SECOND": "50",
            "BROKER_TIMEOUT_SECONDS": "1",
            "BEAT_TICK_SECONDS": "3600",
            "CLINIC_PHONE": "+1 555 0100",
            "ENROL_RULESET_VERSION": "2",  # the fault scripts answer questionnaire v1
            "MFA_REQUIRED_ROLES": "",  # password sign-in only (the second factor has its own tests)
            # No quiet hours: the tests run at whatever time of day the machine is at.
            "QUIET_HOURS_START": "00:00",
            "QUIET_HOURS_END": "00:00",
        }
        settings = Settings(**env)  # type: ignore[arg-type]
        app = create_app(settings)
        rt = runtime_of(app)
        live = LiveServer(app, web_port)
        stack = Stack(
            base=base,
            pg=pg,
            redis=redis_server,
            twilio=twilio,
            env=env,
            settings=settings,
            app=app,
            rt=rt,
            web_url=f"http://127.0.0.1:{web_port}",
        )
        yield stack
        for proc in stack.processes:
            proc.stop()
    finally:
        if live is not None:
            live.stop()
        if rt is not None:
            rt.dispose()
        twilio.stop()
        redis_server.stop()
        if pg.running():
            pg.stop("immediate")
        if os.environ.get("PRO_FAULTS_KEEP"):
            print(f"fault-test logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stack(fault_stack: Stack) -> Iterator[Stack]:
    fault_stack.reset()
    yield fault_stack
    for proc in fault_stack.processes:
        proc.stop()
    fault_stack.processes.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One process runs every fault test, so the private cluster and Redis start once (pytest-xdist).
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("faults"))
