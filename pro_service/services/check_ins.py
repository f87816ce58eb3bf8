"""Check-ins: start one, apply a reply, and the timers beat sweeps (first send, reminder, expiry).

The conversation itself is pure (`pro_service.conversation`); this module loads its state, persists the
step and queues what it says to send. Timers are columns (`next_deadline_at`), never countdown tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service import conversation
from pro_service.db import ROW_LOCK
from pro_service.instruments import Instrument
from pro_service.models import (
    OPEN_CHECK_IN_STATUSES,
    Answer,
    AnswerStatus,
    CheckIn,
    CheckInStatus,
    Message,
    MessageKind,
    Patient,
    PatientStatus,
    Schedule,
)
from pro_service.runtime import Runtime
from pro_service.scheduling import QuietHours, send_time
from pro_service.services.errors import Conflict, NotFound, ServiceError
from pro_service.services.outbound import queue_to_patient

log = logging.getLogger(__name__)


class CheckInError(ServiceError):
    """A check-in cannot start: `UnknownInstrument` (NotFound) or `CheckInRefused` (Conflict)."""


class UnknownInstrument(CheckInError, NotFound):
    def __init__(self, code: str) -> None:
        super().__init__("instrument", repr(code))


class CheckInRefused(CheckInError, Conflict):
    """The patient's state forbids it: they cannot receive SMS, or a check-in is already open."""


def quiet_hours(rt: Runtime) -> QuietHours:
    return QuietHours(rt.settings.QUIET_HOURS_START, rt.settings.QUIET_HOURS_END)


def open_check_in(session: Session, patient_id: int) -> CheckIn | None:
    return session.scalar(
        select(CheckIn).where(CheckIn.patient_id == patient_id, CheckIn.status.in_(OPEN_CHECK_IN_STATUSES))
    )


def instrument_of(rt: Runtime, check_in: CheckIn) -> Instrument:
    return rt.instruments.get(check_in.instrument_code, check_in.instrument_version)


def start_now(
    session: Session,
    rt: Runtime,
    patient: Patient,
    instrument_code: str,
    *,
    occurrence: tuple[int, datetime] | None = None,
) -> CheckIn:
    """Start a check-in at once (a staff or API request): the first question goes out now. `occurrence`
    (schedule id, scheduled time) links it to a schedule's occurrence, as the demo's weeks are: rules on
    missed check-ins count scheduled ones only."""
    instrument = rt.instrument_for(patient.ruleset_version, instrument_code)
    if instrument is None:
        raise UnknownInstrument(instrument_code)
    if not patient.can_receive_sms:
        raise CheckInRefused("the patient cannot receive SMS (opted out, discharged or a number problem)")
    if open_check_in(session, patient.id) is not None:
        raise CheckInRefused("the patient already has an open check-in")
    check_in = CheckIn(
        patient_id=patient.id,
        instrument_code=instrument.code,
        instrument_version=instrument.version,
        status=CheckInStatus.PENDING,
        created_at=rt.now(),
    )
    if occurrence is not None:
        check_in.schedule_id, check_in.scheduled_for = occurrence
    session.add(check_in)
    session.flush()
    send_first_question(session, rt, check_in, patient)
    return check_in


def send_first_question(session: Session, rt: Runtime, check_in: CheckIn, patient: Patient) -> None:
    instrument = instrument_of(rt, check_in)
    now = rt.now()
    step = conversation.start(instrument, patient.language)
    check_in.status = CheckInStatus.IN_PROGRESS
    check_in.started_at = now
    check_in.expires_at = now + timedelta(minutes=rt.settings.CHECK_IN_EXPIRES_AFTER_MINUTES)
    _apply_step(session, rt, check_in, patient, step, now)


def apply_reply(
    session: Session,
    rt: Runtime,
    check_in: CheckIn,
    patient: Patient,
    message: Message,
    *,
    unclear: str | None = None,
) -> None:
    """One reply to the item last asked; the caller holds the patient's lock.

    `unclear`: why a readable reply to a red-flag question is not a clean answer (stored as unreadable).
    """
    instrument = instrument_of(rt, check_in)
    assert check_in.current_item is not None
    item = instrument.item(check_in.current_item)
    state = conversation.State(
        current_item=check_in.current_item,
        misses_on_current=check_in.misses_on_current,
        answers={a.item_code: conversation.KnownAnswer(a.status, a.value) for a in check_in.answers},
    )
    step = conversation.advance(
        instrument,
        patient.language,
        state,
        message.body,
        reprompt_text(rt, item.kind, item, patient.language),
        unclear=unclear,
    )
    message.check_in_id = check_in.id
    message.item_code = check_in.current_item
    _apply_step(session, rt, check_in, patient, step, rt.now(), message_id=message.id)


