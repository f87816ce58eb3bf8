"""The patient-phone simulator (only with SMS_BACKEND=outbox): see a patient's thread, reply as them.

Replying as any patient is not a nurse's job: the simulator is for administrators, and for nurses only when
SIMULATOR_FOR_NURSES is on (unset, it is on for the embedded default that `pro-service run` starts: SQLite,
outbox, no Redis; see config/settings.py), so a staging or training deployment does not let every nurse
speak in patients' names. A nurse lists, reads and speaks for only the patients of their own care teams
(services/access.py); another team's patient is a 404.

A reply takes the same road as a real one: the form is signed as Twilio signs
(RequestValidator(webhook_auth_token) over PUBLIC_BASE_URL + "/twilio/sms") and posted, with a fresh
MessageSid, to the app's own /twilio/sms through an in-process client. Nothing is inserted here: the
webhook stores it, the worker reads it, the rules score it.

The view holds no transaction while it posts: on SQLite every transaction takes the database's write lock
(BEGIN IMMEDIATE, pro_service/db.py), so the webhook would wait out the busy timeout (30 s) and answer 503.
The webhook commits the reply on its own; the outcome is audited afterwards in a short transaction of its
own. A refusal is kept in the session (status only, no message text) and shown until a reply goes through.
"""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import case, select
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator

from pro_service.models import Message, Patient, PatientStatus, StaffRole
from pro_service.services import access
from pro_service.services.audit import record_kept
from pro_service.services.outbound import sender_number
from pro_service.web.auth import actor, audit, current_staff, is_admin
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed

log = logging.getLogger(__name__)
bp = Blueprint("simulator", __name__, url_prefix="/simulator")
QUICK_REPLIES = ("YES", "NO", "0", "3", "7", "1 3", "NURSE", "HELP", "STOP", "START")
ERROR_KEY = "simulator_error"  # in the session: {"patient": id, "status": HTTP status} of a refused reply


@bp.before_request
def _outbox_and_allowed() -> None:
    settings = runtime().settings
    if settings.SMS_BACKEND != "outbox":
        abort(404)
    if not allowed():
        abort(403, "The patient-phone simulator is for administrators.")


def allowed() -> bool:
    """Whether the signed-in staff member may use the simulator (the app's sign-in check ran before)."""
    if is_admin():
        return True
    return current_staff().role == StaffRole.NURSE and runtime().settings.simulator_for_nurses


def _scope() -> access.Scope:
    """The patients this person may speak for: a nurse, those of their care teams (services/access.py, no
    break-glass: speaking as a patient is never an emergency); an administrator, all."""
    return access.scope_for_staff(db(), current_staff(), runtime().now())


def _patients() -> list[Patient]:
    demo_first = case((Patient.mrn.startswith("DEMO-"), 0), else_=1)
    listed = select(Patient).where(Patient.status != PatientStatus.DISCHARGED)
    listed = access.scoped(listed, _scope(), Patient.id, Patient.care_team_id)
    return list(db().scalars(listed.order_by(demo_first, Patient.id).limit(50)))


def _patient_or_404(patient_id: int) -> Patient:
    patient = db().get(Patient, patient_id) if patient_id <= 2**31 - 1 else None
    if patient is None or not _scope().in_scope(patient.id, patient.care_team_id):
        abort(404)
    return patient


def _thread(patient_id: int) -> list[Message]:
    rows = (
        db()
        .scalars(
            select(Message).where(Message.patient_id == patient_id).order_by(Message.id.desc()).limit(60)
        )
        .all()
    )
    return list(reversed(rows))


@bp.get("/")
def index() -> ResponseReturnValue:
    patients = _patients()
    wanted = request.args.get("patient", "")
    selected = next((p for p in patients if str(p.id) == wanted), patients[0] if patients else None)
    messages = _thread(selected.id) if selected else []
    if selected is not None:
        audit("view_messages", ("patient", selected.id), selected.id, page="simulator")
    disclosed(actor(), "simulator", (p.id for p in patients))  # the picker names them all
    return render_template(
        "simulator/index.html",
        patients=patients,
        selected=selected,
        messages=messages,
        quick_replies=QUICK_REPLIES,
        refused_status=_refused_status(selected.id) if selected else None,
    )


def _refused_status(patient_id: int) -> int | None:
    """The HTTP status of this patient's last refused reply, until one goes through or it is dismissed."""
    error = session.get(ERROR_KEY)
    if isinstance(error, dict) and error.get("patient") == patient_id:
        return int(error.get("status", 0))
    return None


@bp.get("/<int:patient_id>/thread")
def thread_poll(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    messages = _thread(patient.id)
    disclosed(actor(), "simulator_thread", [patient.id])  # polled every few seconds: once per window
    html = render_template("simulator/_thread.html", messages=messages, selected=patient)
    return jsonify({"html": html, "last_id": messages[-1].id if messages else 0})


def post_as_patient(phone: str, body: str) -> int:
    """Sign and post the reply to our own webhook exactly as Twilio would; returns the HTTP status.
    The caller must hold no open transaction (see the module's docstring)."""
    if db().in_transaction():  # on SQLite the webhook would wait 30 s for our lock, then answer 503
        raise RuntimeError("post_as_patient called inside an open transaction")
    rt = runtime()
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": sender_number(rt),
        "Body": body,
        "NumMedia": "0",
    }
    url = rt.settings.PUBLIC_BASE_URL + "/twilio/sms"
    signature = RequestValidator(rt.settings.webhook_auth_token).compute_signature(url, params)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # A fresh application context: the webhook gets its own database session, as a real request would.
    with app.app_context():
        response = app.test_client().post(
            "/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
        )
    return int(response.status_code)


@bp.post("/<int:patient_id>/reply")
def reply(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    phone = patient.phone
    # End the request's transaction (the sign-in check and this read opened it) before posting: on SQLite
    # it holds the write lock the webhook needs. Nothing is pending (the guard's writes commit on their own),
    # so ending it loses nothing.
    db().rollback()
    # The typed text, or a quick-reply button (a submit button named "body", after the text box).
    body = next((v.strip() for v in reversed(request.form.getlist("body")) if v.strip()), "")[:1600]
    back = redirect(url_for("simulator.index", patient=patient_id) + "#reply")
    if not body:
        flash("Type a reply first.", "warning")
        return back
    status = post_as_patient(phone, body)
    if status == 200:
        session.pop(ERROR_KEY, None)
    else:
        log.error("simulator reply refused by the webhook", extra={"status": status})
        session[ERROR_KEY] = {"patient": patient_id, "status": status}
    # The outcome, in a short transaction of its own. The reply is already committed by the webhook, so a
    # failure here must not tell the user to send it again.
    try:
        record_kept(
            db(),
            actor=actor(),
            action="simulate_patient_reply",
            subject=("patient", patient_id),
            patient_id=patient_id,
            detail={"webhook_status": status},
            ip=request.remote_addr,
            at=runtime().now(),
        )
    except SQLAlchemyError:
        db().rollback()
        log.exception("simulator reply not audited", extra={"status": status})
    return back


@bp.post("/<int:patient_id>/dismiss-error")
def dismiss_error(patient_id: int) -> ResponseReturnValue:
    if _refused_status(patient_id) is not None:
        session.pop(ERROR_KEY, None)
    return redirect(url_for("simulator.index", patient=patient_id) + "#reply")
