"""How the inbound webhook stores a message: committed (and on disk) before Twilio gets its 200.

PostgreSQL: `GroupInsert` over `PostgresRows`. Webhooks that arrive in one web process while its previous
insert is in flight are stored together: one statement and one commit for all of them, and each request
still answers only after its own row is committed. Group commit, done by the client: on a 2-core machine
the per-request round trip and WAL flush were most of PostgreSQL's CPU (kernel time, not SQL) and a third of
the web's, so a busy process pays them once per group instead of once per reply
(benchmarks/bench_ingest.py). An idle process sends each message alone, at once: nothing waits to fill a
group. SQLite (the embedded default), or INBOUND_GROUP_COMMIT=false: `SqlAlchemyInsert`, each message in its
own single-row transaction (the simple reference path the group path must agree with).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pro_service.metrics import INBOUND_GROUP_SIZE
from pro_service.runtime import Runtime
from pro_service.services.inbound import (
    INSERT_INBOUND,
    INSERT_INBOUND_ROWS_PG,
    Stored,
    inbound_values,
    store_inbound,
)

Form = Mapping[str, str]
Store = Callable[[Form], Stored]

# A group is whatever queued while the previous insert ran; at most this many rows go in one statement.
MAX_GROUP = 64


class DatabaseUnavailable(Exception):
    """The message could not be stored: answer 503 (Twilio logs it; reconciliation fetches it later)."""


class MessageRefused(DatabaseUnavailable):
    """PostgreSQL refused this message's own row (a constraint, a value): 503 for it alone."""


def make_store(rt: Runtime) -> Store:
    if rt.ingest_engine.dialect.name == "postgresql" and rt.settings.INBOUND_GROUP_COMMIT:
        return GroupInsert(PostgresRows(rt.ingest_engine), rt)
    return SqlAlchemyInsert(rt.ingest_engine, rt)


class SqlAlchemyInsert:
    """INSERT_INBOUND through SQLAlchemy, one message per transaction (SQLite, or group commit off)."""

    def __init__(self, engine: Engine, rt: Runtime) -> None:
        self.engine = engine
        self.rt = rt

    def __call__(self, form: Form) -> Stored:
        for attempt in (1, 2):
            try:
                with self.engine.begin() as connection:
                    return store_inbound(connection, form, self.rt.now())
            except PoolTimeout as exc:
                raise DatabaseUnavailable(type(exc).__name__) from exc
            except IntegrityError as exc:  # a conflict other than a repeated MessageSid
                raise MessageRefused(type(exc).__name__) from exc
            except OperationalError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise DatabaseUnavailable(type(exc).__name__) from exc
        raise AssertionError("unreachable")


Rows = list[dict[str, Any]]


class PostgresRows:
    """INSERT_INBOUND_ROWS_PG for a group of messages on a raw psycopg connection from an autocommit pool:
    one round trip, committed when it returns. Returns each row's outcome, in order.

    SQLAlchemy's Connection and Result machinery cost about 40 % of this route's database CPU, so the
    statement runs on the driver; the pool (checkout, return, invalidation) stays SQLAlchemy's.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dbapi = engine.dialect.loaded_dbapi
        self.cannot_connect: type[Exception] = dbapi.OperationalError
        self.driver_error: type[Exception] = dbapi.Error  # any error the server sends
        # Errors about a row's values, and a deadlock with another process's group over the same
        # MessageSids: the rows can still be stored one by one.
        self.row_errors: tuple[type[Exception], ...] = (
            dbapi.IntegrityError,
            dbapi.DataError,
            dbapi.errors.DeadlockDetected,
        )
        # One message (an idle process, or a group of one): the single-row statement, which costs both
        # sides less than the array form (%(name)s placeholders, with ::JSON casts).
        self.one_row_sql = INSERT_INBOUND.compile(dialect=engine.dialect).string

    def __call__(self, rows: Rows) -> list[Stored | Exception]:
        try:
            returned = self._execute(rows)
        except _RowRefused as refused:
            if len(rows) == 1:
                return [MessageRefused(str(refused))]
            # One message the server refuses must not cost the others theirs: each on its own.
            return [self([row])[0] for row in rows]
        except DatabaseUnavailable as exc:
            return [DatabaseUnavailable(str(exc)) for _ in rows]
        # A MessageSid not returned was already stored (a repeat delivery). Rows without a MessageSid are
        # only ever sent alone (GroupInsert), so their one returned row is theirs.
        repeat = Stored(None, None, None)
        if len(rows) == 1:
            return [Stored(*returned[0][:3]) if returned else repeat]
        by_sid = {row[3]: Stored(*row[:3]) for row in returned}
        return [by_sid.get(row["twilio_sid"], repeat) for row in rows]

    def _execute(self, rows: Rows) -> Sequence[Any]:
        sql, params = self._statement(rows)
        # After a PostgreSQL restart every idle pooled connection is dead (there is no pre-ping): drop each
        # one found dead and try the next, at most pool-size times, then a fresh connection.
        for _ in range(self.engine.pool.size() + 1):  # type: ignore[attr-defined]
            try:
                connection = self.engine.raw_connection()
            except (self.cannot_connect, PoolTimeout) as exc:  # cannot connect, or no pooled connection free
                raise DatabaseUnavailable(type(exc).__name__) from exc
            try:
                cursor = connection.cursor()
                cursor.execute(sql, params)
                returned = cursor.fetchall()
                cursor.close()
                return returned
            except self.driver_error as exc:
                if getattr(connection.dbapi_connection, "broken", True):
                    connection.invalidate(exc)  # closed, never handed to another request
                    continue
                if isinstance(exc, self.row_errors):
                    raise _RowRefused(type(exc).__name__) from exc
                # Anything else (a statement timeout, the server shutting down) would fail each row alone too.
                raise DatabaseUnavailable(type(exc).__name__) from exc
            finally:
                connection.close()  # back to the pool (a no-op after invalidate)
        raise DatabaseUnavailable("no live connection to PostgreSQL")

    def _statement(self, rows: Rows) -> tuple[str, dict[str, Any]]:
        media = [None if row["media"] is None else json.dumps(row["media"]) for row in rows]
        if len(rows) == 1:
            return self.one_row_sql, {**rows[0], "media": media[0]}
        columns = ("from_number", "to_number", "body", "num_media", "twilio_sid", "now")
        params: dict[str, Any] = {column: [row[column] for row in rows] for column in columns}
        params["media"] = media
        return INSERT_INBOUND_ROWS_PG, params


class _RowRefused(Exception):
    """PostgreSQL refused the statement for a row's values (a constraint, a value out of range)."""


