"""POST /twilio/sms: verify, store, commit, then 200 — as a plain WSGI handler in front of Flask.

This is the one route whose rate is set by patients' phones, not by staff, and every reply waits on it.
Flask's request machinery (context, form parsing, session, hooks) cost more CPU than the route's own work
(benchmarks/bench_ingest.py), so this handler takes the request before Flask sees it and does only: parse
the urlencoded form, check Twilio's signature (the `twilio` library's validator) against the public URL,
run the one INSERT (committed when it returns), answer empty TwiML. No broker call: workers poll for
stored replies (workers/wake.py). Every other path goes to Flask unchanged.

Signatures are checked against PUBLIC_BASE_URL + path + query (the URL Twilio called), not the URL seen
behind a proxy. A database outage answers 503, so the provider logs it and reconciliation fetches the
message later (Twilio does not redeliver inbound webhooks).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from pro_service.metrics import INBOUND_STORED, REQUEST_LATENCY
from pro_service.observability import request_id_var
from pro_service.runtime import Runtime
from pro_service.services.inbound import INSERT_INBOUND, Stored, inbound_values, store_inbound, stored

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
        self.validator = RequestValidator(rt.settings.webhook_auth_token)
        self.public_url = rt.settings.PUBLIC_BASE_URL + PATH
        # PostgreSQL: the driver directly, on the autocommit pool (one round trip: BEGIN, INSERT, COMMIT
        # would be three). SQLite (embedded): SQLAlchemy in a transaction, with its BEGIN IMMEDIATE.
        self.store: Callable[[MultiDict[str, str]], Stored]
        if rt.ingest_engine.dialect.name == "postgresql":
            self.store = PostgresInsert(rt.ingest_engine, rt)
        else:
            self.store = SqlAlchemyInsert(rt.ingest_engine, rt)

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
        REQUEST_LATENCY.labels(PATH, "POST", str(status)).observe(time.perf_counter() - started)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, bytes, str]:
        try:
            form = self._verified_form(environ)
            stored = self.store(form)
        except Refused as refused:
            return refused.status, refused.text.encode(), "text/plain"
        except DatabaseUnavailable:
            log.error("database unavailable: inbound SMS not stored")
            return 503, b"the database is unavailable", "text/plain"
        except Exception:
            log.exception("inbound SMS failed")
            return 500, b"internal error", "text/plain"
        # Counted, and logged at DEBUG only: at hundreds a second an INFO line each is noise (and ~5 % of the
        # route's CPU); refusals and failures are logged above at WARNING/ERROR.
        INBOUND_STORED.labels("duplicate" if stored.message_id is None else "stored").inc()
        log.debug("inbound stored", extra={"message_id": stored.message_id, "patient_id": stored.patient_id})
        return 200, EMPTY_TWIML, "text/xml"

    def _verified_form(self, environ: dict[str, Any]) -> MultiDict[str, str]:
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature:
            log.warning("inbound webhook refused: no signature")
            raise Refused(403, "invalid signature")
        raw = _body(environ)
        urlencoded = environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
        # UTF-8, blank values kept. An undecodable byte becomes U+FFFD, so the signature fails (403), as it
        # did when Flask parsed the form.
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True) if urlencoded else []
        form: MultiDict[str, str] = MultiDict(pairs)
        query = environ.get("QUERY_STRING", "")
        url = self.public_url + (f"?{query}" if query else "")
        if not twilio_signed(self.validator, url, form, signature):
            log.warning("inbound webhook refused: bad signature")
            raise Refused(403, "invalid signature")
        return form


def twilio_signed(validator: RequestValidator, url: str, form: MultiDict[str, str], signature: str) -> bool:
    """Twilio's signature over `url` (the public URL it called) and the form. The exact URL first (one
    HMAC), then the library's port variants (two more); malformed input is simply not signed."""
    if not signature:
        return False
    try:
        if hmac.compare_digest(validator.compute_signature(url, form), signature):
            return True
        return bool(validator.validate(url, form, signature))
    except (ValueError, TypeError, UnicodeError):
        return False


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


class DatabaseUnavailable(Exception):
    """The message could not be stored: answer 503 (Twilio logs it; reconciliation fetches it later)."""


class SqlAlchemyInsert:
    """INSERT_INBOUND through SQLAlchemy, in a transaction (SQLite: the embedded default)."""

    def __init__(self, engine: Engine, rt: Runtime) -> None:
        self.engine = engine
        self.rt = rt

    def __call__(self, form: MultiDict[str, str]) -> Stored:
        for attempt in (1, 2):
            try:
                with self.engine.begin() as connection:
                    return store_inbound(connection, form, self.rt.now())
            except PoolTimeout as exc:
                raise DatabaseUnavailable from exc
            except OperationalError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise DatabaseUnavailable from exc
        raise AssertionError("unreachable")


class PostgresInsert:
    """INSERT_INBOUND on a raw psycopg connection from an autocommit pool: one round trip, committed (and
    on disk) when it returns. SQLAlchemy's Connection and Result machinery cost about 40 % of this
    route's database CPU, so the statement SQLAlchemy compiled once runs on the driver directly; the
    pool (checkout, return, invalidation) stays SQLAlchemy's."""

    def __init__(self, engine: Engine, rt: Runtime) -> None:
        self.engine = engine
        self.rt = rt
        self.sql = INSERT_INBOUND.compile(dialect=engine.dialect).string  # %(name)s, with ::JSON casts
        self.driver_error: type[Exception] = engine.dialect.loaded_dbapi.OperationalError

    def __call__(self, form: MultiDict[str, str]) -> Stored:
        values = inbound_values(form, self.rt.now())
        values["media"] = None if values["media"] is None else json.dumps(values["media"])
        # After a PostgreSQL restart every idle pooled connection is dead (there is no pre-ping): drop each
        # one found dead and try the next, at most pool-size times, then a fresh connection.
        for _ in range(self.engine.pool.size() + 1):  # type: ignore[attr-defined]
            try:
                connection = self.engine.raw_connection()
            except (self.driver_error, PoolTimeout) as exc:  # cannot connect, or no pooled connection free
                raise DatabaseUnavailable from exc
            try:
                cursor = connection.cursor()
                cursor.execute(self.sql, values)
                row = cursor.fetchone()
                cursor.close()
                return stored(row)
            except self.driver_error as exc:
                if not getattr(connection.dbapi_connection, "broken", True):
                    raise DatabaseUnavailable from exc  # the server answered with an error
                connection.invalidate(exc)  # closed, never handed to another request
            finally:
                connection.close()  # back to the pool (a no-op after invalidate)
        raise DatabaseUnavailable("no live connection to PostgreSQL")
