"""Helpers every blueprint uses: the runtime, a request-scoped session, JSON errors, strict numbers and the
one check of odd input (NUL, digits other than 0-9, numbers past a database id) for every page."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from pro_service.runtime import Runtime
from pro_service.services.audit import record

# Ids are PostgreSQL `integer`s: a number past this is no row of ours (and a DataError if it is sent).
MAX_ID = 2**31 - 1
# Query parameters that hold an id or a count, wherever they appear: their digits must make a number no
# bigger than MAX_ID. (Any other parameter may hold a long run of digits: a phone number, an MRN.)
NUMBER_PARAMS = frozenset({"after", "before", "id", "mid", "page", "patient", "team", "_count", "_offset"})
# Blueprints that read their input their own way: the Twilio webhooks (the signature covers the values as
# sent; the inbound one is ingest/handler.py, before Flask), the REST API (its pydantic models refuse NUL
# field by field) and HL7 (a message body, not a form).
OWN_INPUT_BLUEPRINTS = frozenset({"twilio", "api", "hl7"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["pro"]
    return rt


def db() -> Session:
    """One session per request, closed at teardown. Only services decide when to commit."""
    if "db_session" not in g:
        g.db_session = runtime().sessions()
    session: Session = g.db_session
    return session


def json_error(status: int, error: str, detail: Any = None) -> ResponseReturnValue:
    return jsonify({"error": error, "detail": detail}), status


def parse_int(value: str | None, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """`value` as a whole number from `minimum` to `maximum`, written with the ASCII digits 0-9 only; None
    for anything else. (`str.isdigit` alone also passes "²" and "٣", which `int` refuses or reads.)"""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > len(str(maximum)):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def parse_id(value: str | None) -> int | None:
    """A row id (1 to MAX_ID) in ASCII digits, or None."""
    return parse_int(value, minimum=1)


def refuse_odd_input() -> None:
    """Before every request (web/auth.py installs it): 400 for a query or form value with NUL (PostgreSQL
    text cannot hold it), for a value all digits but not all 0-9 ("²"), and for an id or count parameter
    (NUMBER_PARAMS) past MAX_ID; 404 for a path id past MAX_ID or written with other digits. One check for
    every page, so a view's own `isdigit()` and `int()` never meet these. Values are never echoed."""
    if request.blueprint in OWN_INPUT_BLUEPRINTS:
        return
    for name, value in request.args.items(multi=True):
        _check(name, value, "address")
    if request.mimetype in FORM_TYPES:
        for name, value in request.form.items(multi=True):
            _check(name, value, "form")
    if "\x00" in request.path:  # a path value (/a/<ref>) reaches a query too (found by the fuzz run)
        abort(404)
    ids = [value for value in (request.view_args or {}).values() if isinstance(value, int)]
    if ids and (max(ids) > MAX_ID or any(ch.isdigit() and not ch.isascii() for ch in request.path)):
        abort(404)  # werkzeug's int converter reads "٣" as 3 and takes any length


def _check(name: str, value: str, where: str) -> None:
    if "\x00" in name or "\x00" in value:
        abort(400, f"The {where} contains the NUL character, which cannot be used. Remove it and try again.")
    if value.isdigit() and (not value.isascii() or (name in NUMBER_PARAMS and parse_int(value) is None)):
        shown = name[:40].encode("ascii", "backslashreplace").decode()
        abort(400, f"{shown} must be a whole number from 0 to {MAX_ID}, written with the digits 0-9.")


def audit_request(
    actor: str, action: str, subject: tuple[str, object], patient_id: int | None, detail: dict[str, Any]
) -> None:
    """An audit row for this request (its address, the runtime's clock), in the request's unit of work:
    kept when the answer is a success. `actor` is the signed-in person or the API token's owner."""
    record(
        db(),
        actor=actor,
        action=action,
        subject=subject,
        patient_id=patient_id,
        detail=detail,
        ip=request.remote_addr,
        at=runtime().now(),
    )
