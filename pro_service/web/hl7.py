"""HL7 v2 lab results over HTTP: POST /hl7/oru, the body one ORU^R01 message (ER7, "pipe" encoding).

The answer is an HL7 ACK (x-application/hl7-v2+er7), as in the HAPI "HL7 over HTTP" specification:
- AA (HTTP 200): every result in the message is stored (or was already: a repeat changes nothing);
- AE (HTTP 200): a result cannot be recorded (unknown patient, unknown code, bad unit, invalid value):
  nothing of the message is stored; MSA-3 and the ERR segment say what and where. Fix and send again.
- AR (HTTP 200, or 400 when the body is not an HL7 message at all): not an ORU^R01 we can read; sending it
  again will not help.
A failure of ours (the database down) is HTTP 503 with an AE: send again later, nothing was stored.

Bearer tokens as for /api: a client with the scope `labs:write` (or an administrator's own token); a refused
token gets the API's JSON error (401/403). The view is thin: decode, parse (pro_service.hl7v2, pure), record
(services.labs), audit, ACK. Every ACK of a readable message is HTTP 200, so the request's unit of work
(web/unit_of_work.py) commits it: an AE or AR rolls back first, so nothing of a rejected message is kept.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from pro_service import hl7v2
from pro_service.services import lab_alerts, labs, tokens
from pro_service.web.api import LAB_WRITERS, ApiError, audit, requires
from pro_service.web.common import db, json_error, runtime

bp = Blueprint("hl7", __name__, url_prefix="/hl7")
log = logging.getLogger(__name__)
MEDIA_TYPE = "x-application/hl7-v2+er7"


def _ack(message: Any | None, code: str, text: str = "", *, status: int = 200, **err: Any) -> Response:
    body = hl7v2.ack(message, code, text, **err)
    response = Response(body, status=status, content_type=f"{MEDIA_TYPE}; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ApiError)
def _auth_error(exc: ApiError) -> ResponseReturnValue:
    db().rollback()
    return json_error(exc.status, exc.error, exc.detail)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    """413 (a body over 1 MiB), 405 and the like: the status, not an ACK (the message was not read)."""
    return json_error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description)


@bp.errorhandler(OperationalError)
def _database_down(_exc: OperationalError) -> ResponseReturnValue:
    log.error("database unavailable")
    response = _ack(
        g.get("hl7_message"),
        "AE",
        "the service is briefly unavailable; send again",
        status=503,
        error="internal",
    )
    response.headers["Retry-After"] = "30"
    return response


@bp.errorhandler(IntegrityError)
def _concurrent(_exc: IntegrityError) -> ResponseReturnValue:
    """Another message recorded the same result first (the request's commit, or a flush, refused ours):
    nothing of this message was kept (the unit of work rolled back); sending it again finds that row."""
    return _ack(
        g.get("hl7_message"), "AE", "a concurrent message recorded this result; send again", error="internal"
    )


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    # Where, not what: a message may quote the result (PHI); the frames are code only.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("HL7 request failed: %s\n%s", type(exc).__name__, frames)
    try:
        db().rollback()
    except Exception:  # already failing: the ACK below is what matters
        log.warning("rollback failed after an HL7 error")
    return _ack(g.get("hl7_message"), "AE", "internal error; send again later", status=500, error="internal")


def _text() -> str:
    charset = request.mimetype_params.get("charset") or "utf-8"
    try:
        return request.get_data().decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise hl7v2.Reject(
            f"the body is not {charset} text; send UTF-8 or name the charset", "data"
        ) from None


@bp.post("/oru")
@requires(*LAB_WRITERS, scope=tokens.LABS_WRITE)
def oru() -> ResponseReturnValue:
    try:
        message = hl7v2.parse_message(_text())
    except hl7v2.Reject as exc:
        return _ack(None, "AR", str(exc), status=400, error=exc.error)
    g.hl7_message = message
    try:
        parsed = hl7v2.oru_r01(message)
        outcomes = lab_alerts.record_and_raise(db(), runtime(), parsed.results)
    except hl7v2.Reject as exc:
        db().rollback()
        return _ack(message, "AR", str(exc), error=exc.error)
    except labs.LabError as exc:
        db().rollback()
        return _ack(message, "AE", str(exc), error=hl7v2.error_kind(exc), where=exc.where)
    for outcome in outcomes:
        row = outcome.result
        audit("record_lab_result", ("lab_result", row.id), row.patient_id, via="hl7", outcome=outcome.outcome)
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in labs.Outcome}
    summary = ", ".join(f"{n} {kind.value}" for kind, n in counts.items() if n)
    return _ack(message, "AA", summary)
