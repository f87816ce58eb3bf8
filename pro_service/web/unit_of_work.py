"""The request's unit of work: the one place a staff page, an API call or a callback commits.

A request gets one session (`common.db()`). When the request's answer is known, the unit of work ends it:
committed if the answer is a success (a status below 400: a page, a redirect, 201, 204), rolled back if the
answer is a refusal or an error (a 4xx or 5xx, returned or raised). So a view never commits: it calls
services and returns. A service that must keep a row whatever the answer (a refused sign-in's audit row,
a session ended for idleness) owns that transaction itself and commits it (services own use cases and
transactions). The commit runs inside Flask's dispatch, so a failed commit reaches the blueprint's error
handlers like any other error (IntegrityError: the API's 409; OperationalError: the 503 page).

Celery tasks, the CLI and the demo use `Runtime.unit_of_work()`; the inbound SMS webhook, which runs before
Flask, commits its single INSERT on its own autocommit pool (ingest/store.py).

Modelled on pyramid_tm (warehouse's request transaction: commit unless the request failed) and the unit of
work of "Architecture Patterns with Python".
"""

from __future__ import annotations

import copy
import logging
from typing import Any, cast

from flask import Flask, g, session
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)
# A status at or above this is a refusal or an error: nothing the request wrote is kept.
FIRST_REFUSAL_STATUS = 400


class UnitOfWorkFlask(Flask):
    """Flask with the request's unit of work at the two places a request gets its answer: a before-request
    hook that answers (a sign-in redirect, a refused role) and the view."""

    def preprocess_request(self) -> ResponseReturnValue | None:
        # The signed cookie as the request found it (a plain copy: reading it this way marks nothing
        # accessed), to put back if the request fails (handle_user_exception).
        g.cookie_at_start = _cookie()
        answer = super().preprocess_request()
        return None if answer is None else end_unit_of_work(self, answer)

    def dispatch_request(self) -> ResponseReturnValue:
        return end_unit_of_work(self, super().dispatch_request())

    def handle_user_exception(self, e: Exception) -> Any:
        # Raised (abort(403), a service error mapped by a blueprint, a database error): nothing is kept,
        # and the error page renders on a clean session.
        db_session = g.get("db_session")
        if db_session is not None:
            try:
                db_session.rollback()
            except Exception:  # a dead connection: the handler still answers (503); teardown closes it
                log.warning("rollback after an error failed", exc_info=True)
        if not isinstance(e, HTTPException):
            _restore_cookie()
        return super().handle_user_exception(e)


def _cookie() -> dict[str, Any]:
    """A deep copy of the signed cookie's contents (`flash` appends to the list already there), read
    without marking the session accessed (no `Vary: Cookie` on answers that never looked at it)."""
    current = cast(dict[str, Any], session._get_current_object())  # type: ignore[attr-defined]
    return copy.deepcopy(dict.copy(current))


def _restore_cookie() -> None:
    """An unexpected error, or a commit that failed: what the request put in the signed cookie goes with
    what it wrote to the database. Otherwise a break-glass grant would outlive its rolled-back audit row,
    and a flash ("Alert acknowledged") would tell the next page of something that never happened. A
    deliberate refusal (abort, or an answer of 400 and more) keeps the cookie as its view left it: signing
    out on a 401 clears it on purpose."""
    before = g.get("cookie_at_start")
    if before is not None and _cookie() != before:
        session.clear()
        session.update(before)


def end_unit_of_work(app: Flask, answer: ResponseReturnValue) -> Response:
    response = app.make_response(answer)
    session = g.get("db_session")
    if session is not None:
        if response.status_code < FIRST_REFUSAL_STATUS:
            session.commit()
        else:
            session.rollback()
    return response