def reprompt_text(rt: Runtime, kind: str, item: object, language: str) -> str:
    from pro_service.instruments import Item

    assert isinstance(item, Item)
    if kind == "integer":
        return rt.texts.get("reprompt_integer", language, minimum=item.minimum, maximum=item.maximum)
    if kind == "multi_choice":
        key = "reprompt_multi_choice_none" if item.none_allowed else "reprompt_multi_choice"
        return rt.texts.get(key, language)
    return rt.texts.get(f"reprompt_{kind}", language)


def _apply_step(
    session: Session,
    rt: Runtime,
    check_in: CheckIn,
    patient: Patient,
    step: conversation.Step,
    now: datetime,
    message_id: int | None = None,
) -> None:
    for stored in step.answers:
        session.add(
            Answer(
                check_in_id=check_in.id,
                item_code=stored.item_code,
                status=AnswerStatus(stored.status),
                value=stored.value,
                raw_text=stored.raw_text,
                question=stored.question,
                message_id=message_id if stored.raw_text is not None else None,
                answered_at=now,
            )
        )
    session.flush()
    session.expire(check_in, ["answers"])
    for out in step.send:
        kind = MessageKind.QUESTION if out.kind == "question" else MessageKind.REPROMPT
        queue_to_patient(
            session,
            rt,
            patient,
            kind,
            out.text,
            check_in_id=check_in.id,
            item_code=out.item_code,
            valid_for=timedelta(seconds=rt.settings.TWILIO_VALIDITY_PERIOD),
        )
    check_in.current_item = step.current_item
    check_in.misses_on_current = step.misses_on_current
    if step.send:
        check_in.last_question_at = now
        if any(out.kind == "question" for out in step.send):
            check_in.reminder_sent_at = None
    if step.completed:
        close(session, rt, check_in, CheckInStatus.COMPLETED, now)
        closing = rt.texts.get("closing", patient.language, clinic_phone=_clinic_phone(rt, patient))
        queue_to_patient(session, rt, patient, MessageKind.CLOSING, closing, check_in_id=check_in.id)
    else:
        _set_deadline(rt, check_in)
    if step.answers:
        # Urgent rules fire on the answer that triggers them, not at the end of the check-in.
        rt.tasks.after_commit(session, "pro.score_check_in", check_in.id)


def _clinic_phone(rt: Runtime, patient: Patient) -> str:
    return patient.care_team.phone or rt.settings.CLINIC_PHONE


# Why an open check-in is let go without being answered to the end (logged with it).
CancelReason = Literal["opted_out", "paused", "discharged", "no_longer_due"]


def _end(check_in: CheckIn, status: CheckInStatus, now: datetime) -> None:
    """The one way a check-in leaves the open statuses: nothing more is asked (no item awaited) and no
    timer (send, reminder, expiry) is left for beat to find. Answers and their times are kept."""
    check_in.status = status
    check_in.closed_at = now
    check_in.current_item = None
    check_in.next_deadline_at = None


def close(session: Session, rt: Runtime, check_in: CheckIn, status: CheckInStatus, now: datetime) -> None:
    """Completed or expired: closed, then scored once the transaction commits."""
    _end(check_in, status, now)
    rt.tasks.after_commit(session, "pro.score_check_in", check_in.id)


def cancel(check_in: CheckIn, now: datetime, reason: CancelReason) -> None:
    """Cancelled (opt-out, pause, discharge, no longer due). Not scored here: opting out scores what was
    answered itself (services/consent.py)."""
    _end(check_in, CheckInStatus.CANCELLED, now)
    log.info("check-in cancelled", extra={"check_in_id": check_in.id, "reason": reason})


def cancel_open(session: Session, patient_id: int, now: datetime, reason: CancelReason) -> Sequence[CheckIn]:
    """Cancel the patient's open check-ins; returns them."""
    open_ones = session.scalars(
        select(CheckIn).where(CheckIn.patient_id == patient_id, CheckIn.status.in_(OPEN_CHECK_IN_STATUSES))
    ).all()
    for check_in in open_ones:
        cancel(check_in, now, reason)
    return open_ones


