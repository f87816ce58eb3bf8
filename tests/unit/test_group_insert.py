"""GroupInsert: concurrent webhooks in one process share an insert, and each still gets its own outcome.

The database is replaced by a recording function here, so the grouping itself is checked exactly: who
leads, what a group holds, in which order, and that nobody waits for ever. tests/integration/
test_inbound_groups.py runs the same class against PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from pro_service.ingest.store import MAX_GROUP, DatabaseUnavailable, GroupInsert, Rows
from pro_service.services.inbound import Stored
from tests.conftest import wait_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def now(self) -> datetime:
        return NOW


class Database:
    """Stores rows like INSERT_INBOUND_ROWS_PG (a MessageSid already stored is a repeat); the first call
    blocks until `release` is set, so the test can queue requests behind an insert in flight."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str | None]] = []
        self.sids: set[str] = set()
        self.next_id = 1
        self.first_call = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, rows: Rows) -> list[Stored | Exception]:
        self.groups.append([row["twilio_sid"] for row in rows])
        if len(self.groups) == 1:
            self.first_call.set()
            assert self.release.wait(10)
        if self.fail_on is not None and any(row["body"] == self.fail_on for row in rows):
            raise RuntimeError("a bug in the insert")
        out: list[Stored | Exception] = []
        for row in rows:
            if row["twilio_sid"] in self.sids:
                out.append(Stored(None, None, None))
                continue
            if row["twilio_sid"] is not None:
                self.sids.add(row["twilio_sid"])
            out.append(Stored(self.next_id, 7, None))
            self.next_id += 1
        return out


def form(sid: str | None, body: str = "yes") -> dict[str, str]:
    fields = {"From": "+15551230001", "To": "+15550001111", "Body": body}
    return {**fields, "MessageSid": sid} if sid else fields


def queue_behind_first(db: Database, store: GroupInsert, later: list[dict[str, str]]) -> dict[str, Any]:
    """Send one message, hold its insert, queue `later` one by one (in this order) behind it, release;
    returns each MessageSid's outcome (or exception)."""
    outcomes: dict[str, Any] = {}

    def send(f: dict[str, str]) -> None:
        try:
            outcomes[f.get("MessageSid", f["Body"])] = store(f)
        except Exception as exc:  # collected for the test to look at
            outcomes[f.get("MessageSid", f["Body"])] = exc

    threads = [threading.Thread(target=send, args=(form("SMfirst"),))]
    threads[0].start()
    assert db.first_call.wait(10)
    for i, f in enumerate(later, start=1):
        threads.append(threading.Thread(target=send, args=(f,)))
        threads[-1].start()
        wait_for(lambda i=i: store.queued == i, timeout=10, message=f"{i} queued")
    db.release.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a request never got its outcome"
    return outcomes


def test_an_idle_process_inserts_each_message_alone_at_once() -> None:
    db = Database()
    db.release.set()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    assert store(form("SM1")) == Stored(1, 7, None)
    assert store(form("SM2")) == Stored(2, 7, None)
    assert db.groups == [["SM1"], ["SM2"]]


def test_messages_that_arrive_during_an_insert_share_the_next_one_in_arrival_order() -> None:
    db = Database()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    outcomes = queue_behind_first(db, store, [form(f"SM{i}") for i in range(1, 6)])
    assert db.groups == [["SMfirst"], ["SM1", "SM2", "SM3", "SM4", "SM5"]]
    # Each request learned its own row, numbered in arrival order.
    assert [outcomes[f"SM{i}"].message_id for i in range(1, 6)] == [2, 3, 4, 5, 6]
    assert store.queued == 0


def test_a_group_is_at_most_max_group_and_the_rest_follows() -> None:
    db = Database()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    outcomes = queue_behind_first(db, store, [form(f"SM{i}") for i in range(MAX_GROUP + 3)])
    assert [len(group) for group in db.groups] == [1, MAX_GROUP, 3]
    assert all(isinstance(outcome, Stored) and outcome.message_id for outcome in outcomes.values())


def test_a_repeated_message_sid_waits_for_the_next_group_and_is_answered_as_a_repeat() -> None:
    db = Database()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    later = [form("SMa"), form("SMb"), {**form("SMa"), "Body": "yes (again)"}, form("SMc")]
    queue_behind_first(db, store, later)
    assert db.groups == [["SMfirst"], ["SMa", "SMb", "SMc"], ["SMa"]]
    # Both deliveries of SMa answered; only one row exists (the repeat's outcome is "already stored").
    assert sorted(db.sids) == ["SMa", "SMb", "SMc", "SMfirst"]


