"""The local Twilio stand-in, driven by the real `twilio` library through make_twilio_client."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask, request
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.serving import WSGIRequestHandler, make_server

from dev.twilio_server import TwilioServer, TwilioServerState
from pro_service.sms.twilio_client import RedirectingHttpClient, make_twilio_client

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-1234"
OUR_NUMBER = "+15005550001"
PATIENT = "+15551230001"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
WAIT = 5.0  # upper bound for anything asynchronous; the waits return as soon as the condition holds


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class CallbackReceiver:
    """A small Flask app in a thread that records status callbacks."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        app = Flask("callback_receiver")

        @app.post("/status")
        def status() -> tuple[str, int]:
            with self._cond:
                self.received.append(
                    {"form": request.form.to_dict(), "signature": request.headers.get("X-Twilio-Signature")}
                )
                self._cond.notify_all()
            return "", 200

        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def wait(self, count: int) -> list[dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, WAIT):
                raise AssertionError(f"expected {count} callbacks, got {self.received!r}")
            return list(self.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _close(client: Client) -> None:
    # The twilio client keeps a pooled requests.Session; close it so no socket is left for GC to warn about.
    client.http_client.session.close()


@pytest.fixture
def state() -> TwilioServerState:
    return TwilioServerState(ACCOUNT_SID, AUTH_TOKEN)


@pytest.fixture
def server(state: TwilioServerState) -> Iterator[TwilioServer]:
    with TwilioServer(state) as srv:
        yield srv


@pytest.fixture
def client(server: TwilioServer) -> Iterator[Client]:
    c = make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, server.url)
    yield c
    _close(c)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    r = CallbackReceiver()
    yield r
    r.stop()


def _rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


def _list_error(call: Any) -> Any:
    """twilio's Page raises TwilioException("Unable to fetch page", response) on a non-200 list page."""
    with pytest.raises(TwilioException) as info:
        call()
    assert not isinstance(info.value, TwilioRestException)
    return info.value.args[1]


# ---- create ----


def test_create_with_from_returns_the_full_resource(client: Client, state: TwilioServerState) -> None:
    msg = client.messages.create(
        to=PATIENT, from_=OUR_NUMBER, body="Hola, ¿cómo está hoy?", validity_period=600
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", msg.sid)
    assert (msg.status, msg.to, msg.from_, msg.body) == (
        "queued",
        PATIENT,
        OUR_NUMBER,
        "Hola, ¿cómo está hoy?",
    )
    assert msg.num_segments == "1"
    assert msg.num_media == "0"
    assert msg.direction == "outbound-api"
    assert msg.api_version == "2010-04-01"
    assert msg.account_sid == ACCOUNT_SID
    assert (msg.price, msg.error_code, msg.error_message) == (None, None, None)
    assert msg.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{msg.sid}.json"
    assert (
        msg.subresource_uris["media"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{msg.sid}/Media.json"
    )
    # RFC 2822 dates parse into aware datetimes.
    assert isinstance(msg.date_created, datetime)
    assert abs(msg.date_created - datetime.now(UTC)) < timedelta(minutes=1)
    assert re.fullmatch(r"MG[0-9a-f]{32}", msg.messaging_service_sid)  # Twilio's default service SID

    (stored,) = state.messages(to=PATIENT)
    assert stored["sid"] == msg.sid
    assert stored["from_"] == OUR_NUMBER
    assert stored["messaging_service_sid"] is None
    assert stored["validity_period"] == 600
    assert stored["form"] == {
        "To": PATIENT,
        "From": OUR_NUMBER,
        "Body": "Hola, ¿cómo está hoy?",
        "ValidityPeriod": "600",
    }


def test_create_with_messaging_service_is_accepted_then_gets_a_sender(
    client: Client, state: TwilioServerState
) -> None:
    msg = client.messages.create(to=PATIENT, messaging_service_sid=SERVICE_SID, body="Recordatorio")

    assert msg.status == "accepted"
    assert msg.from_ is None
    assert msg.messaging_service_sid == SERVICE_SID
    assert msg.num_segments == "0"  # the spec: 0 until the service has picked a sender

    state.wait_for_status(msg.sid, "delivered", WAIT)
    fetched = client.messages(msg.sid).fetch()
    assert (fetched.status, fetched.from_, fetched.num_segments) == (
        "delivered",
        state.messaging_service_from,
        "1",
    )


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("a" * 306, "2"),
        ("a" * 307, "3"),
        ("€" * 80, "1"),  # extension characters take two septets
        ("€" * 81, "2"),
        ("á" * 70, "1"),  # not GSM-7: UCS-2
        ("á" * 71, "2"),
        ("á" * 134, "2"),
        ("á" * 135, "3"),
        ("🙂" * 35, "1"),  # two UTF-16 units each
        ("🙂" * 36, "2"),
    ],
)
def test_num_segments(client: Client, body: str, segments: str) -> None:
    assert client.messages.create(to=PATIENT, from_=OUR_NUMBER, body=body).num_segments == segments


