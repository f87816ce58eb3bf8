"""Engine and session factory. One session per web request and per Celery task; nothing at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings

# How rows are locked to serialise work on them (a patient's replies, an alert's life cycle): FOR NO KEY
# UPDATE, not FOR UPDATE. Two such locks still exclude each other, but a foreign-key check (KEY SHARE)
# passes: the webhook's insert of one patient's reply must not wait for a worker that holds that patient,
# nor make the other replies stored with it wait (ingest/store.py).
ROW_LOCK: dict[str, Any] = {"key_share": True}


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # The embedded default shares one file between web, worker and beat: wait for locks, don't fail.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; we emit BEGIN ourselves (see below)
            # so that SELECT ... FOR UPDATE-style serialisation holds on SQLite too.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: one writer at a time, no upgrade deadlocks.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip on every checkout (a fifth of the webhook's time). A connection
    # found dead invalidates the whole pool, so after a PostgreSQL restart one request per process fails
    # (the webhook retries it once, see web/twilio.py; tasks are re-published by the sweep).
    kwargs.setdefault("pool_pre_ping", False)
    # An unreachable server fails a connect in 5 s, not after the operating system's TCP timeout (minutes):
    # a webhook answers 503 and a worker's poll backs off instead of hanging.
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def bounded_connect_args(url: str, timeout_seconds: float) -> dict[str, Any]:
    """libpq settings under which no wait on PostgreSQL outlasts `timeout_seconds`: a statement timeout
    (lock waits, a slow server), TCP keepalives (an idle connection to a host that vanished) and the user
    timeout (a request the server never acknowledges). Without them a thread whose server went silent
    waits for the operating system's TCP timeout, about 15 minutes."""
    timeout_ms = int(timeout_seconds * 1000)
    # connect_args replace the URL's own `options` (a search_path, say): keep them, after ours, so that an
    # operator's own statement_timeout there wins. (PgBouncer drops `options`: docs/deployment.md.)
    url_options = make_url(url).query.get("options") or ""
    if not isinstance(url_options, str):  # the parameter given twice
        url_options = " ".join(url_options)
    return {
        "connect_timeout": 5,
        "options": f"-c statement_timeout={timeout_ms} {url_options}".strip(),
        "keepalives": 1,
        "keepalives_idle": max(1, timeout_ms // 2000),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": timeout_ms,
    }


def make_main_engine(settings: Settings) -> Engine:
    """The engine of every session: web requests, Celery tasks, beat, the CLI (not migrations, which run
    on their own engine and may take longer). On PostgreSQL each wait is bounded by
    DB_STATEMENT_TIMEOUT_SECONDS: a request or task stuck behind a lock or a silent server fails (a 503,
    a task the sweep publishes again) instead of holding a thread for minutes."""
    if make_url(settings.DATABASE_URL).get_backend_name() != "postgresql":
        return make_engine(settings.DATABASE_URL)
    return make_engine(
        settings.DATABASE_URL,
        connect_args=bounded_connect_args(settings.DATABASE_URL, settings.DB_STATEMENT_TIMEOUT_SECONDS),
    )


def make_ingest_engine(settings: Settings) -> Engine:
    """The inbound webhook's own autocommit pool (PostgreSQL). Its inserts run one at a time per process
    (concurrent replies share one: ingest/store.py), so one connection serves it; the overflow covers a
    replacement while a dead one is dropped. Every wait on the server is bounded by the shorter
    WEBHOOK_DB_TIMEOUT_SECONDS, so a lock held by a migration or a hung server gives a 503 in seconds,
    well inside the 15 s after which Twilio gives up. With INBOUND_GROUP_COMMIT off every request holds a
    connection for its own insert: up to 16, gunicorn's threads per process (mind PostgreSQL's
    max_connections: processes x 16 more), and a request waits for one no longer than the same bound."""
    grouped = settings.INBOUND_GROUP_COMMIT
    return make_engine(
        settings.DATABASE_URL,
        isolation_level="AUTOCOMMIT",
        pool_size=1 if grouped else 8,
        max_overflow=2 if grouped else 8,
        pool_timeout=settings.WEBHOOK_DB_TIMEOUT_SECONDS,
        connect_args=bounded_connect_args(settings.DATABASE_URL, settings.WEBHOOK_DB_TIMEOUT_SECONDS),
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The unit of work of a task, a CLI command or a sweep: one session and one transaction, committed
    when the block ends, rolled back if it raises, always closed. (A web request's is web/unit_of_work.py.)
    Work that must commit part way (a claim before a send) opens one unit of work per step
    (services/outbound.py)."""
    with factory() as session, session.begin():
        yield session
