"""Twilio's delivery-status callback. Verify, then record it (services/outbound.py::record_status_callback).

Signatures are checked against the public URL Twilio called (PUBLIC_BASE_URL + path + query), not the URL
Flask sees behind a proxy. The inbound SMS webhook is ingest/handler.py, a WSGI handler in front of Flask.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from pro_service.services.outbound import record_status_callback
from pro_service.sms.twilio_signature import TwilioSignature
from pro_service.web.common import db, parse_id, runtime

log = logging.getLogger(__name__)
bp = Blueprint("twilio", __name__, url_prefix="/twilio")


def _public_url() -> str:
    query = request.query_string.decode("latin-1")
    return runtime().settings.PUBLIC_BASE_URL + request.path + (f"?{query}" if query else "")


def _signed() -> bool:
    signature = TwilioSignature(runtime().settings.webhook_auth_token)
    return signature.signed(
        _public_url(), list(request.form.items(multi=True)), request.headers.get("X-Twilio-Signature", "")
    )


def _forbidden() -> ResponseReturnValue:
    return Response("invalid signature", status=403, mimetype="text/plain")


@bp.post("/status")
def status_callback() -> ResponseReturnValue:
    if not _signed():
        return _forbidden()
    # Our row id, as we wrote it into the callback URL: 0-9 only and no bigger than an id ("٣" is not 3,
    # and a number past an integer column is no row of ours, not a database error).
    message_id = parse_id(request.args.get("mid"))
    if message_id is None:
        return Response("", status=204)
    code = request.form.get("ErrorCode") or ""
    # Twilio's error codes are five-digit numbers: anything else (e.g. "²", which isdigit()) is not one.
    error_code = int(code) if code.isascii() and code.isdigit() and len(code) <= 9 else None
    # A 204 is kept by the request's unit of work; the 403 above wrote nothing.
    record_status_callback(
        db(),
        runtime(),
        message_id,
        reported=request.form.get("MessageStatus") or request.form.get("SmsStatus") or "",
        sid=request.form.get("MessageSid") or None,
        error_code=error_code,
    )
    return Response("", status=204)