def test_media_only_message_is_mms(client: Client) -> None:
    msg = client.messages.create(to=PATIENT, from_=OUR_NUMBER, media_url=["https://example.org/a.png"])
    assert msg.sid.startswith("MM")
    assert msg.num_media == "1"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "", "from_": OUR_NUMBER, "body": "x"}, 21604),
        ({"to": "5551230001", "from_": OUR_NUMBER, "body": "x"}, 21211),
        ({"to": PATIENT, "body": "x"}, 21603),
        ({"to": PATIENT, "from_": "not a sender!", "body": "x"}, 21606),
        ({"to": PATIENT, "messaging_service_sid": "MG123", "body": "x"}, 21705),
        ({"to": PATIENT, "from_": OUR_NUMBER}, 21602),
        ({"to": PATIENT, "messaging_service_sid": SERVICE_SID}, 21619),
        ({"to": PATIENT, "from_": OUR_NUMBER, "body": "x" * 1601}, 21617),
        ({"to": PATIENT, "from_": OUR_NUMBER, "body": "x", "validity_period": 0}, 21624),
        ({"to": PATIENT, "from_": OUR_NUMBER, "body": "x", "validity_period": 36001}, 21624),
        ({"to": PATIENT, "from_": OUR_NUMBER, "body": "x", "status_callback": "not-a-url"}, 21609),
    ],
)
def test_invalid_create_is_400_with_twilio_code(
    client: Client, state: TwilioServerState, kwargs: dict[str, Any], code: int
) -> None:
    exc = _rest_error(lambda: client.messages.create(**kwargs))
    assert (exc.status, exc.code) == (400, code)
    assert state.messages() == []


# ---- auth and routing ----


@pytest.mark.parametrize(
    ("username", "password"),
    [(ACCOUNT_SID, "wrong-token"), ("SK" + "0" * 32, AUTH_TOKEN), ("AC" + "f" * 32, AUTH_TOKEN)],
)
def test_bad_credentials_are_401_20003(server: TwilioServer, username: str, password: str) -> None:
    bad = make_twilio_client(username, password, server.url)
    try:
        exc = _rest_error(lambda: bad.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
    finally:
        _close(bad)
    assert (exc.status, exc.code) == (401, 20003)


def test_other_account_in_path_is_404(client: Client) -> None:
    other = client.api.v2010.accounts("AC" + "f" * 32)
    exc = _rest_error(lambda: other.messages("SM" + "0" * 32).fetch())
    assert (exc.status, exc.code) == (404, 20404)
    # On list calls the library raises a plain TwilioException carrying the HTTP response.
    assert _list_error(lambda: other.messages.list()).status_code == 404


def test_fetch_unknown_message_is_404(client: Client) -> None:
    exc = _rest_error(lambda: client.messages("SM" + "0" * 32).fetch())
    assert (exc.status, exc.code) == (404, 20404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"),
        ("DELETE", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'0' * 32}.json"),
        ("GET", "/"),
    ],
)
def test_anything_else_is_404_json(server: TwilioServer, method: str, path: str) -> None:
    resp = requests.request(method, server.url + path, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=WAIT)
    assert resp.status_code == 404
    body = resp.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (20404, 404)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"


# ---- fault injection ----


