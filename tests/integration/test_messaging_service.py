"""A Messaging-Service-only configuration (TWILIO_MESSAGING_SERVICE_SID, no TWILIO_FROM_NUMBER) on
PostgreSQL, through the real `twilio` library and the local Twilio-compatible server.

With a Messaging Service Twilio answers the create with `accepted`, picks a sender from the service's pool,
then reports `queued` → `sent` → `delivered` in status callbacks (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, update
from sqlalchemy.pool import NullPool

from pro_service.models import Base, Message, MessageKind, MessageStatus, Patient, utcnow
from pro_service.services import outbound, sweeps
from tests.conftest import ACCOUNT_SID, wait_for
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
PHONE = "+15551230001"
SERVICE_SID = "MG" + "0123456789abcdef" * 2  # 34 characters, as Twilio's spec requires


@pytest.fixture(scope="module")
def mg_app(settings_env: dict[str, str], unheard_rt: Any) -> Iterator[Any]:
    """The app as an operator configures it with a Messaging Service and no sender number. Its tasks go to
    the Redis db no worker listens to: these tests call the send step themselves."""
    from config.settings import Settings
    from pro_service import create_app, runtime_of

    env = {k: v for k, v in settings_env.items() if k != "TWILIO_FROM_NUMBER"}
    env.update(TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID, REDIS_URL=unheard_rt.settings.REDIS_URL)
    flask_app = create_app(Settings(**env))  # type: ignore[arg-type]
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


@pytest.fixture
def mg_rt(mg_app: Any) -> Any:
    from pro_service import runtime_of

    runtime = runtime_of(mg_app)
    runtime.clock = utcnow
    return runtime


def _queue(rt: Any, body: str = "1/9 Any NEW pain?") -> int:
    patient_id = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        patient = session.get(Patient, patient_id)
        message = outbound.queue_to_patient(session, rt, patient, MessageKind.QUESTION, body)
        assert message is not None
        return message.id


def _message(rt: Any, message_id: int) -> Message:
    with rt.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def _callback(client: Any, signer: Any, mid: int, copy: dict[str, Any], status: str) -> None:
    """The signed status callback Twilio posts for `copy` (the server's record of it) at `status`."""
    path = f"/twilio/status?mid={mid}"
    params = {
        "MessageSid": copy["sid"],
        "SmsSid": copy["sid"],
        "AccountSid": ACCOUNT_SID,
        "MessagingServiceSid": SERVICE_SID,
        "From": "+15005550006",  # the sender the service picked from its pool
        "To": copy["to"],
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
    }
    response = client.post(path, data=params, headers=signer.headers(path, params))
    assert response.status_code == 204


def test_a_messaging_service_only_configuration_sends_and_stores_the_message(
    mg_rt: Any, twilio_server: Any, live_server: str
) -> None:
    """End to end on PostgreSQL: the row is stored, the real twilio library sends it with
    MessagingServiceSid (no From), and Twilio's callbacks bring it to `delivered`."""
    mid = _queue(mg_rt)
    stored = _message(mg_rt, mid)
    assert (stored.status, stored.from_number) == (MessageStatus.QUEUED, SERVICE_SID)

    assert outbound.send_message(mg_rt, mid).status == "sent"

    (copy,) = twilio_server.state.messages(PHONE)
    assert copy["messaging_service_sid"] == SERVICE_SID
    assert "From" not in copy["form"]  # Twilio picks the sender from the service's pool
    assert copy["status_callback"] == f"{live_server}/twilio/status?mid={mid}"
    sent = _message(mg_rt, mid)
    assert sent.twilio_sid == copy["sid"]
    assert sent.status in (MessageStatus.ACCEPTED, MessageStatus.SENT, MessageStatus.DELIVERED)
    twilio_server.state.wait_for_callbacks(3, timeout=20, sid=copy["sid"])  # queued, sent, delivered
    wait_for(
        lambda: _message(mg_rt, mid).status == MessageStatus.DELIVERED,
        timeout=10,
        message="the row to be delivered",
    )
    assert [c["status"] for c in twilio_server.state.callbacks] == ["queued", "sent", "delivered"]
    assert all(c["http_status"] == 204 for c in twilio_server.state.callbacks)
    assert twilio_server.state.post_attempts == 1


def test_twilios_queued_callback_after_an_ambiguous_500_does_not_send_the_text_again(
    mg_rt: Any, twilio_server: Any, client: Any, signer: Any
) -> None:
    """Issue 13: the provider accepted the message but answered 500, so the row is `uncertain`; Twilio's
    `queued` callback (sender picked from the pool) proves it has the message. The row must follow the
    provider's report and the retry must never send a second copy."""
    state = twilio_server.state
    state.deliver_callbacks = False  # the callbacks are posted below, one at a time, as Twilio would
    mid = _queue(mg_rt)
    state.fail_next(1, 500, 20500, after_accept=True)
    assert outbound.send_message(mg_rt, mid).status == "retry"
    assert _message(mg_rt, mid).status == MessageStatus.UNCERTAIN
    (copy,) = state.messages(PHONE)

    _callback(client, signer, mid, copy, "queued")
    assert _message(mg_rt, mid).twilio_sid == copy["sid"]

    # The retry falls due, and the sweep republishes what is stuck: neither sends a second copy.
    later = utcnow() + timedelta(minutes=10)
    mg_rt.clock = lambda: later
    outbound.send_message(mg_rt, mid)
    sweeps.tick(mg_rt, later)
    outbound.send_message(mg_rt, mid)
    assert len(state.messages(PHONE)) == 1, "the patient got the text twice"
    assert state.post_attempts == 1
    # The provider has it (Twilio's `queued` is our `accepted`): nothing left for us to send.
    assert _message(mg_rt, mid).status == MessageStatus.ACCEPTED

    _callback(client, signer, mid, copy, "sent")
    _callback(client, signer, mid, copy, "delivered")
    _callback(client, signer, mid, copy, "queued")  # late and out of order: never moves it back
    assert _message(mg_rt, mid).status == MessageStatus.DELIVERED


def test_twilios_sending_callback_for_an_uncertain_row_is_not_taken_for_a_stuck_send(
    mg_rt: Any, twilio_server: Any, client: Any, signer: Any
) -> None:
    """Twilio's own `sending` (handed to the carrier) is not our `sending` (a worker in the middle of the
    API call): the sweep's crash recovery must not find the row stuck and re-send it."""
    state = twilio_server.state
    state.deliver_callbacks = False
    mid = _queue(mg_rt)
    state.fail_next(1, 500, 20500, after_accept=True)
    assert outbound.send_message(mg_rt, mid).status == "retry"
    (copy,) = state.messages(PHONE)

    _callback(client, signer, mid, copy, "sending")
    later = utcnow() + sweeps.SENDING_STUCK_AFTER + timedelta(minutes=1)
    mg_rt.clock = lambda: later
    with mg_rt.unit_of_work() as session:  # no progress for longer than a stuck send
        session.execute(
            update(Message)
            .where(Message.id == mid)
            .values(updated_at=utcnow() - sweeps.SENDING_STUCK_AFTER - timedelta(seconds=5))
        )
    sweeps.tick(mg_rt, later)
    outbound.send_message(mg_rt, mid)
    assert len(state.messages(PHONE)) == 1, "the patient got the text twice"
    assert _message(mg_rt, mid).status == MessageStatus.ACCEPTED


def test_the_migrated_schema_is_the_one_the_models_describe(pg_url: str) -> None:
    """The session's database was built by the Alembic migrations (0003 widens messages.from_number):
    autogenerate finds nothing to change, column types included."""
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            width = conn.exec_driver_sql(
                "SELECT character_maximum_length FROM information_schema.columns"
                " WHERE table_name = 'messages' AND column_name = 'from_number'"
            ).scalar()
    finally:
        engine.dispose()
    assert width is not None and width >= len(SERVICE_SID)
