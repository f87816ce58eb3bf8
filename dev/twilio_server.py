"""A local stand-in for Twilio's Messages REST API (2010-04-01), driven by the real `twilio` library.

Checked against Twilio's OpenAPI description (twilio_api_v2010.json): paths
/2010-04-01/Accounts/{AccountSid}/Messages.json (POST, GET) and .../Messages/{Sid}.json (GET), the
`api.v2010.account.message` schema and the ListMessageResponse paging envelope. Error codes are not in
the spec; they follow Twilio's error reference (twilio.com/docs/api/errors/<code>).

A developer tool, not part of the product (it is not in the wheel or the production image). Run it with
`python -m dev.twilio_server --port 8765 --account-sid AC… --auth-token …` (or
`docker compose --profile dev up twilio`) and point TWILIO_API_BASE_URL at it.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import json
import math
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^(whatsapp:)?\+[1-9]\d{1,14}$")
_SENDER = re.compile(r"^(whatsapp:)?\+[1-9]\d{1,14}$|^\d{5,6}$|^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = frozenset("^{}\\[~]|€\f")  # escape-prefixed: two septets each

# Titles from twilio.com/docs/api/errors; {placeholders} are filled per request.
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number "
    "for this destination/account.",
    21609: "Invalid 'StatusCallback': {url} is not a valid URL.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21619: "A Message Body, Media URL or Content SID is required.",
    21624: "Invalid validity period value",
    21705: "The Messaging Service is invalid.",
}


class TwilioError(Exception):
    """An API error answered as Twilio's error JSON."""

    def __init__(self, status: int, code: int, message: str | None = None, **fmt: str) -> None:
        text = message or ERROR_MESSAGES.get(code, f"Error {code}")
        super().__init__(text.format(**fmt) if fmt else text)
        self.status, self.code = status, code

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": str(self),
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units."""
    if all(ch in _GSM7 or ch in _GSM7_EXT for ch in body):
        n = sum(2 if ch in _GSM7_EXT else 1 for ch in body)
        return 1 if n <= 160 else math.ceil(n / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def rfc2822(dt: datetime | None) -> str | None:
    return format_datetime(dt) if dt else None  # "Thu, 24 Aug 2023 05:01:45 +0000", as Twilio


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # RFC 2822 has whole seconds; keep filters exact


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _parse_when(value: str) -> tuple[datetime, bool]:
    """A DateSent filter value -> (UTC instant, given as a bare date). Accepts the spec's example forms."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            return datetime.fromisoformat(v).replace(tzinfo=UTC), True
        dt = datetime.fromisoformat(v)
    except ValueError:
        try:
            dt = parsedate_to_datetime(v)
        except (TypeError, ValueError):
            raise TwilioError(400, 20400, f"Invalid DateSent value: {value!r}") from None
    return _as_utc(dt), False


