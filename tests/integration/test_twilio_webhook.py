"""The inbound webhook: verify, store, commit, then 200 — and nothing from an unsigned request."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from pro_service.models import Direction, Message, MessageStatus
from tests.conftest import ACCOUNT_SID, FROM_NUMBER
from tests.integration.helpers import call_wsgi, make_patient, make_team, signed_sms_environ

pytestmark = pytest.mark.integration


def _sid(tag: str) -> str:
    """A MessageSid in Twilio's format (SM + 32 hex digits), the same for the same tag."""
    return "SM" + hashlib.md5(tag.encode()).hexdigest()  # noqa: S324  (a name, not a secret)


def _count(rt: Any) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message).where(Message.direction == "inbound"))


def test_missing_signature_is_refused_and_nothing_stored(client: Any, rt: Any) -> None:
    response = client.post("/twilio/sms", data={"MessageSid": "SM1", "From": "+15551230001", "Body": "yes"})
    assert response.status_code == 403
    assert _count(rt) == 0


def test_wrong_signature_is_refused(client: Any, rt: Any, signer: Any) -> None:
    params = {"MessageSid": "SM1", "From": "+15551230001", "Body": "yes"}
    headers = signer.headers("/twilio/sms", {**params, "Body": "no"})  # signed over different content
    assert client.post("/twilio/sms", data=params, headers=headers).status_code == 403
    assert _count(rt) == 0


def test_signature_over_the_internal_url_is_refused(client: Any, rt: Any) -> None:
    # Behind a proxy Flask sees http://localhost/...; Twilio signs the public URL. Only that one counts.
    from twilio.request_validator import RequestValidator

    params = {"MessageSid": "SM1", "From": "+15551230001", "Body": "yes"}
    sig = RequestValidator(rt.settings.webhook_auth_token).compute_signature(
        "http://localhost/twilio/sms", params
    )
    assert client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sig}).status_code == 403