class _Waiting:
    """One request's message, queued for a group. `gate` is released when its outcome is set or when it is
    handed the lead."""

    __slots__ = ("gate", "lead", "outcome", "row")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.lead = False  # handed the lead (set under GroupInsert's lock)
        self.outcome: Stored | Exception | None = None  # set once, by whoever ran its group
        self.gate = threading.Lock()
        self.gate.acquire()

    def result(self) -> Stored:
        if self.outcome is None:
            raise RuntimeError("no outcome")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class GroupInsert:
    """Stores each request's message; concurrent requests in this process share one insert (leader and
    followers). The first request to find no insert running leads: it takes the queue (itself first, at
    most MAX_GROUP, in arrival order), runs one insert, releases the followers with their outcomes, and
    hands the lead to the first request that queued meanwhile, so no request ever waits for more than the
    insert in flight plus its own. When a whole group fails for want of the database (an outage, a
    timeout), the requests queued behind it answer 503 at once rather than wait out the same failure.
    """

    def __init__(self, rows: Callable[[Rows], list[Stored | Exception]], rt: Runtime) -> None:
        self.rows = rows
        self.rt = rt
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False  # invariant: the queue is not empty only while someone leads

    def __call__(self, form: Form) -> Stored:
        me = _Waiting(inbound_values(form, self.rt.now()))
        with self._lock:
            self._queue.append(me)
            lead, self._leading = not self._leading, True
        if not lead:
            try:
                me.gate.acquire()  # released with an outcome, or to lead (then `me` is first in the queue)
            except BaseException:
                self._leave(me)  # e.g. a timeout signal: never strand the lead, nor those queued behind
                raise
            if me.outcome is not None:
                return me.result()
        unavailable = False
        try:
            group = self._take()
            self._run(group)
            unavailable = all(_outage(waiting.outcome) for waiting in group)
        finally:
            with self._lock:
                if unavailable:
                    self._fail_queued()
                self._pass_lead()
        return me.result()

    @property
    def queued(self) -> int:
        """Messages waiting for a group (not counting one being inserted)."""
        with self._lock:
            return len(self._queue)

    def _pass_lead(self) -> None:
        """To the first request queued, or to nobody (call with the lock held)."""
        if self._queue:
            self._queue[0].lead = True
            self._queue[0].gate.release()
        else:
            self._leading = False

    def _fail_queued(self) -> None:
        """The database just failed a whole group: everyone queued answers 503 now (lock held)."""
        for waiting in self._queue:
            waiting.outcome = DatabaseUnavailable("the group before failed")
            waiting.gate.release()
        self._queue = []

    def _leave(self, me: _Waiting) -> None:
        """A queued request gives up (an exception while it waited): out of the queue, and the lead passed
        on if it had just been handed to it."""
        with self._lock:
            if not any(waiting is me for waiting in self._queue):
                return  # already in a group, or failed: its outcome simply goes unread
            self._queue = [waiting for waiting in self._queue if waiting is not me]
            if me.lead:
                self._pass_lead()

    def _take(self) -> list[_Waiting]:
        """The next group: queued messages in arrival order. A MessageSid twice (a retried delivery) or a
        message without one stays for a later group, so each returned row names exactly one request."""
        group: list[_Waiting] = []
        sids: set[str] = set()
        with self._lock:
            for waiting in self._queue:
                sid = waiting.row["twilio_sid"]
                if len(group) == MAX_GROUP or (group and sid is None):
                    break
                if sid in sids:
                    continue
                group.append(waiting)
                if sid is None:
                    break
                sids.add(sid)
            taken = set(map(id, group))
            self._queue = [waiting for waiting in self._queue if id(waiting) not in taken]
        return group

    def _run(self, group: list[_Waiting]) -> None:
        outcomes: list[Stored | Exception] = []
        try:
            outcomes = self.rows([waiting.row for waiting in group])
        except Exception as exc:  # a bug, not the database: every request in the group answers 500
            outcomes = [RuntimeError(f"group insert failed: {type(exc).__name__}") for _ in group]
            raise
        finally:
            # Every follower is released whatever happened above, and before anything else can fail.
            try:
                for i, waiting in enumerate(group):
                    waiting.outcome = outcomes[i] if i < len(outcomes) else RuntimeError("no outcome")
            finally:
                for waiting in group[1:]:  # the leader (first) is running this
                    waiting.gate.release()
            INBOUND_GROUP_SIZE.observe(len(group))


def _outage(outcome: Stored | Exception | None) -> bool:
    return isinstance(outcome, DatabaseUnavailable) and not isinstance(outcome, MessageRefused)
