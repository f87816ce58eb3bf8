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
# nor make the other replies stored with it wait (web/inbound_store.py).
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


def make_ingest_engine(settings: Settings) -> Engine:
    """The inbound webhook's own autocommit pool (PostgreSQL). Its inserts run one at a time per process
    (concurrent replies share one: web/inbound_store.py), so one connection serves it; the overflow covers a
    replacement while a dead one is dropped. Every wait on the server is bounded by
    WEBHOOK_DB_TIMEOUT_SECONDS, so a lock held by a migration or a hung server gives a 503 in seconds,
    not a webhook thread stuck for minutes: the statement timeout covers lock waits and a slow server, TCP
    keepalives and the user timeout a server that stopped answering at all."""
    timeout_ms = int(settings.WEBHOOK_DB_TIMEOUT_SECONDS * 1000)
    # connect_args replace the URL's own `options` (a search_path, say): keep them. (Behind PgBouncer, list
    # `options` in its ignore_startup_parameters.)
    url_options = make_url(settings.DATABASE_URL).query.get("options") or ""
    connect_args = {
        "connect_timeout": 5,
        "options": f"{url_options} -c statement_timeout={timeout_ms}".strip(),
        "keepalives": 1,
        "keepalives_idle": max(1, timeout_ms // 2000),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": timeout_ms,
    }
    return make_engine(
        settings.DATABASE_URL,
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=2,
        connect_args=connect_args,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
