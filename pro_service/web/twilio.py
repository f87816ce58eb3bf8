"""Twilio's delivery-status callback. Verify, then record the status (forward only).

Signatures are checked against the public URL Twilio called (PUBLIC_BASE_URL + path + query), not the URL
Flask sees behind a proxy. The inbound SMS webhook is web/inbound_sms.py, a WSGI handler in front of Flask.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from pro_service.models import Direction, Message, MessageStatus
from pro_service.services.outbound import apply_provider_error
from pro_service.web.common import db, runtime
from pro_service.web.twilio_signature import TwilioSignature

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
    try:
        message_id = int(request.args.get("mid", ""))
    except ValueError:
        return Response("", status=204)
    new_raw = (request.form.get("MessageStatus") or request.form.get("SmsStatus") or "").lower()
    try:
        new = MessageStatus(new_raw)
    except ValueError:
        return Response("", status=204)  # a status we do not track (e.g. "read"): nothing to record
    session = db()
    rt = runtime()
    message = session.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if message is None or message.direction != Direction.OUTBOUND:
        session.rollback()
        return Response("", status=204)
    sid = request.form.get("MessageSid")
    if sid and message.twilio_sid not in (None, sid):
        session.rollback()
        return Response("", status=204)  # a callback for another message: ignore
    # The send's own answer was lost (a crash, a 5xx after acceptance): the callback names the copy.
    if (
        sid
        and message.twilio_sid is None
        and session.scalar(select(Message.id).where(Message.twilio_sid == sid)) is None
    ):
        message.twilio_sid = sid
    if message.status.can_move_to(new) or message.status == MessageStatus.UNCERTAIN:
        message.status = new
        code = request.form.get("ErrorCode")
        if code and code.isdigit():
            message.error_code = int(code)
            if message.patient_id is not None:
                apply_provider_error(session, rt, message.patient_id, int(code))
    session.commit()
    return Response("", status=204)
