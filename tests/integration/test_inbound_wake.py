"""Waking workers for stored replies: the webhook never calls the broker; workers claim and publish.

These run on a database of their own: the session's worker polls the shared one and would claim the rows
these tests count.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from pro_service.models import Message
from pro_service.services import inbound
from pro_service.services.inbound import BrokerUnavailable, store_inbound, wake_received
from tests.conftest import PG_ADMIN_URL, run_concurrently
from tests.integration.helpers import make_nurse, make_patient, make_team
from workers.wake import BACKOFF_SECONDS, InboundPoller

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_rt(settings: Any, unheard_redis_url: str) -> Iterator[Any]:
    from pro_service.migrate import upgrade
    from pro_service.runtime import Role, build_runtime

    name = f"pro_test_{secrets.token_hex(4)}_wake"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    upgrade(url)
    runtime = build_runtime(
        settings.model_copy(update={"DATABASE_URL": url, "REDIS_URL": unheard_redis_url}),
        Role.WORKER,
    )
    yield runtime
    runtime.dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Recorder:
    """Stands in for TaskQueue.publish: records what would reach the broker; can fail like Redis."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self, name: str, *args: Any, queue_name: str | None = None) -> bool:
        if self.fail:
            return False
        with self.lock:
            self.calls.append((name, args[0]))
        return True


@pytest.fixture
def recorder(own_rt: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    from testsupport.database import empty_tables

    with own_rt.engine.begin() as conn:
        empty_tables(conn)
    recorder = Recorder()
    monkeypatch.setattr(own_rt.tasks, "publish", recorder)
    return recorder


def _store(rt: Any, from_: str, body: str) -> int | None:
    with rt.engine.begin() as conn:
        form = {"MessageSid": "SM" + secrets.token_hex(16), "From": from_, "To": "+15550000000", "Body": body}
        return store_inbound(conn, form, rt.now()).message_id


def _wake(rt: Any) -> int:
    with rt.engine.connect() as connection:
        return wake_received(connection, rt)


def test_each_stored_reply_is_claimed_once_and_woken_by_kind(own_rt: Any, recorder: Recorder) -> None:
    team = make_team(own_rt)
    ana = make_patient(own_rt, team, phone="+15551230001", mrn="W1")
    ben = make_patient(own_rt, team, phone="+15551230002", mrn="W2")
    make_nurse(own_rt, team, phone="+15557770001")
    _store(own_rt, "+15551230001", "yes")
    _store(own_rt, "+15551230001", "7")
    _store(own_rt, "+15551230002", "no")
    ack = _store(own_rt, "+15557770001", "ACK A1B2")
    _store(own_rt, "+15559990000", "who is this?")  # unknown sender: kept for review, nothing to wake

    assert _wake(own_rt) == 4
    assert sorted(recorder.calls) == sorted(
        [("pro.process_inbound", ana), ("pro.process_inbound", ben), ("pro.process_staff_inbound", ack)]
    )
    recorder.calls.clear()
    assert _wake(own_rt) == 0
    assert recorder.calls == []


def test_a_failed_publish_leaves_the_rows_for_the_next_poll(own_rt: Any, recorder: Recorder) -> None:
    patient = make_patient(own_rt, make_team(own_rt))
    message_id = _store(own_rt, "+15551230001", "my back hurts")
    recorder.fail = True  # Redis down
    with pytest.raises(BrokerUnavailable):
        _wake(own_rt)
    with own_rt.sessions() as session:
        assert session.scalar(select(Message.attempts).where(Message.id == message_id)) == 0
    recorder.fail = False
    assert _wake(own_rt) == 1
    assert recorder.calls == [("pro.process_inbound", patient)]


def test_concurrent_pollers_claim_each_reply_exactly_once(
    own_rt: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = make_team(own_rt)
    phones = [f"+1555123{i:04d}" for i in range(60)]
    patients = [make_patient(own_rt, team, phone=p, mrn=f"C{i}") for i, p in enumerate(phones)]
    for round_ in range(5):
        for p in phones:
            _store(own_rt, p, f"reply {round_}")
    monkeypatch.setattr(inbound, "WAKE_BATCH", 25)  # many small claims, so the pollers overlap

    def poll_until_empty() -> int:
        claimed = 0
        while (n := _wake(own_rt)) > 0:
            claimed += n
        return claimed

    assert sum(run_concurrently(poll_until_empty)) == 300
    with own_rt.sessions() as session:
        assert set(session.scalars(select(Message.attempts))) == {1}  # every row claimed, none twice
    assert {arg for name, arg in recorder.calls if name == "pro.process_inbound"} == set(patients)


def test_a_failing_poll_backs_off_instead_of_hammering() -> None:
    class Broken:
        calls = 0

        class engine:  # stands in for rt.engine
            @staticmethod
            def connect() -> Any:
                Broken.calls += 1
                raise RuntimeError("database down")

    now = [1000.0]
    poll = InboundPoller(Broken(), clock=lambda: now[0])  # type: ignore[arg-type]
    assert poll() == 0
    assert Broken.calls == 1
    now[0] += BACKOFF_SECONDS / 2
    assert poll() == 0
    assert Broken.calls == 1  # still backing off
    now[0] += BACKOFF_SECONDS
    assert poll() == 0
    assert Broken.calls == 2


def test_the_poller_backs_off_while_the_broker_is_down(own_rt: Any, recorder: Recorder) -> None:
    make_patient(own_rt, make_team(own_rt))
    _store(own_rt, "+15551230001", "yes")
    recorder.fail = True
    now = [1000.0]
    poll = InboundPoller(own_rt, clock=lambda: now[0])
    assert poll() == 0
    assert poll.paused_until == 1000.0 + BACKOFF_SECONDS  # not ten claims and rollbacks a second
    recorder.fail = False
    assert poll() == 0  # still backing off: nothing claimed, nothing published
    assert recorder.calls == []
    now[0] += BACKOFF_SECONDS
    assert poll() == 1
    assert len(recorder.calls) == 1
