"""Issue 15's holes, each closed with a test that failed before its fix.

Item 9: the inbound webhook refuses what Twilio never sends (a malformed or foreign sid, a field it does not
send, a field twice), so a captured request cannot be re-cut into a new MessageSid (Twilio signs the sorted
names and values concatenated, without separators).
Item 10: odd input is a 400 or a 404, never a server error: NUL, digits other than 0-9 ("²", "٣") and
numbers past a database id in the staff pages, FHIR and the status callback; a FHIR body over 1 MiB.
Item 11 (part): the event webhook follows no redirect and posts only over https outside development; the
patient-phone simulator (speaking as any patient) is for administrators, or for nurses when a setting says so.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from pro_service.models import Message, StaffRole
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.conftest import ACCOUNT_SID, FROM_NUMBER
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]
VICTIM = "+15551230001"  # an enrolled patient
ATTACKER = "+15559990000"  # anyone who can text the service


def _sid() -> str:
    return "SM" + secrets.token_hex(16)


def _inbound(rt: Any) -> list[Message]:
    with rt.sessions() as session:
        return list(
            session.scalars(select(Message).where(Message.direction == "inbound").order_by(Message.id))
        )


def _count(rt: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def _twilio_form(sid: str, sender: str, body: str) -> dict[str, str]:
    """Every field Twilio sends with an inbound SMS (benchmarks/harness.py, Twilio's documentation)."""
    return {
        "ToCountry": "US",
        "ToState": "NY",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "NEW YORK",
        "FromZip": "10001",
        "SmsSid": sid,
        "FromState": "NY",
        "SmsStatus": "received",
        "FromCity": "NEW YORK",
        "Body": body,
        "FromCountry": "US",
        "To": FROM_NUMBER,
        "ToZip": "10001",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def _post_pairs(client: Any, pairs: list[tuple[str, str]], signature: str) -> Any:
    return client.post(
        "/twilio/sms",
        data=urlencode(pairs),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


def _signature(signer: Any, pairs: list[tuple[str, str]]) -> str:
    from werkzeug.datastructures import MultiDict

    return str(signer.validator.compute_signature(signer.public_base + "/twilio/sms", MultiDict(pairs)))


def _concatenation(pairs: list[tuple[str, str]]) -> str:
    return "".join(name + value for name, value in sorted(pairs))


# ------------------------------------------------------------------------------------------ item 9


def test_a_captured_request_re_cut_into_a_new_message_sid_is_refused(
    client: Any, rt: Any, signer: Any
) -> None:
    """The attacker texts a crafted body, captures Twilio's signed request, and re-cuts the names and values
    so the same signature carries a fresh MessageSid, sent in the name of an enrolled patient."""
    make_patient(rt, make_team(rt), phone=VICTIM)
    new_sid = _sid()
    crafted = f"I am fineFrom{VICTIM}MessageSid{new_sid}To{FROM_NUMBER}ToZip"
    original = _twilio_form(_sid(), ATTACKER, crafted)
    pairs = list(original.items())
    signature = _signature(signer, pairs)
    assert _post_pairs(client, pairs, signature).status_code == 200  # Twilio's own delivery

    # Everything after the crafted body's last name becomes the value of ToZip.
    text = _concatenation(pairs)
    rest = text[text.index("ToZip") + len("ToZip") :]
    recut = [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("Body", "I am fine"),
        ("From", VICTIM),
        ("MessageSid", new_sid),
        ("To", FROM_NUMBER),
        ("ToZip", rest),
    ]
    assert _concatenation(recut) == text  # the same signature covers it
    assert _signature(signer, recut) == signature

    response = _post_pairs(client, recut, signature)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "MessageSid" in response.get_data(as_text=True)
    assert [m.twilio_sid for m in _inbound(rt)] == [original["MessageSid"]]  # nothing in the patient's name


def test_a_message_sid_that_swallows_the_next_field_is_refused(client: Any, rt: Any, signer: Any) -> None:
    form = {"AccountSid": ACCOUNT_SID, "Body": "7", "From": VICTIM, "MessageSid": _sid(), "NumMedia": "0"}
    form["To"] = FROM_NUMBER
    pairs = list(form.items())
    signature = _signature(signer, pairs)
    assert _post_pairs(client, pairs, signature).status_code == 200
    recut = [(n, v) for n, v in pairs if n != "NumMedia"]
    recut = [(n, v + "NumMedia0" if n == "MessageSid" else v) for n, v in recut]
    assert _signature(signer, recut) == signature
    response = _post_pairs(client, recut, signature)
    assert response.status_code == 400
    assert "MessageSid" in response.get_data(as_text=True)
    assert _count(rt) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"MessageSid": "SM1"}, "MessageSid"),
        ({"MessageSid": "SM" + "g" * 32}, "MessageSid"),
        ({"MessageSid": "XX" + "0" * 32}, "MessageSid"),
        ({"MessageSid": "SM" + "0" * 32 + " "}, "MessageSid"),
        ({"MessageSid": None}, "MessageSid"),
        ({"SmsSid": "SM" + "1" * 32}, "SmsSid"),
        ({"AccountSid": "AC" + "f" * 32}, "AccountSid"),  # another Twilio account
        ({"AccountSid": "AC1"}, "AccountSid"),
        ({"AccountSid": None}, "AccountSid"),
        ({"From": None}, "From"),
        ({"Foo": "bar"}, "Foo"),
        ({"MediaUrl10": "https://api.twilio.com/m/1"}, "MediaUrl10"),
        ({"": "x"}, "field"),
    ],
)
def test_what_twilio_never_sends_is_refused_and_nothing_stored(
    client: Any, rt: Any, signer: Any, change: dict[str, str | None], named: str
) -> None:
    form = _twilio_form(_sid(), VICTIM, "yes")
    for name, value in change.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    response = client.post("/twilio/sms", data=form, headers=signer.headers("/twilio/sms", form))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert named in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert _count(rt) == 0