class TwilioServerState:
    """Everything the fake Twilio knows; one lock (inside a Condition) guards it all."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.reject_numbers: dict[str, int] = {}  # To -> error code answered with 400
        self.undeliverable_numbers: set[str] = set()  # To -> `undelivered`, ErrorCode 30003
        self.latency = 0.0  # seconds added to every request
        self.deliver_callbacks = True
        self.callback_delay = 0.0  # seconds before each status change
        self.callback_timeout = 5.0
        self.messaging_service_from = "+15005550006"  # the sender a Messaging Service "picks"
        # Twilio assigns a default Messaging Service SID when none is used (see the schema's text).
        self.default_messaging_service_sid = "MG" + hashlib.sha256(account_sid.encode()).hexdigest()[:32]
        self.now: Callable[[], datetime] = _utcnow
        self.post_attempts = 0
        self.callbacks: list[dict[str, Any]] = []
        self._records: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._faults: deque[tuple[int, int, bool]] = deque()
        self._seq = 0
        self._cond = threading.Condition(threading.RLock())
        # Status changes: a heap of (due, seq, sid, remaining statuses) run by one scheduler thread, so
        # any number of messages can wait out callback_delay at once; a pool does the callback POSTs.
        self._due: list[tuple[float, int, str, list[str]]] = []
        self._scheduler: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()

    # ---- fault injection and test helpers ----
    def fail_next(self, n: int, status: int, code: int | None = None, *, after_accept: bool = False) -> None:
        """The next n POSTs answer `status`; with after_accept the message is stored first (ambiguous 5xx)."""
        with self._cond:
            self._faults.extend([(status, code or 20000 + status, after_accept)] * n)

    def messages(self, to: str | None = None, *, include_inbound: bool = False) -> list[dict[str, Any]]:
        with self._cond:
            return [
                dict(r)
                for r in self._records
                if (to is None or r["to"] == to) and (include_inbound or r["direction"] != "inbound")
            ]

    def wait_for_messages(self, count: int, timeout: float, to: str | None = None) -> list[dict[str, Any]]:
        return self._wait(lambda: self.messages(to), count, timeout, f"messages to {to or 'anyone'}")

    def wait_for_callbacks(self, count: int, timeout: float, sid: str | None = None) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]]:
            return [dict(c) for c in self.callbacks if sid is None or c["sid"] == sid]

        return self._wait(seen, count, timeout, f"callbacks for {sid or 'any message'}")

    def wait_for_status(self, sid: str, status: str, timeout: float) -> dict[str, Any]:
        def current() -> str | None:
            rec = self._by_sid.get(sid)
            return rec["status"] if rec else None

        with self._cond:
            if not self._cond.wait_for(lambda: current() == status, timeout):
                raise AssertionError(f"{sid} not {status!r} within {timeout}s; it is {current()!r}")
            return dict(self._by_sid[sid])

    def _wait(
        self, seen: Callable[[], list[dict[str, Any]]], count: int, timeout: float, what: str
    ) -> list[dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(seen()) >= count, timeout):
                raise AssertionError(f"expected {count} {what} within {timeout}s, saw {seen()!r}")
            return seen()

    def clear(self) -> None:
        """Back to a fresh state (same credentials): no messages, callbacks, faults or test settings."""
        with self._cond:
            self._records.clear()
            self._by_sid.clear()
            self.callbacks.clear()
            self._faults.clear()
            self.post_attempts = 0
            self.reject_numbers, self.undeliverable_numbers = {}, set()
            self.latency, self.callback_delay, self.deliver_callbacks = 0.0, 0.0, True
            self.now = _utcnow

    def add_inbound(self, from_: str, to: str, body: str, *, date_sent: datetime | None = None) -> str:
        """Inject a message a patient sent us (as if Twilio had received it); returns its SID."""
        when = _as_utc(date_sent).replace(microsecond=0) if date_sent else self.now()
        return self._store(
            to=to, from_=from_, body=body, direction="inbound", status="received", when=when,
            num_segments=str(num_segments(body)),
        )["sid"]  # fmt: skip

    def get(self, sid: str) -> dict[str, Any] | None:
        with self._cond:
            rec = self._by_sid.get(sid)
            return dict(rec) if rec else None

    def close(self) -> None:
        """Stop status-change work; pending status changes and callbacks are dropped."""
        with self._cond:
            scheduler, executor = self._scheduler, self._executor
            self._stopping.set()
            self._cond.notify_all()
        if scheduler:
            scheduler.join()
        if executor:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            self._scheduler, self._executor, self._stopping = None, None, threading.Event()
            self._due.clear()

    # ---- internals used by the app ----
    def _store(self, **fields: Any) -> dict[str, Any]:
        when: datetime = fields.pop("when")
        media: list[str] = fields.pop("media_urls", [])
        with self._cond:
            self._seq += 1
            rec: dict[str, Any] = {
                "sid": ("MM" if media else "SM") + secrets.token_hex(16), "account_sid": self.account_sid,
                "messaging_service_sid": None, "status_callback": None, "validity_period": None,
                "media_urls": media, "num_media": str(len(media)), "error_code": None, "error_message": None,
                # The spec's create examples already carry date_sent.
                "date_created": when, "date_updated": when, "date_sent": when, "form": {}, "seq": self._seq,
                **fields,
            }  # fmt: skip
            self._records.append(rec)
            self._by_sid[rec["sid"]] = rec
            self._cond.notify_all()
            return dict(rec)

    def _next_fault(self) -> tuple[int, int, bool] | None:
        with self._cond:
            self.post_attempts += 1
            return self._faults.popleft() if self._faults else None

    def _start_lifecycle(self, sid: str) -> None:
        with self._cond:
            rec = self._by_sid.get(sid)
            if rec is None:
                return
            final = "undelivered" if rec["to"] in self.undeliverable_numbers else "delivered"
            # With a Messaging Service the message starts `accepted`; `queued` follows sender selection.
            self._schedule(sid, (["queued"] if rec["status"] == "accepted" else []) + ["sent", final])

    def _schedule(self, sid: str, steps: list[str]) -> None:
        with self._cond:
            if self._scheduler is None or self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="twilio-callback")
                self._scheduler = threading.Thread(
                    target=self._run_scheduler, args=(self._stopping, self._executor), daemon=True
                )
                self._scheduler.start()
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + self.callback_delay, self._seq, sid, steps))
            self._cond.notify_all()

    def _run_scheduler(self, stopping: threading.Event, executor: ThreadPoolExecutor) -> None:
        while True:
            with self._cond:
                while not stopping.is_set() and not (self._due and self._due[0][0] <= time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if stopping.is_set():
                    return
                _, _, sid, steps = heapq.heappop(self._due)
            executor.submit(self._advance, sid, steps)

    def _advance(self, sid: str, steps: list[str]) -> None:
        """Apply the next status, POST its signed callback, then schedule the one after (keeps order)."""
        status = steps[0]
        with self._cond:
            rec = self._by_sid.get(sid)
            if rec is None:
                return  # cleared meanwhile
            if status == "queued":
                rec["from_"] = rec["from_"] or self.messaging_service_from
                rec["num_segments"] = str(num_segments(rec["body"]))
            rec.update(status=status, date_updated=self.now())
            if status == "undelivered":
                rec.update(error_code=30003, error_message="Unreachable destination handset")
            params = {
                "MessageSid": sid, "SmsSid": sid, "AccountSid": rec["account_sid"],
                "From": rec["from_"] or "", "To": rec["to"], "MessageStatus": status,
                "SmsStatus": status, "ApiVersion": API_VERSION,
            }  # fmt: skip
            if rec["messaging_service_sid"]:
                params["MessagingServiceSid"] = rec["messaging_service_sid"]
            if rec["error_code"]:
                params["ErrorCode"] = str(rec["error_code"])
            url, deliver = rec["status_callback"], self.deliver_callbacks
            self._cond.notify_all()
        if url and deliver:
            self._post_callback(sid, status, url, params)
        if steps[1:]:
            self._schedule(sid, steps[1:])

    def _post_callback(self, sid: str, status: str, url: str, params: dict[str, str]) -> None:
        # Signed over the exact URL (query string included) and the POST params, as Twilio does.
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        result: dict[str, Any] = {"sid": sid, "status": status, "url": url, "params": params}
        try:
            resp = requests.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                timeout=self.callback_timeout,
            )
            resp.close()
            result.update(http_status=resp.status_code, error=None)
        except requests.RequestException as exc:  # a dead receiver must not take the server down
            result.update(http_status=None, error=f"{type(exc).__name__}: {exc}")
        with self._cond:
            self.callbacks.append(result)
            self._cond.notify_all()

    def resource(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The `api.v2010.account.message` JSON for a stored record."""
        base = f"/{API_VERSION}/Accounts/{rec['account_sid']}/Messages/{rec['sid']}"
        return {
            "account_sid": rec["account_sid"], "api_version": API_VERSION, "body": rec["body"],
            "date_created": rfc2822(rec["date_created"]), "date_sent": rfc2822(rec["date_sent"]),
            "date_updated": rfc2822(rec["date_updated"]), "direction": rec["direction"],
            "error_code": rec["error_code"], "error_message": rec["error_message"], "from": rec["from_"],
            "messaging_service_sid": rec["messaging_service_sid"] or self.default_messaging_service_sid,
            "num_media": rec["num_media"], "num_segments": rec["num_segments"], "price": None,
            "price_unit": None, "sid": rec["sid"], "status": rec["status"], "to": rec["to"],
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "uri": f"{base}.json",
        }  # fmt: skip


