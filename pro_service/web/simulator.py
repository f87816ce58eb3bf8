"""The patient-phone simulator (only with SMS_BACKEND=outbox): see a patient's thread, reply as them.

A reply takes the same road as a real one: the form is signed as Twilio signs
(RequestValidator(webhook_auth_token) over PUBLIC_BASE_URL + "/twilio/sms") and posted, with a fresh
MessageSid, to the app's own /twilio/sms through an in-process client. Nothing is inserted here: the
webhook stores it, the worker reads it, the rules score it.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import case, select
from twilio.request_validator import RequestValidator

from pro_service.models import Message, Patient, PatientStatus
from pro_service.services.outbound import sender_number
from pro_service.web.auth import audit
from pro_service.web.common import db, runtime

log = logging.getLogger(__name__)
bp = Blueprint("simulator", __name__, url_prefix="/simulator")
QUICK_REPLIES = ("YES", "NO", "0", "3", "7", "1 3", "NURSE", "HELP", "STOP", "START")


@bp.before_request
def _outbox_only() -> None:
    if runtime().settings.SMS_BACKEND != "outbox":
        abort(404)


def _patients() -> list[Patient]:
    demo_first = case((Patient.mrn.startswith("DEMO-"), 0), else_=1)
    return list(
        db().scalars(
            select(Patient)
            .where(Patient.status != PatientStatus.DISCHARGED)
            .order_by(demo_first, Patient.id)
            .limit(50)
        )
    )


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
        db().commit()
    return render_template(
        "simulator/index.html",
        patients=patients,
        selected=selected,
        messages=messages,
        quick_replies=QUICK_REPLIES,
    )


@bp.get("/<int:patient_id>/thread")
def thread_poll(patient_id: int) -> ResponseReturnValue:
    patient = db().get(Patient, patient_id) if patient_id <= 2**31 - 1 else None
    if patient is None:
        abort(404)
    messages = _thread(patient.id)
    html = render_template("simulator/_thread.html", messages=messages, selected=patient)
    return jsonify({"html": html, "last_id": messages[-1].id if messages else 0})


def post_as_patient(patient: Patient, body: str) -> int:
    """Sign and post the reply to our own webhook exactly as Twilio would; returns the HTTP status."""
    rt = runtime()
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": patient.phone,
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
    patient = db().get(Patient, patient_id) if patient_id <= 2**31 - 1 else None
    if patient is None:
        abort(404)
    # The typed text, or a quick-reply button (a submit button named "body", after the text box).
    body = next((v.strip() for v in reversed(request.form.getlist("body")) if v.strip()), "")[:1600]
    back = redirect(url_for("simulator.index", patient=patient.id) + "#reply")
    if not body:
        flash("Type a reply first.", "warning")
        return back
    status = post_as_patient(patient, body)
    audit("simulate_patient_reply", ("patient", patient.id), patient.id, webhook_status=status)
    db().commit()
    if status != 200:
        log.error("simulator reply refused by the webhook", extra={"status": status})
        flash(f"The webhook refused the reply (HTTP {status}).", "danger")
    return back