def test_a_field_given_twice_is_refused(client: Any, rt: Any, signer: Any) -> None:
    pairs = [*_twilio_form(_sid(), ATTACKER, "hi").items(), ("From", VICTIM)]
    response = _post_pairs(client, pairs, _signature(signer, pairs))
    assert response.status_code == 400
    assert "From" in response.get_data(as_text=True)
    assert _count(rt) == 0


def test_everything_twilio_sends_is_accepted(client: Any, rt: Any, signer: Any) -> None:
    make_patient(rt, make_team(rt), phone=VICTIM)
    sid = "MM" + secrets.token_hex(16).upper()
    form = _twilio_form(sid, VICTIM, "my back hurts, MessageSid is a word I may type")
    form.update(
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/m/ME1",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/m/ME2",
        MediaContentType1="image/png",
        MessagingServiceSid="MG" + "0" * 32,
        OptOutType="",
        AddOns='{"status":"successful","message":null,"code":null,"results":{}}',
    )
    response = client.post("/twilio/sms", data=form, headers=signer.headers("/twilio/sms", form))
    assert response.status_code == 200, response.get_data(as_text=True)
    [message] = _inbound(rt)
    assert message.twilio_sid == sid and message.num_media == 2


def test_the_outbox_backend_takes_any_well_formed_account(settings: Any, signer: Any) -> None:
    """Without Twilio (the simulator signs its posts) there is no account to match; the sids are checked."""
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox"}))
    try:
        client = app.test_client()
        form = {**_twilio_form(_sid(), VICTIM, "yes"), "AccountSid": "AC" + "0" * 32}
        assert (
            client.post("/twilio/sms", data=form, headers=signer.headers("/twilio/sms", form)).status_code
            == 200
        )
        form = {**_twilio_form(_sid(), VICTIM, "yes"), "AccountSid": "AC0"}
        assert (
            client.post("/twilio/sms", data=form, headers=signer.headers("/twilio/sms", form)).status_code
            == 400
        )
    finally:
        runtime_of(app).dispose()


