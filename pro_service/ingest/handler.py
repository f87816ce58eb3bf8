"""POST /twilio/sms: verify, store, commit, then 200 — as a plain WSGI handler in front of Flask.

This is the one route whose rate is set by patients' phones, not by staff, and every reply waits on it.
Flask's request machinery (context, form parsing, session, hooks) cost more CPU than the route's own work
(benchmarks/bench_ingest.py), so this handler takes the request before Flask sees it and does only: parse
the urlencoded form, check Twilio's signature (sms/twilio_signature.py) against the public URL, store the
message (ingest/store.py: committed when it returns; concurrent replies share one insert), answer empty
TwiML. No broker call: workers poll for stored replies (workers/wake.py). Every other path goes to Flask
unchanged.

Signatures are checked against PUBLIC_BASE_URL + path + query (the URL Twilio called), not the URL seen
behind a proxy. A database outage answers 503, so the provider logs it and reconciliation fetches the
message later (Twilio does not redeliver inbound webhooks).

A signed form is then held to what Twilio sends (`checked_form`), or refused with 400 and nothing stored.
Twilio's signature covers the sorted names and values concatenated without separators, so one signed
request can be re-cut into other names and values under the same signature: a patient's crafted text
re-cut into a fresh MessageSid in another patient's name, say (issue 15, item 9). Refused here: a MessageSid
or AccountSid not in Twilio's format, a foreign AccountSid (with SMS_BACKEND=twilio), a field Twilio does not
send or a field twice, SmsSid/SmsMessageSid that differ from MessageSid, and "MessageSid" inside any value
but Body. Given those, a re-cut cannot carry a new MessageSid: the only text anyone chooses is the Body,
which sorts before MessageSid; a MessageSid cut from it leaves the original "MessageSid…" text to be
swallowed by a later field's value (refused), or kept as a second MessageSid (refused), and a MessageSid
stretched or shortened at its ends is not 34 characters, or needs a name Twilio does not send
(tests/unit/test_inbound_checks.py searches every re-cut). A new field Twilio starts sending is refused
too, and logged by name: the reconciliation job (services/reconcile.py) then fetches those messages through
the API until the field is added to TWILIO_FIELDS. All of it is O(fields), no database.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from pro_service.ingest.store import DatabaseUnavailable, make_store
from pro_service.metrics import INBOUND_STORED, REQUEST_LATENCY
from pro_service.observability import request_id_var
from pro_service.runtime import Runtime
from pro_service.sms.twilio_signature import TwilioSignature

log = logging.getLogger(__name__)

PATH = "/twilio/sms"
MAX_BODY_BYTES = 64 * 1024  # Twilio's inbound form is a few KB even with ten media URLs
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_REASONS = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    413: "413 Request Entity Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


# Twilio's formats (its OpenAPI description of the Messages API, ../shared/twilio/twilio_api_v2010.json).
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
# What Twilio sends with an inbound SMS or MMS (its "incoming message webhook" documentation), besides
# MediaUrl{N} and MediaContentType{N} (N 0-9: at most ten media).
TWILIO_FIELDS = frozenset(
    {
        "AccountSid",
        "AddOns",
        "ApiVersion",
        "Body",
        "From",
        "FromCity",
        "FromCountry",
        "FromState",
        "FromZip",
        "MessageSid",
        "MessagingServiceSid",
        "NumMedia",
        "NumSegments",
        "OptOutType",
        "ReferralNumMedia",
        "SmsMessageSid",
        "SmsSid",
        "SmsStatus",
        "To",
        "ToCity",
        "ToCountry",
        "ToState",
        "ToZip",
    }
)
MEDIA_FIELD = re.compile(r"Media(?:Url|ContentType)[0-9]")
REQUIRED_FIELDS = ("MessageSid", "AccountSid", "From", "To")
SAME_AS_MESSAGE_SID = ("SmsSid", "SmsMessageSid")


class Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class InboundSmsHandler:
    """WSGI middleware: POST /twilio/sms is answered here; everything else goes to `app`."""

    def __init__(self, app: WsgiApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        self.signature = TwilioSignature(rt.settings.webhook_auth_token)
        self.public_url = rt.settings.PUBLIC_BASE_URL + PATH
        # With Twilio, its messages name our account; the outbox (the simulator signs its posts) has none.
        settings = rt.settings
        self.account_sid = settings.TWILIO_ACCOUNT_SID if settings.SMS_BACKEND == "twilio" else None
        self.store = make_store(rt)
        # The metrics' label sets, looked up once rather than per request.
        self.latency = {status: REQUEST_LATENCY.labels(PATH, "POST", str(status)) for status in _REASONS}
        self.stored, self.repeats = INBOUND_STORED.labels("stored"), INBOUND_STORED.labels("duplicate")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming[:64] if incoming and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            status, body, mimetype = self._answer(environ)
        finally:
            request_id_var.reset(token)
        start_response(
            _REASONS[status],
            [
                ("Content-Type", f"{mimetype}; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("X-Request-Id", request_id),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "no-store"),
            ],
        )
        self.latency[status].observe(time.perf_counter() - started)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, bytes, str]:
        try:
            form = self._verified_form(environ)
            stored = self.store(form)
        except Refused as refused:
            return refused.status, refused.text.encode(), "text/plain"
        except DatabaseUnavailable as unavailable:
            # The reason is the driver's error class or ours, never a value from the message.
            log.error("inbound SMS not stored: %s", unavailable)
            return 503, b"the database is unavailable", "text/plain"
        except Exception:
            log.exception("inbound SMS failed")
            return 500, b"internal error", "text/plain"
        # Counted, and logged at DEBUG only: at hundreds a second an INFO line each is noise (and ~5 % of the
        # route's CPU); refusals and failures are logged above at WARNING/ERROR.
        (self.repeats if stored.message_id is None else self.stored).inc()
        log.debug("inbound stored", extra={"message_id": stored.message_id, "patient_id": stored.patient_id})
        return 200, EMPTY_TWIML, "text/xml"

    def _verified_form(self, environ: dict[str, Any]) -> dict[str, str]:
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature:
            log.warning("inbound webhook refused: no signature")
            raise Refused(403, "invalid signature")
        raw = _body(environ)
        urlencoded = environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
        # UTF-8, blank values kept. An undecodable byte becomes U+FFFD, so the signature fails (403), as it
        # did when Flask parsed the form.
        pairs = form_pairs(raw.decode("utf-8", "replace")) if urlencoded else []
        query = environ.get("QUERY_STRING", "")
        url = self.public_url + (f"?{query}" if query else "")
        if not self.signature.signed(url, pairs, signature):
            log.warning("inbound webhook refused: bad signature")
            raise Refused(403, "invalid signature")
        try:
            return checked_form(pairs, self.account_sid)
        except Refused as refused:
            log.warning("inbound webhook refused: %s", refused.text)
            raise


def checked_form(pairs: list[tuple[str, str]], account_sid: str | None) -> dict[str, str]:
    """The signed form as Twilio sends it, or Refused(400) naming the problem (see the module docstring).
    `account_sid`: the AccountSid every message must name (None: any in Twilio's format)."""
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in TWILIO_FIELDS and not MEDIA_FIELD.fullmatch(name):
            raise Refused(400, f"unexpected field {_shown(name)}: not one Twilio sends with a message")
        if name in form:  # from here on, `name` is one of ours: safe to show and log
            raise Refused(400, f"the field {name} is given twice")
        if name != "Body" and "MessageSid" in value:
            raise Refused(400, f"the field {name} contains the text MessageSid")
        form[name] = value
    for name in REQUIRED_FIELDS:
        if name not in form:
            raise Refused(400, f"the field {name} is missing")
    sid = form["MessageSid"]
    if not MESSAGE_SID.fullmatch(sid):
        raise Refused(400, "MessageSid must be SM or MM followed by 32 hexadecimal digits")
    for name in SAME_AS_MESSAGE_SID:
        if form.get(name, sid) != sid:
            raise Refused(400, f"{name} differs from MessageSid")
    if not ACCOUNT_SID.fullmatch(form["AccountSid"]):
        raise Refused(400, "AccountSid must be AC followed by 32 hexadecimal digits")
    if account_sid is not None and form["AccountSid"] != account_sid:
        raise Refused(400, "AccountSid is not this service's Twilio account")
    return form


def _shown(name: str) -> str:
    """A field name for a message: at most 40 characters, control characters escaped."""
    return repr(name[:40]) if name else "with an empty name"


def form_pairs(urlencoded: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(urlencoded, keep_blank_values=True)`, without decoding the many fields that
    have nothing to decode (tests/unit/test_inbound_form.py checks they agree)."""
    pairs = []
    for field in urlencoded.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(text: str) -> str:
    return unquote_plus(text, errors="replace") if "%" in text or "+" in text else text


def _body(environ: dict[str, Any]) -> bytes:
    """The request body, at most MAX_BODY_BYTES (413 beyond). A chunked body has no Content-Length; the
    server marks its input terminated and it is read to the end (a proxy may re-chunk Twilio's request)."""
    stream = environ["wsgi.input"]
    length_header = environ.get("CONTENT_LENGTH") or ""
    if length_header:
        try:
            length = int(length_header)
        except ValueError:
            raise Refused(400, "bad Content-Length") from None
        if length > MAX_BODY_BYTES:
            raise Refused(413, "request body too large")
        return bytes(stream.read(length)) if length > 0 else b""
    if not environ.get("wsgi.input_terminated"):
        return b""
    raw = bytes(stream.read(MAX_BODY_BYTES + 1))
    if len(raw) > MAX_BODY_BYTES:
        raise Refused(413, "request body too large")
    return raw