def test_fail_next_429_twice_then_success(client: Client, state: TwilioServerState) -> None:
    state.fail_next(2, 429)
    for _ in range(2):
        exc = _rest_error(lambda: client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
        assert (exc.status, exc.code) == (429, 20429)
    assert client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x").status == "queued"
    assert state.post_attempts == 3
    assert len(state.messages()) == 1


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
def test_fail_next_server_errors(client: Client, state: TwilioServerState, status: int, code: int) -> None:
    state.fail_next(1, status)
    exc = _rest_error(lambda: client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
    assert (exc.status, exc.code) == (status, code)
    assert state.messages() == []


def test_fail_after_accept_stores_the_message_anyway(client: Client, state: TwilioServerState) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    state.fail_next(1, 500, after_accept=True)
    exc = _rest_error(lambda: client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
    assert exc.status == 500
    # The caller can find out that it went out after all.
    (found,) = client.messages.list(to=PATIENT, date_sent_after=since)
    assert found.sid == state.messages()[0]["sid"]


@pytest.mark.parametrize("code", [21610, 21211, 21614])
def test_reject_numbers(client: Client, state: TwilioServerState, code: int) -> None:
    state.reject_numbers[PATIENT] = code
    exc = _rest_error(lambda: client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
    assert (exc.status, exc.code) == (400, code)
    assert client.messages.create(to="+15551230002", from_=OUR_NUMBER, body="x").status == "queued"


def test_latency_is_added_to_each_request(client: Client, state: TwilioServerState) -> None:
    state.latency = 0.2
    started = time.monotonic()
    client.messages.list(limit=1)
    assert time.monotonic() - started >= 0.2


# ---- status callbacks ----


def test_status_callbacks_are_signed_and_ordered(
    client: Client, state: TwilioServerState, receiver: CallbackReceiver
) -> None:
    callback_url = f"{receiver.url}/status?patient=42&kind=check%20in"
    msg = client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x", status_callback=callback_url)

    got = receiver.wait(2)
    assert [c["form"]["MessageStatus"] for c in got] == ["sent", "delivered"]
    validator = RequestValidator(AUTH_TOKEN)
    for c in got:
        form = c["form"]
        assert form == {
            "MessageSid": msg.sid, "SmsSid": msg.sid, "AccountSid": ACCOUNT_SID, "From": OUR_NUMBER,
            "To": PATIENT, "MessageStatus": form["MessageStatus"], "SmsStatus": form["MessageStatus"],
            "ApiVersion": "2010-04-01",
        }  # fmt: skip
        assert validator.validate(callback_url, form, c["signature"])
        assert not validator.validate(f"{receiver.url}/status", form, c["signature"])

    recorded = state.wait_for_callbacks(2, WAIT, sid=msg.sid)
    assert [(r["status"], r["http_status"], r["error"]) for r in recorded] == [
        ("sent", 200, None),
        ("delivered", 200, None),
    ]
    assert client.messages(msg.sid).fetch().status == "delivered"


def test_messaging_service_callbacks_include_queued(
    client: Client, state: TwilioServerState, receiver: CallbackReceiver
) -> None:
    msg = client.messages.create(
        to=PATIENT, messaging_service_sid=SERVICE_SID, body="x", status_callback=f"{receiver.url}/status"
    )
    got = receiver.wait(3)
    assert [c["form"]["MessageStatus"] for c in got] == ["queued", "sent", "delivered"]
    assert all(c["form"]["MessagingServiceSid"] == SERVICE_SID for c in got)
    assert all(c["form"]["MessageSid"] == msg.sid for c in got)


def test_undeliverable_number_ends_undelivered_30003(
    client: Client, state: TwilioServerState, receiver: CallbackReceiver
) -> None:
    state.undeliverable_numbers.add(PATIENT)
    msg = client.messages.create(
        to=PATIENT, from_=OUR_NUMBER, body="x", status_callback=f"{receiver.url}/status"
    )
    sent, last = receiver.wait(2)
    assert sent["form"]["MessageStatus"] == "sent"
    assert "ErrorCode" not in sent["form"]
    assert (last["form"]["MessageStatus"], last["form"]["ErrorCode"]) == ("undelivered", "30003")
    fetched = client.messages(msg.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)


def test_callbacks_can_be_switched_off(
    client: Client, state: TwilioServerState, receiver: CallbackReceiver
) -> None:
    state.deliver_callbacks = False
    msg = client.messages.create(
        to=PATIENT, from_=OUR_NUMBER, body="x", status_callback=f"{receiver.url}/status"
    )
    # The message still moves on (as at Twilio); the webhook just never arrives.
    state.wait_for_status(msg.sid, "delivered", WAIT)
    assert receiver.received == []
    assert state.callbacks == []


def test_unreachable_callback_is_recorded_not_fatal(client: Client, state: TwilioServerState) -> None:
    dead = CallbackReceiver()
    dead.stop()  # nothing listens on its port any more
    msg = client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x", status_callback=f"{dead.url}/status")
    recorded = state.wait_for_callbacks(2, WAIT, sid=msg.sid)
    assert all(r["http_status"] is None and r["error"] for r in recorded)
    assert client.messages(msg.sid).fetch().status == "delivered"


def test_callback_delay_holds_status_changes(
    client: Client, state: TwilioServerState, receiver: CallbackReceiver
) -> None:
    state.callback_delay = 0.3
    started = time.monotonic()
    client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x", status_callback=f"{receiver.url}/status")
    receiver.wait(2)
    assert time.monotonic() - started >= 0.55  # two 0.3 s steps, minus timer slack


def test_many_messages_wait_out_callback_delay_together(client: Client, state: TwilioServerState) -> None:
    state.callback_delay = 0.3
    sids = [client.messages.create(to=PATIENT, from_=OUR_NUMBER, body=str(i)).sid for i in range(50)]
    created = time.monotonic()
    for sid in sids:
        state.wait_for_status(sid, "delivered", WAIT)
    # Two 0.3 s steps each, run side by side: nowhere near 50 x 0.6 s.
    assert time.monotonic() - created < 2.0


# ---- listing ----


def test_list_pages_newest_first_over_three_pages(client: Client, state: TwilioServerState) -> None:
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    sids = [
        state.add_inbound(PATIENT, OUR_NUMBER, f"msg {i}", date_sent=base + timedelta(minutes=i))
        for i in range(7)
    ]
    newest_first = sids[::-1]

    first = client.messages.page(page_size=3)
    second = first.next_page()
    third = second.next_page()
    pages = [[m.sid for m in p] for p in (first, second, third)]
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert third.next_page_url is None
    assert first.previous_page_url is None
    assert [m.sid for m in third.previous_page()] == newest_first[3:6]

    assert [m.sid for m in client.messages.stream(page_size=3)] == newest_first
    assert [m.sid for m in client.messages.list(page_size=3, limit=5)] == newest_first[:5]


def test_list_envelope_matches_the_spec(server: TwilioServer, state: TwilioServerState) -> None:
    for i in range(3):
        state.add_inbound(PATIENT, OUR_NUMBER, f"msg {i}")
    url = f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    body = requests.get(
        url, params={"To": OUR_NUMBER, "PageSize": 2}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=WAIT
    ).json()
    assert set(body) == {
        "messages", "page", "page_size", "first_page_uri", "next_page_uri", "previous_page_uri", "uri",
        "start", "end",
    }  # fmt: skip
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert body["uri"] == f"{path}?To=%2B15005550001&PageSize=2&Page=0"
    assert body["first_page_uri"] == body["uri"]
    last_sid = body["messages"][-1]["sid"]
    assert body["next_page_uri"] == f"{path}?To=%2B15005550001&PageSize=2&Page=1&PageToken=PA{last_sid}"
    assert body["previous_page_uri"] is None


def test_list_filters_by_to_from_and_date_sent(client: Client, state: TwilioServerState) -> None:
    day = datetime(2025, 3, 10, tzinfo=UTC)
    old = state.add_inbound(PATIENT, OUR_NUMBER, "old", date_sent=day - timedelta(days=2))
    morning = state.add_inbound(PATIENT, OUR_NUMBER, "morning", date_sent=day + timedelta(hours=9))
    evening = state.add_inbound("+15551230002", OUR_NUMBER, "evening", date_sent=day + timedelta(hours=20))
    state.now = lambda: day + timedelta(days=1, hours=8)
    sent = client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="out").sid

    def sids(**filters: Any) -> set[str]:
        return {m.sid for m in client.messages.list(**filters)}

    assert sids(to=OUR_NUMBER) == {old, morning, evening}
    assert sids(to=PATIENT) == {sent}
    assert sids(from_=PATIENT) == {old, morning}
    # Inclusive bounds, to the second.
    assert sids(date_sent_after=day + timedelta(hours=9)) == {morning, evening, sent}
    assert sids(date_sent_after=day + timedelta(hours=9, seconds=1)) == {evening, sent}
    assert sids(date_sent_before=day + timedelta(hours=9)) == {old, morning}
    # A bare date covers its whole day.
    assert sids(date_sent="2025-03-10") == {morning, evening}
    assert sids(date_sent_before="2025-03-10") == {old, morning, evening}
    assert sids(to=OUR_NUMBER, date_sent_after=day, date_sent_before=day + timedelta(hours=12)) == {morning}
    # Other forms from the spec's examples.
    assert sids(date_sent_after="Mon, 10 Mar 2025 19:00:00 -0000") == {evening, sent}

    assert _list_error(lambda: client.messages.list(date_sent_after="yesterday")).status_code == 400


def test_inbound_messages_show_up_for_reconciliation(client: Client, state: TwilioServerState) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="¿Dolor hoy? Responda 0-10")
    reply = state.add_inbound(PATIENT, OUR_NUMBER, "7")

    (inbound,) = client.messages.list(to=OUR_NUMBER, date_sent_after=since)
    assert (inbound.sid, inbound.direction, inbound.status) == (reply, "inbound", "received")
    assert (inbound.from_, inbound.to, inbound.body) == (PATIENT, OUR_NUMBER, "7")
    assert client.messages(reply).fetch().body == "7"
    # Test helpers keep outbound and inbound apart unless asked.
    assert [m["direction"] for m in state.messages()] == ["outbound-api"]
    assert len(state.messages(include_inbound=True)) == 2


# ---- helpers and client wiring ----


def test_wait_for_messages(client: Client, state: TwilioServerState) -> None:
    sender = threading.Thread(target=lambda: client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x"))
    sender.start()
    (msg,) = state.wait_for_messages(1, WAIT, to=PATIENT)
    sender.join()
    assert msg["body"] == "x"
    with pytest.raises(AssertionError, match=r"expected 2 messages to \+15551230001.*'body': 'x'"):
        state.wait_for_messages(2, 0.05, to=PATIENT)
    state.reject_numbers[PATIENT] = 21610
    state.latency = 0.5
    state.fail_next(1, 429)
    state.clear()
    assert state.messages() == []
    # Settings from one test do not leak into the next when a server is shared.
    assert client.messages.create(to=PATIENT, from_=OUR_NUMBER, body="y").status == "queued"
    assert (state.reject_numbers, state.latency, state.post_attempts) == ({}, 0.0, 1)


def test_stock_client_when_base_url_is_twilio() -> None:
    stock = make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, "https://api.twilio.com")
    try:
        assert type(stock.http_client) is TwilioHttpClient
    finally:
        _close(stock)


def test_redirect_rewrites_only_the_api_host() -> None:
    http = RedirectingHttpClient("http://127.0.0.1:8765")
    try:
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?To=%2B1&PageSize=2"
        assert http.rewrite("https://api.twilio.com" + path) == "http://127.0.0.1:8765" + path
        assert http.rewrite("https://api.dublin.ie1.twilio.com" + path) == "http://127.0.0.1:8765" + path
        assert (
            http.rewrite("https://verify.twilio.com/v2/Services") == "https://verify.twilio.com/v2/Services"
        )
    finally:
        http.session.close()
    with pytest.raises(ValueError, match="api_base_url"):
        RedirectingHttpClient("127.0.0.1:8765")


def test_standalone_process() -> None:
    cmd = [sys.executable, "-m", "dev.twilio_server", "--port", "0"]
    cmd += ["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--reject", f"{PATIENT}=21610"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by pytest-timeout; printed once the port is bound
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), line
        c = make_twilio_client(ACCOUNT_SID, AUTH_TOKEN, url)
        try:
            assert c.messages.create(to="+15551230009", from_=OUR_NUMBER, body="x").status == "queued"
            assert (
                _rest_error(lambda: c.messages.create(to=PATIENT, from_=OUR_NUMBER, body="x")).code == 21610
            )
        finally:
            _close(c)
            proc.terminate()
        assert proc.wait(timeout=WAIT) == 0