# ----------------------------------------------------------------------------------------- item 10
HUGE = "9" * 30
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_nul_in_the_sign_in_email_is_a_400_not_a_database_error(client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    token = csrf_token(client)
    response = client.post(
        "/login", data={"csrf_token": token, "email": "kim\x00@example.org", "password": "x"}
    )
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"]


def test_odd_numbers_and_nul_in_the_staff_pages_are_400_or_404(client: Any, rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    alert = insert_alert(rt, patient)
    make_staff(rt, email="admin@example.org", role=StaffRole.ADMIN)
    login(client, "admin@example.org")
    urls = [
        "/?team=²",
        f"/?team={HUGE}",
        f"/patients/{patient}?before=²",
        f"/alerts/{alert}?before=٣",
        f"/alerts/{alert}?before={HUGE}",
        "/admin/audit?patient=²",
        "/admin/audit?before=²",
        f"/admin/audit?before={HUGE}",
        "/admin/audit?before=99999999999",
        f"/patients/{HUGE}",
        "/patients/" + str(patient).translate(ARABIC_INDIC),
        "/patients?q=a%00b",
        "/?status=%00",
    ]
    answered = {url: client.get(url).status_code for url in urls}
    assert all(status in (400, 404) for status in answered.values()), answered
    note = client.post(
        f"/alerts/{alert}/notes", data={"csrf_token": csrf_token(client, "/"), "note": "called\x00back"}
    )
    assert note.status_code == 400
    assert client.get(f"/patients/{patient}?before=12").status_code == 200  # plain numbers still work


def test_odd_ids_and_numbers_in_fhir_are_outcomes_not_server_errors(
    client: Any, rt: Any, admin_token: str
) -> None:
    make_patient(rt, make_team(rt))
    bearer = {"Authorization": f"Bearer {admin_token}"}
    for path in [
        "/fhir/Patient/²",
        "/fhir/Flag/٣",
        "/fhir/Patient?_id=²",
        "/fhir/Flag?_id=1,²",
        "/fhir/Flag?_count=²",
        "/fhir/Flag?_offset=³",
        f"/fhir/Flag?_count={HUGE}",
        "/fhir/Patient?identifier=a%00b",
    ]:
        response = client.get(path, headers=bearer)
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        assert response.mimetype == "application/fhir+json"
        if response.status_code != 200:
            assert response.get_json()["resourceType"] == "OperationOutcome"
        else:
            assert response.get_json()["total"] == 0  # "1,²": ids that cannot be ours match nothing


def test_a_huge_or_odd_mid_on_the_status_callback_is_not_a_server_error(
    client: Any, rt: Any, signer: Any
) -> None:
    with rt.unit_of_work() as session:
        message = Message(
            direction="outbound",
            kind="question",
            status="sent",
            from_number=FROM_NUMBER,
            to_number=VICTIM,
            body="1/9 ...",
            twilio_sid="SM" + "0" * 32,
        )
        session.add(message)
        session.flush()
        mid = message.id
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    for odd in [HUGE, "99999999999", "2147483648", str(mid).translate(ARABIC_INDIC)]:
        path = "/twilio/status?" + urlencode({"mid": odd})
        response = client.post(path, data=form, headers=signer.headers(path, form))
        assert response.status_code in (204, 400), (odd, response.status_code)
    with rt.sessions() as session:
        assert session.get(Message, mid).status == "sent"  # type: ignore[union-attr]  # "٣" is not 3


@pytest.mark.parametrize("path", ["/fhir/Observation", "/fhir", "/fhir/Flag/_search"])
def test_a_fhir_body_over_1_mib_is_an_operation_outcome_with_the_security_headers(
    settings: Any, path: str
) -> None:
    from pro_service import create_app, runtime_of
    from pro_service.services.tokens import create_token

    app = create_app(settings)  # not testing: the answer a client gets, not a raised exception
    rt = runtime_of(app)
    try:
        with rt.unit_of_work() as session:
            token = create_token(
                session, requested_by="operator", name="lab", client="lab", scopes=("labs:write",)
            ).token
        kind = "application/x-www-form-urlencoded" if path.endswith("_search") else "application/fhir+json"
        response = app.test_client().post(
            path,
            data=b"{" + b" " * (1024 * 1024) + b"}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": kind},
        )
        assert response.status_code == 413
        assert response.mimetype == "application/fhir+json"
        assert response.get_json()["resourceType"] == "OperationOutcome"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    finally:
        rt.dispose()


@pytest.mark.parametrize("field", ["ident", "mrn"])
def test_nul_in_a_fhir_lab_result_is_a_400_outcome_and_nothing_stored(
    client: Any, rt: Any, admin_token: str, field: str
) -> None:
    """JSON may carry NUL ("\\u0000"), which PostgreSQL text cannot hold: an input problem, not a 500."""
    from pro_service.models import LabResult
    from tests.integration.test_labs_intake import MRN, observation

    make_patient(rt, make_team(rt), mrn=MRN)
    body = observation(**{field: "ACC\x0042"})
    response = client.post(
        "/fhir/Observation",
        json=body,
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "invalid"
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LabResult)) == 0


# ----------------------------------------------------------------------------------------- item 11
EVENT_SECRET = "event-secret-0123456789"


class Server:
    """A small HTTP server on its own port (its own origin) that records what is posted to it."""

    def __init__(self, redirect_to: str | None = None) -> None:
        from flask import Flask, redirect, request
        from werkzeug.serving import make_server

        from tests.conftest import free_port

        self.received: list[bytes] = []
        app = Flask("receiver")

        @app.post("/events")
        def events() -> Any:
            self.received.append(request.get_data())
            if redirect_to:
                return redirect(redirect_to, code=307)  # a 307 re-posts the same body there
            return "", 204

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    elsewhere = Server()
    hospital = Server(redirect_to=elsewhere.url)
    yield hospital, elsewhere
    hospital.stop()
    elsewhere.stop()