def test_signed_message_is_stored_then_acknowledged_with_empty_twiml(sms: Any, rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    response = sms("+15551230001", "my back hurts", sid=_sid("abc"))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert b"<Response></Response>" in response.data
    with rt.sessions() as session:
        message = session.scalar(select(Message).where(Message.twilio_sid == _sid("abc")))
        assert message is not None
        assert (message.direction, message.patient_id, message.body) == (
            Direction.INBOUND,
            patient,
            "my back hurts",
        )
        # received, or already processed if the session's worker is running: stored either way
        assert message.status in (MessageStatus.RECEIVED, MessageStatus.PROCESSED)


def test_repeated_message_sid_stores_one_row_and_still_answers_200(sms: Any, rt: Any) -> None:
    make_patient(rt, make_team(rt))
    assert sms("+15551230001", "7", sid=_sid("dup")).status_code == 200
    assert sms("+15551230001", "7", sid=_sid("dup")).status_code == 200
    assert _count(rt) == 1


def test_unknown_sender_is_kept(sms: Any, rt: Any) -> None:
    assert sms("+15559990000", "who is this?").status_code == 200
    with rt.sessions() as session:
        message = session.scalar(select(Message))
        assert message is not None and message.patient_id is None and message.kind == "unknown_sender"


def test_mms_without_text_is_kept(sms: Any, rt: Any) -> None:
    make_patient(rt, make_team(rt))
    response = sms(
        "+15551230001",
        "",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/m/ME1",
        MediaContentType0="image/jpeg",
    )
    assert response.status_code == 200
    with rt.sessions() as session:
        message = session.scalar(select(Message))
        assert message is not None and message.num_media == 1
        assert message.media == [{"url": "https://api.twilio.com/m/ME1", "content_type": "image/jpeg"}]


def test_broker_unreachable_at_ingest_still_stores_and_answers_fast(settings: Any, signer: Any) -> None:
    """With Redis down the webhook must not hang: the row is stored, 200 returned, the sweep re-publishes."""
    from pro_service import create_app, runtime_of

    broken = settings.model_copy(update={"REDIS_URL": "redis://127.0.0.1:1/0"})
    app = create_app(broken)
    rt = runtime_of(app)
    make_patient(rt, make_team(rt))
    params = {
        "MessageSid": _sid("outage"),
        "AccountSid": ACCOUNT_SID,
        "From": "+15551230001",
        "To": FROM_NUMBER,
        "Body": "yes",
    }
    started = time.monotonic()
    response = app.test_client().post(
        "/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params)
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < settings.BROKER_TIMEOUT_SECONDS + 1.5
    assert _count(rt) == 1
    rt.dispose()


def test_status_callback_only_moves_forward(client: Any, rt: Any, signer: Any) -> None:
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    with rt.unit_of_work() as session:
        message = Message(
            direction="outbound",
            kind="question",
            status="sent",
            patient_id=patient_id,
            from_number=FROM_NUMBER,
            to_number="+15551230001",
            body="1/9 ...",
            twilio_sid="SMout",
        )
        session.add(message)
        session.flush()
        mid = message.id

    def callback(status: str, **extra: str) -> int:
        path = f"/twilio/status?mid={mid}"
        params = {"MessageSid": "SMout", "MessageStatus": status, "AccountSid": ACCOUNT_SID, **extra}
        return int(client.post(path, data=params, headers=signer.headers(path, params)).status_code)

    assert callback("delivered") == 204
    assert callback("sent") == 204  # late and out of order
    with rt.sessions() as session:
        assert session.get(Message, mid).status == MessageStatus.DELIVERED  # type: ignore[union-attr]
    path = f"/twilio/status?mid={mid}"
    unsigned = client.post(path, data={"MessageSid": "SMout", "MessageStatus": "failed"})
    assert unsigned.status_code == 403


def test_status_callback_21610_opts_the_patient_out(client: Any, rt: Any, signer: Any) -> None:
    from pro_service.models import Patient

    patient_id = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        message = Message(
            direction="outbound",
            kind="question",
            status="sent",
            patient_id=patient_id,
            from_number=FROM_NUMBER,
            to_number="+15551230001",
            body="x",
            twilio_sid="SMx",
        )
        session.add(message)
        session.flush()
        mid = message.id
    path = f"/twilio/status?mid={mid}"
    params = {"MessageSid": "SMx", "MessageStatus": "failed", "ErrorCode": "21610"}
    assert client.post(path, data=params, headers=signer.headers(path, params)).status_code == 204
    with rt.sessions() as session:
        assert session.get(Patient, patient_id).opted_out_at is not None  # type: ignore[union-attr]


def _signed_post(client: Any, signer: Any, sid: str, body: str = "yes", **headers: str) -> Any:
    params = {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+15551230001",
        "To": FROM_NUMBER,
        "Body": body,
    }
    return client.post(
        "/twilio/sms", data=params, headers={**signer.headers("/twilio/sms", params), **headers}
    )


def test_the_webhook_never_calls_the_broker(
    client: Any, rt: Any, signer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_patient(rt, make_team(rt))

    def no_broker(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the webhook published to the broker")

    monkeypatch.setattr(rt.celery, "send_task", no_broker)
    monkeypatch.setattr(rt.tasks, "publish", no_broker)
    assert _signed_post(client, signer, _sid("nobroker")).status_code == 200
    assert _count(rt) == 1


def test_request_id_is_echoed_and_only_post_is_the_webhook(client: Any, rt: Any, signer: Any) -> None:
    make_patient(rt, make_team(rt))
    response = _signed_post(client, signer, _sid("rid"), **{"X-Request-Id": "twilio-req-7"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "twilio-req-7"
    assert response.headers["Content-Type"].startswith("text/xml")
    assert client.get("/twilio/sms").status_code in (404, 405)
    assert _count(rt) == 1


def test_an_oversized_body_is_refused_and_nothing_stored(client: Any, rt: Any, signer: Any) -> None:
    response = _signed_post(client, signer, _sid("big"), body="x" * 70_000)
    assert response.status_code == 413
    assert _count(rt) == 0


def test_database_down_answers_503_so_the_provider_records_a_failure(settings: Any, signer: Any) -> None:
    from pro_service import create_app, runtime_of

    down = create_app(
        settings.model_copy(update={"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"})
    )
    try:
        response = _signed_post(down.test_client(), signer, _sid("down"))
        assert response.status_code == 503
        assert b"database" in response.data
    finally:
        runtime_of(down).dispose()


def test_a_dead_pooled_connection_is_replaced_and_the_reply_stored(settings: Any, signer: Any) -> None:
    """After a PostgreSQL restart every pooled connection is dead; the webhook retries on a fresh one."""
    import psycopg

    from pro_service import create_app, runtime_of
    from tests.conftest import PG_ADMIN_URL

    app = create_app(settings)
    rt = runtime_of(app)
    try:
        make_patient(rt, make_team(rt))
        client = app.test_client()
        assert _signed_post(client, signer, _sid("warm")).status_code == 200
        pooled = rt.ingest_engine.raw_connection()
        try:
            pid = pooled.cursor().execute("SELECT pg_backend_pid()").fetchone()[0]
        finally:
            pooled.close()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert _signed_post(client, signer, _sid("after")).status_code == 200
        assert _count(rt) == 2
    finally:
        rt.dispose()


def test_a_chunked_request_without_content_length_is_read_and_stored(app: Any, rt: Any, signer: Any) -> None:
    """gunicorn passes a chunked body with no CONTENT_LENGTH and marks the input terminated."""
    make_patient(rt, make_team(rt))
    params = {
        "MessageSid": _sid("chunked"),
        "AccountSid": ACCOUNT_SID,
        "From": "+15551230001",
        "To": FROM_NUMBER,
    }
    params["Body"] = "my back hurts"
    status, answer = call_wsgi(app, signed_sms_environ(signer, params, chunked=True))
    assert status == "200 OK"
    assert b"<Response></Response>" in answer
    assert _count(rt) == 1


def test_a_table_locked_past_the_timeout_answers_503_then_stores_once_released(
    settings: Any, signer: Any
) -> None:
    """WEBHOOK_DB_TIMEOUT_SECONDS bounds the webhook's wait on PostgreSQL (a lock held by a migration)."""
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"WEBHOOK_DB_TIMEOUT_SECONDS": 0.3}))
    rt = runtime_of(app)
    try:
        make_patient(rt, make_team(rt))
        client = app.test_client()
        answered: list[int] = []

        def post() -> None:
            answered.append(_signed_post(client, signer, _sid("locked")).status_code)

        with rt.engine.connect() as locker:
            locker.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            waiting = threading.Thread(target=post)
            waiting.start()
            waiting.join(10)  # bounded here, so a webhook that waits for ever fails rather than hangs
            locker.rollback()
        waiting.join(10)
        assert answered == [503]
        assert (
            _signed_post(client, signer, _sid("locked")).status_code == 200
        )  # Twilio's retry, or reconciliation
        assert _count(rt) == 1
    finally:
        rt.dispose()


def test_only_a_repeated_message_sid_counts_as_a_repeat(client: Any, rt: Any, signer: Any) -> None:
    """Any other conflict (here the id sequence set behind the table, as after a bad restore) is an error,
    answered 503, never a 200 that stores nothing."""
    make_patient(rt, make_team(rt))
    assert _signed_post(client, signer, _sid("one")).status_code == 200
    with rt.engine.begin() as connection:
        connection.exec_driver_sql("SELECT setval('messages_id_seq', (SELECT min(id) FROM messages), false)")
    try:
        assert _signed_post(client, signer, _sid("two")).status_code == 503
        assert _count(rt) == 1
    finally:
        with rt.engine.begin() as connection:
            connection.exec_driver_sql("SELECT setval('messages_id_seq', (SELECT max(id) FROM messages))")
    assert _signed_post(client, signer, _sid("two")).status_code == 200  # the provider's retry
    assert _count(rt) == 2


def test_a_repeated_form_field_is_refused(client: Any, rt: Any, signer: Any) -> None:
    """Twilio never sends a field twice; the signature covers both values, so a second one is a forgery
    (issue 15, item 9): 400, nothing stored."""
    make_patient(rt, make_team(rt))
    pairs = [("MessageSid", _sid("twice")), ("AccountSid", ACCOUNT_SID), ("From", "+15551230001")]
    pairs += [("To", FROM_NUMBER), ("Body", "my legs are weak"), ("Body", "fine")]
    signature = signer.validator.compute_signature(signer.public_base + "/twilio/sms", MultiDict(pairs))
    response = client.post(
        "/twilio/sms",
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 400
    assert b"Body" in response.data
    assert _count(rt) == 0
