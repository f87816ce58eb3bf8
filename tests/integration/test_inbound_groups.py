"""Webhooks stored together (ingest/store.py) on PostgreSQL: one statement for a group, and each
request still learns its own row, its sender and whether it was a repeat; arrival order is kept; a message
the server refuses costs only its own request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from pro_service.ingest.store import DatabaseUnavailable, GroupInsert, PostgresRows, Rows
from pro_service.models import Message, MessageKind
from pro_service.services.inbound import Stored, inbound_values
from tests.conftest import ACCOUNT_SID, FROM_NUMBER, run_concurrently
from tests.integration.helpers import call_wsgi, make_nurse, make_patient, make_team, signed_sms_environ
from tests.unit.test_group_insert import queue_behind_first

pytestmark = pytest.mark.integration

PATIENT, OTHER_PATIENT, NURSE, STRANGER = "+15551230001", "+15551230002", "+15557770001", "+15559990000"
HELD_SID = "SM" + "4e1d" * 8  # through the webhook: a MessageSid in Twilio's format


class HeldFirstInsert:
    """The real PostgresRows; its first call waits for `release`, so requests queue behind it."""

    def __init__(self, rows: PostgresRows) -> None:
        self.rows = rows
        self.groups: list[int] = []
        self.first_call = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: Rows) -> list[Stored | Exception]:
        self.groups.append(len(batch))
        if len(self.groups) == 1:
            self.first_call.set()
            assert self.release.wait(10)
        return self.rows(batch)


def form(sid: str, sender: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender, "To": FROM_NUMBER, "Body": body}


@pytest.fixture
def people(rt: Any) -> dict[str, int]:
    team = make_team(rt)
    return {
        PATIENT: make_patient(rt, team),
        OTHER_PATIENT: make_patient(rt, team, phone=OTHER_PATIENT, mrn="MRN002"),
        NURSE: make_nurse(rt, team),
    }


@pytest.fixture
def held(rt: Any) -> Iterator[tuple[HeldFirstInsert, GroupInsert]]:
    held = HeldFirstInsert(PostgresRows(rt.ingest_engine))
    yield held, GroupInsert(held, rt)
    held.release.set()


def rows_by_sid(rt: Any) -> dict[str, Message]:
    with rt.sessions() as session:
        return {
            m.twilio_sid: m for m in session.scalars(select(Message).where(Message.direction == "inbound"))
        }


def test_a_group_is_one_statement_and_each_request_gets_its_own_row(
    rt: Any, people: dict[str, int], held: tuple[HeldFirstInsert, GroupInsert]
) -> None:
    gate, store = held
    earlier = GroupInsert(PostgresRows(rt.ingest_engine), rt)(form("SMold", PATIENT, "7"))
    assert earlier.message_id  # delivered again below
    later = [
        form("SM1", PATIENT, "1"),
        form("SM2", NURSE, "ACK A7"),
        form("SM3", STRANGER, "who is this?"),
        form("SMold", PATIENT, "7"),  # a repeat delivery
        form("SM4", PATIENT, "3"),
        form("SM5", OTHER_PATIENT, "no"),
    ]
    outcomes = queue_behind_first(gate, store, later)  # type: ignore[arg-type]
    assert gate.groups == [1, 6]  # the held insert, then all six in one statement

    stored = rows_by_sid(rt)
    assert outcomes["SMold"] == Stored(None, None, None)
    assert len(stored) == 7  # SMfirst, SMold once, SM1–SM5
    for sid, sender in [("SM1", PATIENT), ("SM2", NURSE), ("SM3", STRANGER), ("SM4", PATIENT)]:
        assert outcomes[sid].message_id == stored[sid].id
        assert stored[sid].from_number == sender
    assert (outcomes["SM1"].patient_id, outcomes["SM1"].staff_id) == (people[PATIENT], None)
    assert (outcomes["SM2"].patient_id, outcomes["SM2"].staff_id) == (None, people[NURSE])
    assert (outcomes["SM3"].patient_id, outcomes["SM3"].staff_id) == (None, None)
    assert outcomes["SM5"].patient_id == people[OTHER_PATIENT]
    kinds = {sid: stored[sid].kind for sid in ("SM1", "SM2", "SM3")}
    assert kinds == {
        "SM1": MessageKind.REPLY,
        "SM2": MessageKind.STAFF_REPLY,
        "SM3": MessageKind.UNKNOWN_SENDER,
    }
    # Arrival order is the order a worker reads a patient's replies in: "1" before "3".
    assert stored["SM1"].id < stored["SM4"].id
    assert [stored[s].id for s in ("SM1", "SM2", "SM3", "SM4", "SM5")] == sorted(
        stored[s].id for s in ("SM1", "SM2", "SM3", "SM4", "SM5")
    )


def test_a_message_the_server_refuses_costs_only_its_own_request(
    rt: Any, people: dict[str, int], held: tuple[HeldFirstInsert, GroupInsert]
) -> None:
    gate, store = held
    with rt.ingest_engine.connect() as connection:  # autocommit engine
        connection.execute(text("ALTER TABLE messages ADD CONSTRAINT test_refused CHECK (body <> 'refused')"))
    try:
        later = [form("SM1", PATIENT, "1"), form("SM2", PATIENT, "refused"), form("SM3", PATIENT, "3")]
        outcomes = queue_behind_first(gate, store, later)  # type: ignore[arg-type]
    finally:
        with rt.ingest_engine.connect() as connection:
            connection.execute(text("ALTER TABLE messages DROP CONSTRAINT test_refused"))
    assert isinstance(outcomes["SM2"], DatabaseUnavailable)  # the webhook answers 503 for it alone
    stored = rows_by_sid(rt)
    assert sorted(stored) == ["SM1", "SM3", "SMfirst"]
    assert outcomes["SM1"].message_id == stored["SM1"].id and outcomes["SM3"].message_id == stored["SM3"].id


def test_concurrent_signed_webhooks_are_each_stored_once(
    app: Any, rt: Any, people: dict[str, int], signer: Any
) -> None:
    """The real handler, 8 threads × 25 webhooks: every MessageSid stored once, every answer 200."""
    counter = iter(range(10_000))
    lock = threading.Lock()

    def post_many() -> list[str]:
        statuses = []
        for _ in range(25):
            with lock:
                n = next(counter)
            params = form(f"SM{n:032x}", PATIENT if n % 2 else OTHER_PATIENT, str(n % 10))
            statuses.append(call_wsgi(app, signed_sms_environ(signer, params))[0])
        return statuses

    results = run_concurrently(post_many, threads=8)
    assert [status for statuses in results for status in statuses] == ["200 OK"] * 200
    stored = rows_by_sid(rt)
    assert sorted(stored) == sorted(f"SM{n:032x}" for n in range(200))
    assert all(
        m.patient_id == people[PATIENT if int(sid[2:], 16) % 2 else OTHER_PATIENT]
        for sid, m in stored.items()
    )


def test_a_timeout_answers_503_and_those_queued_behind_it_at_once(
    settings: Any, rt: Any, people: dict[str, int]
) -> None:
    """A lock (a migration, say) longer than WEBHOOK_DB_TIMEOUT_SECONDS: the statement is cancelled, its
    request answers 503, and so do those queued behind it, at once: none waits out the timeout again (and
    past Twilio's 15 s), and none is retried row by row."""
    from pro_service.db import make_ingest_engine

    engine = make_ingest_engine(settings.model_copy(update={"WEBHOOK_DB_TIMEOUT_SECONDS": 0.3}))
    rows = PostgresRows(engine)
    statements: list[int] = []
    execute = rows._execute

    def counted(batch: Rows) -> Any:
        statements.append(len(batch))
        return execute(batch)

    rows._execute = counted  # type: ignore[method-assign]
    gate = HeldFirstInsert(rows)
    store = GroupInsert(gate, rt)
    try:
        with engine.connect() as locker:  # autocommit: the lock is held until the explicit COMMIT below
            locker.exec_driver_sql("BEGIN")
            locker.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            later = [form("SM1", PATIENT, "1"), form("SM2", PATIENT, "2"), form("SM3", PATIENT, "3")]
            outcomes = queue_behind_first(gate, store, later)  # type: ignore[arg-type]
            # A group that meets the lock itself: cancelled once, not retried row by row.
            group = rows([inbound_values(form(f"SMg{i}", PATIENT, "1"), rt.now()) for i in range(3)])
            locker.exec_driver_sql("COMMIT")
        assert all(isinstance(outcomes[sid], DatabaseUnavailable) for sid in ("SMfirst", "SM1", "SM2", "SM3"))
        assert [type(outcome) for outcome in group] == [DatabaseUnavailable] * 3
        assert statements == [1, 3]  # the held one (those queued behind it: none), then the group once
        assert store(form("SM4", PATIENT, "4")).message_id  # the lock is gone: stored again
    finally:
        engine.dispose()


def test_a_worker_holding_a_patient_does_not_hold_up_the_webhook(
    settings: Any, rt: Any, people: dict[str, int], signer: Any
) -> None:
    """A worker serialises a patient's replies with a row lock; the webhook's insert of that patient's next
    reply (and of other patients' replies stored with it) must not wait for it: the foreign-key check
    takes KEY SHARE, which FOR NO KEY UPDATE lets through and FOR UPDATE would not."""
    from sqlalchemy import event

    from pro_service import create_app, runtime_of
    from pro_service.services.inbound import process_patient

    # The lock process_patient takes is the row lock (ROW_LOCK).
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        with rt.unit_of_work() as session:
            process_patient(session, rt, people[PATIENT])
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)
    assert any("FROM patients" in s and "FOR NO KEY UPDATE" in s for s in statements), statements

    app = create_app(settings.model_copy(update={"WEBHOOK_DB_TIMEOUT_SECONDS": 0.5}))
    try:
        with rt.sessions() as worker, worker.begin():  # a worker in the middle of this patient's replies
            worker.execute(
                text("SELECT id FROM patients WHERE id = :id FOR NO KEY UPDATE"), {"id": people[PATIENT]}
            )
            status, _ = call_wsgi(app, signed_sms_environ(signer, form(HELD_SID, PATIENT, "7")))
        assert status == "200 OK"
        assert rows_by_sid(rt)[HELD_SID].patient_id == people[PATIENT]
    finally:
        runtime_of(app).dispose()