def _event_rt(settings: Any, url: str) -> Any:
    from pro_service.runtime import Role, build_runtime

    return build_runtime(
        settings.model_copy(update={"EVENT_WEBHOOK_URL": url, "EVENT_WEBHOOK_SECRET": EVENT_SECRET}),
        Role.WORKER,
    )


def _one_event(rt: Any) -> int:
    from alerts.rules import Evidence, Finding, Urgency
    from pro_service.models import OutboundEvent
    from pro_service.services import triage

    finding = Finding(
        category="spinal_cord_compression",
        urgency=Urgency.URGENT,
        rule_id="scc-neuro-or-bladder",
        rationale="r",
        ruleset="sre",
        ruleset_version=1,
        evidence=(Evidence(item_code="neuro", question="q", raw_text="yes", value=True),),
    )
    patient = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        triage.upsert_alert(session, rt, patient, finding)
    with rt.sessions() as session:
        return int(session.scalars(select(OutboundEvent.id)).one())


def test_the_event_webhook_follows_no_redirect(settings: Any, servers: tuple[Server, Server]) -> None:
    from pro_service.models import OutboundEvent
    from pro_service.services import event_webhook

    hospital, elsewhere = servers
    rt = _event_rt(settings, hospital.url)
    try:
        event_id = _one_event(rt)
        outcome = event_webhook.deliver(rt, event_id)
        assert len(hospital.received) == 1
        assert elsewhere.received == []  # the signed body went nowhere else
        assert outcome == "failed"  # a redirect is a configuration to fix, not a failure to retry
        with rt.sessions() as session:
            row = session.get(OutboundEvent, event_id)
            assert row is not None and row.status == "failed" and "307" in (row.last_error or "")
    finally:
        rt.dispose()


def test_the_event_webhook_posts_nothing_over_http_in_production(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings built without their validators (model_copy) cannot send events in the clear either."""
    import requests

    from pro_service.services import event_webhook

    def no_post(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("posted over http")

    rt = _event_rt(settings, "http://events.hospital.example/pro")  # SMS_BACKEND=twilio: production
    try:
        event_id = _one_event(rt)
        monkeypatch.setattr(requests, "post", no_post)
        monkeypatch.setattr(requests.Session, "post", no_post)
        assert event_webhook.deliver(rt, event_id) == "failed"
    finally:
        rt.dispose()


@pytest.fixture
def outbox_app(settings: Any) -> Iterator[Any]:
    """The app with the outbox backend on PostgreSQL and Redis: a staging or training deployment."""
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox"}))
    app.testing = True
    yield app
    runtime_of(app).dispose()


@pytest.mark.commits("the simulator's reply is stored through the inbound webhook's own pool")
def test_the_simulator_is_for_administrators(outbox_app: Any, rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    make_staff(rt, email="admin@example.org", role=StaffRole.ADMIN)
    nurse = outbox_app.test_client()
    login(nurse, "kim@example.org")
    assert nurse.get(f"/simulator/?patient={patient}").status_code == 403
    assert nurse.get(f"/simulator/{patient}/thread").status_code == 403
    token = csrf_token(nurse, "/")
    speaking = nurse.post(f"/simulator/{patient}/reply", data={"csrf_token": token, "body": "STOP"})
    assert speaking.status_code == 403
    assert _inbound(rt) == []  # nobody spoke as the patient

    admin = outbox_app.test_client()
    login(admin, "admin@example.org")
    assert admin.get(f"/simulator/?patient={patient}").status_code == 200
    token = csrf_token(admin, f"/simulator/?patient={patient}")
    assert (
        admin.post(f"/simulator/{patient}/reply", data={"csrf_token": token, "body": "7"}).status_code == 302
    )
    assert [m.body for m in _inbound(rt)] == ["7"]


@pytest.mark.commits("the simulator's reply is stored through the inbound webhook's own pool")
def test_nurses_may_use_the_simulator_when_the_setting_says_so(settings: Any, rt: Any) -> None:
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox", "SIMULATOR_FOR_NURSES": True}))
    app.testing = True
    try:
        patient = make_patient(rt, make_team(rt))
        make_staff(rt, email="kim@example.org")
        nurse = app.test_client()
        login(nurse, "kim@example.org")
        assert nurse.get(f"/simulator/?patient={patient}").status_code == 200
    finally:
        runtime_of(app).dispose()