def _json(payload: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _validate_create(state: TwilioServerState, form: Any) -> dict[str, Any]:
    """Check a Messages.json POST the way Twilio does; returns the fields to store."""
    to, from_ = form.get("To", "").strip(), form.get("From", "").strip() or None
    service = form.get("MessagingServiceSid", "").strip() or None
    body, media = form.get("Body", ""), [u for u in form.getlist("MediaUrl") if u]
    callback, validity = form.get("StatusCallback", "").strip() or None, form.get("ValidityPeriod")
    if not to:
        raise TwilioError(400, 21604)
    if not _E164.match(to):
        raise TwilioError(400, 21211, to=to)
    if not from_ and not service:
        raise TwilioError(400, 21603)
    if service and not _SERVICE_SID.match(service):
        raise TwilioError(400, 21705)
    if from_ and not _SENDER.match(from_):
        raise TwilioError(400, 21606)
    if not body and not media:
        raise TwilioError(400, 21619 if service else 21602)
    if len(body) > 1600:
        raise TwilioError(400, 21617)
    if validity is not None and not (validity.strip().isdigit() and 1 <= int(validity) <= 36000):
        raise TwilioError(400, 21624)
    if callback is not None:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
            raise TwilioError(400, 21609, url=callback)
    with state._cond:
        rejected = state.reject_numbers.get(to)
    if rejected:
        raise TwilioError(400, rejected, to=to)
    return {
        "to": to, "from_": from_, "body": body, "media_urls": media, "messaging_service_sid": service,
        "status_callback": callback, "validity_period": int(validity) if validity else None,
        "direction": "outbound-api", "status": "accepted" if service else "queued",
        # A Messaging Service has not picked a sender yet, so Twilio reports 0 segments at first.
        "num_segments": "0" if service else str(num_segments(body)), "form": form.to_dict(),
    }  # fmt: skip


def _date_range(args: Any) -> tuple[datetime, datetime]:
    """DateSent / DateSent> ("on and after") / DateSent< ("on and before") as one [lo, hi) range."""
    lo, hi = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    for key in ("DateSent", "DateSent>", "DateSent<"):
        if not args.get(key):
            continue
        when, bare_date = _parse_when(args[key])
        day = when.replace(hour=0, minute=0, second=0, microsecond=0)
        if key == "DateSent":  # that whole day
            lo, hi = max(lo, day), min(hi, day + timedelta(days=1))
        elif key == "DateSent>":
            lo = max(lo, when)
        else:  # a bare date includes its whole day; times are whole seconds, so +1s makes it inclusive
            hi = min(hi, day + timedelta(days=1) if bare_date else when + timedelta(seconds=1))
    return lo, hi


def _list_page(state: TwilioServerState, path: str, args: Any) -> dict[str, Any]:
    """One page of the ListMessageResponse envelope; tokens are PA<sid>/PB<sid> like Twilio's."""
    try:
        size, page = int(args.get("PageSize", 50)), int(args.get("Page", 0))
    except ValueError:
        raise TwilioError(400, 20400, "PageSize and Page must be integers") from None
    if not 1 <= size <= 1000 or page < 0:
        raise TwilioError(400, 20400, "PageSize must be 1-1000 and Page >= 0")
    token, (after, before) = args.get("PageToken", ""), _date_range(args)
    to, from_ = args.get("To") or None, args.get("From") or None
    with state._cond:
        rows = [
            r
            for r in state._records
            if to in (None, r["to"]) and from_ in (None, r["from_"]) and after <= r["date_sent"] < before
        ]
        rows.sort(key=lambda r: (r["date_sent"], r["seq"]), reverse=True)  # newest first
        sids = [r["sid"] for r in rows]
        if not token:
            lo, hi = page * size, page * size + size
        elif token[:2] in ("PA", "PB") and token[2:] in sids:
            i = sids.index(token[2:])  # PA: the page after this record, PB: the page before it
            lo, hi = (i + 1, i + 1 + size) if token.startswith("PA") else (max(0, i - size), i)
        else:
            raise TwilioError(400, 20400, f"Invalid PageToken: {token}")
        window = rows[lo:hi]
        messages = [state.resource(r) for r in window]
    query = {k: args[k] for k in ("To", "From", "DateSent", "DateSent<", "DateSent>") if k in args}
    base = f"{path}?{urlencode({**query, 'PageSize': size})}"
    more_after = lo + len(window) < len(rows)
    next_uri = f"{base}&Page={page + 1}&PageToken=PA{window[-1]['sid']}" if window and more_after else None
    prev_uri = f"{base}&Page={max(page - 1, 0)}&PageToken=PB{window[0]['sid']}" if window and lo > 0 else None
    return {
        "messages": messages, "page": page, "page_size": size,
        "start": page * size, "end": page * size + max(len(window) - 1, 0),
        "uri": f"{base}&Page={page}" + (f"&PageToken={token}" if token else ""),
        "first_page_uri": f"{base}&Page=0", "next_page_uri": next_uri, "previous_page_uri": prev_uri,
    }  # fmt: skip


def create_twilio_app(state: TwilioServerState) -> Flask:
    app = Flask(__name__)
    prefix = f"/{API_VERSION}/Accounts/<account_sid>"

    @app.errorhandler(TwilioError)
    def twilio_error(exc: TwilioError) -> Response:
        resp = _json(exc.payload(), exc.status)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Unknown paths and methods get Twilio's 404 JSON; anything else keeps its status, in the same shape.
        if exc.code in (None, 404, 405):
            return twilio_error(TwilioError(404, 20404, path=request.path))
        return twilio_error(TwilioError(exc.code, 20000 + exc.code, exc.name))

    @app.before_request
    def authenticate() -> None:
        with state._cond:
            latency, sid, token = state.latency, state.account_sid, state.auth_token
        if latency > 0:
            time.sleep(latency)  # simulated network/API time
        auth = request.authorization
        if (
            auth is None
            or not hmac.compare_digest((auth.username or "").encode(), sid.encode())
            or not hmac.compare_digest((auth.password or "").encode(), token.encode())
        ):
            raise TwilioError(401, 20003)
        view_args = request.view_args or {}
        if view_args.get("account_sid", sid) != sid:
            raise TwilioError(404, 20404, path=request.path)

    @app.post(f"{prefix}/Messages.json")
    def create_message(account_sid: str) -> Response:
        fault = state._next_fault()
        if fault and not fault[2]:
            raise TwilioError(fault[0], fault[1])
        fields = _validate_create(state, request.form)
        rec = state._store(when=state.now(), **fields)
        if fault:  # stored, yet the caller hears an error: the ambiguous-5xx case
            state._start_lifecycle(rec["sid"])
            raise TwilioError(fault[0], fault[1])
        resp = _json(state.resource(rec), 201)
        # Status changes start only once the 201 has gone out, so callbacks never beat the response.
        resp.call_on_close(lambda: state._start_lifecycle(rec["sid"]))
        return resp

    @app.get(f"{prefix}/Messages.json")
    def list_messages(account_sid: str) -> Response:
        return _json(_list_page(state, request.path, request.args), 200)

    @app.get(f"{prefix}/Messages/<sid>.json")
    def fetch_message(account_sid: str, sid: str) -> Response:
        with state._cond:
            rec = state._by_sid.get(sid)
            if rec is None:
                raise TwilioError(404, 20404, path=request.path)
            return _json(state.resource(rec), 200)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one log line per request would dominate benchmark output


class TwilioServer:
    """Serves create_twilio_app(state) on host:port from a background thread; port 0 picks a free one."""

    def __init__(self, state: TwilioServerState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state, self.host, self.port = state, host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("TwilioServer is not started")
        return f"http://{self.host}:{self._server.port}"

    def start(self) -> TwilioServer:
        app = create_twilio_app(self.state)
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        # A short poll interval keeps stop() (server.shutdown) fast; the default waits up to 0.5 s.
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
        self.state.close()

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for Twilio's Messages API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument("--callback-delay", type=float, default=0.0, help="seconds per status change")
    parser.add_argument("--no-callbacks", action="store_true", help="do not POST status callbacks")
    parser.add_argument("--reject", action="append", default=[], metavar="NUMBER=CODE")
    parser.add_argument("--undeliverable", action="append", default=[], metavar="NUMBER")
    args = parser.parse_args(argv)
    state = TwilioServerState(args.account_sid, args.auth_token)
    state.latency, state.callback_delay = args.latency, args.callback_delay
    state.deliver_callbacks = not args.no_callbacks
    state.reject_numbers = {n: int(c) for n, c in (r.split("=", 1) for r in args.reject)}
    state.undeliverable_numbers = set(args.undeliverable)
    # The kernel may deliver SIGTERM to any thread, and a main thread blocked in a lock never sees a
    # signal another thread took (the stand-in then ignored terminate() and hung CI). So block the stop
    # signals before any thread starts (threads inherit the mask) and wait for them here; one that
    # arrives before sigwait stays pending, so a terminate() right after the "listening" line still stops.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = TwilioServer(state, args.host, args.port)
    try:
        server.start()
        print(f"twilio stand-in listening on {server.url}", flush=True)
        signal.sigwait(stop_signals)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
