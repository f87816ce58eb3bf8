"""Test harness: real PostgreSQL and Redis, a real Celery worker, a local Twilio-compatible server.

Each test process (`make test` runs two, with pytest-xdist) creates its own PostgreSQL database (migrated with
Alembic) and claims its own Redis dbs (testsupport/redis_dbs.py). The tables are emptied before every test.
Tests that drive services and the app in-process are marked `rolled_back`: each runs inside one transaction
rolled back after it. Tests a real worker, a web server on a port, a browser or a second connection must see
commit (testsupport/database.py says which tests can be which). Rows a test needs but does not test come from
the factories (testsupport/factories.py).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from pro_service.models import utcnow

# Shared with the benchmarks (testsupport/); tests import them from here too.
from testsupport import redis_dbs
from testsupport.database import empty_tables, rolled_back
from testsupport.ports import free_port
from testsupport.signing import Signer, inbound_sms
from testsupport.waiting import wait_for
from testsupport.workers import WORKER_READY, CeleryProcess, dies_with_parent, worker_args

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
METRICS_TOKEN = "test-metrics-token-0123456789"  # Prometheus' bearer token for /metrics


def run_concurrently(step: Callable[[], Any], threads: int = 4, timeout: float = 60.0) -> list[Any]:
    """Start `threads` threads at the same instant, each running `step` once; their results (in no order).
    An exception in any thread is re-raised here; a thread still running after `timeout` fails the test."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(10)
            results.append(step())
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout)
    assert not any(t.is_alive() for t in started), f"a thread was still running after {timeout}s"
    if errors:
        raise errors[0]
    return results


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The code-quality checks (mypy alone takes about 20 s cold) run first: last, one of pytest-xdist's two
    # processes sat idle while the other finished them.
    items.sort(key=lambda item: not item.nodeid.startswith("tests/test_code_quality.py"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"pro_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); run `make test`", returncode=3)
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    from pro_service.migrate import upgrade

    upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _redis_dbs() -> Iterator[list[str]]:
    """Two Redis dbs claimed by this test process alone (each pytest-xdist worker is one), emptied first:
    the one its Celery worker listens to, and one no worker listens to."""
    try:
        with redis_dbs.claimed(REDIS_BASE, 2) as urls:
            yield urls
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_BASE} ({exc}); run `make test`", returncode=3)


@pytest.fixture(scope="session")
def redis_url(_redis_dbs: list[str]) -> str:
    return _redis_dbs[0]


@pytest.fixture(scope="session")
def unheard_redis_url(_redis_dbs: list[str]) -> str:
    """A Redis db no worker listens to: what is published there stays queued for a test to read."""
    return _redis_dbs[1]


@pytest.fixture(scope="session")
def twilio_server() -> Iterator[Any]:
    from dev.twilio_server import TwilioServer, TwilioServerState

    server = TwilioServer(TwilioServerState(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN), port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def web_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def settings_env(pg_url: str, redis_url: str, twilio_server: Any, web_port: int) -> dict[str, str]:
    """The environment of the real processes (worker, web) — the same names an operator sets."""
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 16,
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": twilio_server.url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "SWEEP_STUCK_AFTER_SECONDS": "1",
        "SEND_RATE_PER_SECOND": "50",
        "CLINIC_PHONE": "+1 555 0100",
        "BEAT_TICK_SECONDS": "3600",
        # Most end-to-end tests speak questionnaire v1 (ruleset 2), which stays supported for patients not
        # yet moved; tests of v2 / ruleset 3 enrol on it explicitly (tests/integration/test_ruleset_v3.py).
        "ENROL_RULESET_VERSION": "2",
        # Sign-in helpers use a password only; tests/integration/test_totp.py turns the second factor on.
        "MFA_REQUIRED_ROLES": "",
        "METRICS_TOKEN": METRICS_TOKEN,
    }


@pytest.fixture(scope="session")
def settings(settings_env: dict[str, str]) -> Any:
    from config.settings import Settings

    return Settings(**settings_env)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app(settings: Any) -> Any:
    from pro_service import create_app

    flask_app = create_app(settings)
    flask_app.testing = True
    return flask_app