def _set_deadline(rt: Runtime, check_in: CheckIn) -> None:
    deadlines = [d for d in (check_in.expires_at,) if d is not None]
    if check_in.reminder_sent_at is None and check_in.last_question_at is not None:
        deadlines.append(check_in.last_question_at + timedelta(minutes=rt.settings.REMINDER_AFTER_MINUTES))
    check_in.next_deadline_at = min(deadlines) if deadlines else None


def expire(session: Session, rt: Runtime, check_in: CheckIn, now: datetime) -> None:
    """Keep what was answered; the unanswered items are recorded as missing."""
    instrument = instrument_of(rt, check_in)
    known = {a.item_code: conversation.KnownAnswer(a.status, a.value) for a in check_in.answers}
    for stored in conversation.expire(instrument, known):
        session.add(
            Answer(
                check_in_id=check_in.id,
                item_code=stored.item_code,
                status=AnswerStatus(stored.status),
                answered_at=now,
            )
        )
    close(session, rt, check_in, CheckInStatus.EXPIRED, now)


def run_deadlines(
    session: Session, rt: Runtime, now: datetime, limit: int = 500, *, patient_id: int | None = None
) -> int:
    """Beat's sweep of check-in timers: first send after quiet hours, reminder, expiry. Returns rows seen.
    `patient_id`: one patient's timers only (the demo tells one patient's story at a past instant)."""
    query = (
        select(CheckIn)
        .where(CheckIn.status.in_(OPEN_CHECK_IN_STATUSES), CheckIn.next_deadline_at <= now)
        .order_by(CheckIn.next_deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if patient_id is not None:
        query = query.where(CheckIn.patient_id == patient_id)
    handled = 0
    for check_in in session.scalars(query).all():
        patient = session.get(Patient, check_in.patient_id, with_for_update=ROW_LOCK)
        assert patient is not None
        handled += 1
        if check_in.status == CheckInStatus.PENDING:
            _send_when_due(session, rt, check_in, patient, now)
        elif check_in.expires_at is not None and check_in.expires_at <= now:
            expire(session, rt, check_in, now)
        else:
            _remind(session, rt, check_in, patient, now)
    return handled


def _send_when_due(session: Session, rt: Runtime, check_in: CheckIn, patient: Patient, now: datetime) -> None:
    # Still due? Checked again at send time: the patient may have opted out or the window passed.
    # Still due only inside the catch-up window after the moment it was meant to go out (quiet hours
    # included): after a long outage a check-in is skipped rather than sent hours late.
    window = timedelta(minutes=rt.settings.CATCH_UP_WINDOW_MINUTES)
    meant_for = check_in.send_after or check_in.scheduled_for
    stale = meant_for is not None and now - meant_for > window
    schedule = session.get(Schedule, check_in.schedule_id) if check_in.schedule_id else None
    if (
        not patient.can_receive_sms
        or patient.status != PatientStatus.ACTIVE
        or stale
        or (schedule is not None and not schedule.active)
    ):
        cancel(check_in, now, "no_longer_due")
        return
    send_first_question(session, rt, check_in, patient)


def _remind(session: Session, rt: Runtime, check_in: CheckIn, patient: Patient, now: datetime) -> None:
    if check_in.reminder_sent_at is not None or check_in.current_item is None:
        _set_deadline(rt, check_in)
        return
    allowed = send_time(now, patient.timezone, quiet_hours(rt))
    if allowed > now:
        # Inside quiet hours: remind when they end, if the check-in is still open then.
        check_in.next_deadline_at = min(allowed, check_in.expires_at or allowed)
        return
    instrument = instrument_of(rt, check_in)
    question = instrument.render_question(check_in.current_item, patient.language)
    text = rt.texts.get("reminder_prefix", patient.language) + question
    queue_to_patient(
        session,
        rt,
        patient,
        MessageKind.REMINDER,
        text,
        check_in_id=check_in.id,
        item_code=check_in.current_item,
        valid_for=timedelta(seconds=rt.settings.TWILIO_VALIDITY_PERIOD),
    )
    check_in.reminder_sent_at = now
    _set_deadline(rt, check_in)