def test_a_message_without_a_sid_is_inserted_alone_so_its_row_is_unambiguous() -> None:
    db = Database()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    queue_behind_first(db, store, [form("SM1"), form(None, body="no sid"), form("SM2")])
    assert db.groups == [["SMfirst"], ["SM1"], [None], ["SM2"]]


def test_a_failing_insert_fails_every_request_in_its_group_and_the_next_ones_still_work() -> None:
    db = Database(fail_on="boom")
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    outcomes = queue_behind_first(db, store, [form("SM1"), form("SM2", body="boom"), form("SM3")])
    assert all(isinstance(outcomes[sid], RuntimeError) for sid in ("SM1", "SM2", "SM3"))
    assert store(form("SM4")) == Stored(2, 7, None)  # nobody holds the lead any more


def test_database_unavailable_reaches_the_request() -> None:
    def down(rows: Rows) -> list[Stored | Exception]:
        return [DatabaseUnavailable("down") for _ in rows]

    with pytest.raises(DatabaseUnavailable):
        GroupInsert(down, Clock())(form("SM1"))  # type: ignore[arg-type]


def test_when_the_database_fails_a_whole_group_those_queued_behind_it_answer_at_once() -> None:
    calls: list[int] = []
    release = threading.Event()
    first_call = threading.Event()

    class Down:
        def __init__(self) -> None:
            self.first_call, self.release = first_call, release

        def __call__(self, rows: Rows) -> list[Stored | Exception]:
            calls.append(len(rows))
            first_call.set()
            assert release.wait(10)
            return [DatabaseUnavailable("timeout") for _ in rows]

    down = Down()
    store = GroupInsert(down, Clock())  # type: ignore[arg-type]
    outcomes = queue_behind_first(down, store, [form("SM1"), form("SM2")])  # type: ignore[arg-type]
    assert all(isinstance(outcome, DatabaseUnavailable) for outcome in outcomes.values())
    assert calls == [1]  # SM1 and SM2 did not wait out a second failure
    assert store.queued == 0


class Interrupted(BaseException):
    """Stands in for an exception delivered to a waiting thread (a signal, a green-thread timeout)."""


class InterruptedGate:
    """A gate whose blocking acquire raises: before acquiring (`after=False`) or just after (`after=True`,
    i.e. the lead was handed over and the exception arrived before the thread could act on it)."""

    def __init__(self, after: bool) -> None:
        self.lock = threading.Lock()
        self.after = after

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking:
            return self.lock.acquire(False)
        if self.after:
            self.lock.acquire()
        raise Interrupted

    def release(self) -> None:
        self.lock.release()


@pytest.mark.parametrize("after", [False, True], ids=["while-waiting", "just-handed-the-lead"])
def test_a_request_interrupted_while_queued_strands_nobody(
    after: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pro_service.ingest import store as inbound_store

    db = Database()
    store = GroupInsert(db, Clock())  # type: ignore[arg-type]
    outcomes: dict[str, Any] = {}

    def send(f: dict[str, str]) -> None:
        try:
            outcomes[f["MessageSid"]] = store(f)
        except BaseException as exc:  # collected for the test to look at
            outcomes[f["MessageSid"]] = exc

    first = threading.Thread(target=send, args=(form("SMfirst"),))
    first.start()
    assert db.first_call.wait(10)
    real_init = inbound_store._Waiting.__init__

    def interrupted_init(self: Any, row: dict[str, Any]) -> None:
        real_init(self, row)
        self.gate = InterruptedGate(after)
        self.gate.lock.acquire()

    monkeypatch.setattr(inbound_store._Waiting, "__init__", interrupted_init)
    interrupted = threading.Thread(target=send, args=(form("SMint"),))
    interrupted.start()
    if not after:
        interrupted.join(10)  # it gave up at once
    else:
        wait_for(lambda: store.queued == 1, timeout=10, message="the interrupted request queued")
    monkeypatch.setattr(inbound_store._Waiting, "__init__", real_init)
    later = threading.Thread(target=send, args=(form("SMlater"),))
    later.start()
    wait_for(lambda: store.queued == (1 if not after else 2), timeout=10, message="SMlater queued")
    db.release.set()
    for thread in (first, interrupted, later):
        thread.join(10)
    assert not any(t.is_alive() for t in (first, interrupted, later)), "a request was stranded"
    assert isinstance(outcomes["SMint"], Interrupted)
    assert outcomes["SMlater"] == Stored(2, 7, None)
    assert db.groups == [["SMfirst"], ["SMlater"]]
    assert store(form("SMnext")) == Stored(3, 7, None)  # the lead is free again