@pytest.fixture(scope="session")
def rt(app: Any) -> Iterator[Any]:
    from pro_service import runtime_of

    runtime = runtime_of(app)
    yield runtime
    runtime.dispose()


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before each integration test: empty the tables and clear the Twilio server; a test marked
    `rolled_back` then runs inside one transaction rolled back after it (testsupport/database.py)."""
    if "pg_url" not in request.fixturenames and not request.node.get_closest_marker("integration"):
        yield
        return
    rt_ = request.getfixturevalue("rt")
    server = request.getfixturevalue("twilio_server")
    wait_until_broker_idle(request.getfixturevalue("redis_url"))

    # Ids keep growing across tests (no RESTART IDENTITY): a late task from an earlier test finds no row.
    def truncated() -> bool:
        try:
            with rt_.engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                empty_tables(conn)
        except OperationalError:
            return False  # a worker task still holds a lock; try again
        return True

    wait_for(truncated, timeout=30, interval=0.2, message="tables to be emptied")
    server.state.clear()
    rt_.clock = utcnow
    if not _rolled_back(request.node):
        yield
        return
    in_process = [rt_]
    if "unheard_rt" in request.fixturenames:
        in_process.append(request.getfixturevalue("unheard_rt"))
    with rolled_back(*in_process):
        yield


def _rolled_back(item: pytest.Item) -> bool:
    """Marked `rolled_back` (a module usually is) and not `commits(reason)` (a test of it that cannot be)."""
    return item.get_closest_marker("rolled_back") is not None and item.get_closest_marker("commits") is None


WORKER_RUNNING = threading.Event()


def wait_until_broker_idle(url: str, timeout: float = 30.0) -> None:
    """Between tests: with the worker running, wait until no task is queued and none is taken but
    unacknowledged (acks_late), so the next test starts quiet; without it, drop what earlier tests queued."""
    from pro_service.queue import QUEUES

    client = redis.Redis.from_url(url)
    try:
        if not WORKER_RUNNING.is_set():
            client.delete(*QUEUES)
            return

        def idle() -> bool:
            return sum(client.llen(q) for q in QUEUES) == 0 and client.hlen("unacked") == 0

        wait_for(idle, timeout=timeout, message="the worker to finish the previous test's tasks")
    finally:
        client.close()


@pytest.fixture(scope="session")
def unheard_app(settings: Any, unheard_redis_url: str) -> Iterator[Any]:
    """The same database, but tasks go to a Redis db no worker listens to: for tests that drive the
    services step by step in-process. The session's worker (when a test started it) still polls the
    database for stored replies (workers/wake.py): wait for a reply to be processed by either."""
    from pro_service import create_app, runtime_of

    flask_app = create_app(settings.model_copy(update={"REDIS_URL": unheard_redis_url}))
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


@pytest.fixture(scope="session")
def unheard_rt(unheard_app: Any) -> Any:
    from pro_service import runtime_of

    return runtime_of(unheard_app)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def signer(settings: Any) -> Signer:
    return Signer(settings.PUBLIC_BASE_URL, settings.webhook_auth_token)


@pytest.fixture
def sms(client: Any, signer: Signer) -> Callable[..., Any]:
    """Deliver an inbound SMS to the webhook as Twilio would, signed."""

    def send(from_: str, body: str, sid: str | None = None, **extra: str) -> Any:
        params = inbound_sms(from_, body, account_sid=ACCOUNT_SID, to=FROM_NUMBER, sid=sid, **extra)
        return client.post("/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params))

    return send


@pytest.fixture
def admin_token(rt: Any) -> str:
    """An integration client with every scope: what an administrator's token could do before tokens had
    owners (issue 15), audited as `client:test-admin (token N)`."""
    from pro_service.services.tokens import SCOPES, create_token

    with rt.unit_of_work() as session:
        return create_token(
            session, requested_by="operator", name="test-admin", client="test-admin", scopes=SCOPES
        ).token


@pytest.fixture
def nurse_token(rt: Any) -> str:
    """The token of a nurse who belongs to no care team: nurse-role routes, no patient."""
    from pro_service.models import StaffRole, StaffUser
    from pro_service.services.tokens import create_token

    with rt.unit_of_work() as session:
        nurse = StaffUser(email="token-nurse@test.local", name="Token Nurse", role=StaffRole.NURSE)
        session.add(nurse)
        session.flush()
        return create_token(session, requested_by="operator", name="test-nurse", staff=nurse.id).token


@pytest.fixture
def api(client: Any, admin_token: str) -> Callable[..., Any]:
    def call(method: str, path: str, json: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or admin_token}"}
        return client.open(path, method=method, json=json, headers=headers)

    return call


@pytest.fixture(scope="session")
def live_server(app: Any, web_port: int) -> Iterator[str]:
    """The app on a real port, so the Twilio server's status callbacks reach it."""
    server = make_server("127.0.0.1", web_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{web_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def worker(settings_env: dict[str, str], rt: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process, started with the documented command and settings. It dies with this
    test session, even one killed with SIGKILL (see testsupport.workers.dies_with_parent)."""
    proc = CeleryProcess(
        worker_args(f"test-{os.getpid()}"),
        settings_env,
        ROOT / "var" / f"test-worker-{os.getpid()}.log",
        WORKER_READY,
        prefix=dies_with_parent(),
    )
    WORKER_RUNNING.set()
    yield proc.proc
    WORKER_RUNNING.clear()
    proc.stop()
