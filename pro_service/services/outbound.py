"""Outbound SMS: queue a row, then send it once.

A row is the unit of work: `queue_*` inserts it (status queued) and asks for `pro.send_message` after
commit; `send_message` claims it (queued → sending, committed) before calling the gateway, so a task that
runs twice sends once. A row left in `sending` by a crash is reconciled against the provider by the sweep.
A status callback is the provider's word that it has the row's text: `record_status_callback` moves the row
to the reported state and out of those it can be sent from (`MessageStatus.after_report`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.models import (
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    Patient,
    PatientStatus,
    StaffUser,
)
from pro_service.runtime import Runtime
from pro_service.sms.gateway import INVALID_NUMBER_CODES, UNSUBSCRIBED, SendError, SentMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Sent even to an opted-out patient: the confirmation of the opt-out itself (carriers expect one).
ALLOWED_WHEN_OPTED_OUT = frozenset({MessageKind.OPT_OUT})


def may_receive(patient: Patient, kind: MessageKind) -> bool:
    """Whether this patient may be sent a text of this kind now.

    The opt-out confirmation always goes. The safety text answers a message the patient has just sent
    ("stop texting me, I can't feel my legs"), so an opt-out alone does not stop it; no consent, a discharge
    or a number problem still does. (After the keyword STOP, Twilio itself may refuse it with 21610: the
    page to the nurse is what is relied on.) Nothing scheduled ever goes to an opted-out patient.
    """
    if kind in ALLOWED_WHEN_OPTED_OUT:
        return True
    if kind is MessageKind.SAFETY:
        return bool(
            patient.sms_consent
            and patient.status != PatientStatus.DISCHARGED
            and patient.phone_problem is None
        )
    return bool(patient.can_receive_sms)


def sender_number(rt: Runtime) -> str:
    return rt.settings.TWILIO_FROM_NUMBER or rt.settings.TWILIO_MESSAGING_SERVICE_SID or "+15550000000"


def queue_to_patient(
    session: Session,
    rt: Runtime,
    patient: Patient,
    kind: MessageKind,
    body: str,
    *,
    check_in_id: int | None = None,
    item_code: str | None = None,
    alert_id: int | None = None,
    dedup_key: str | None = None,
    valid_for: timedelta | None = None,
) -> Message | None:
    """Queue a text for a patient; None when they must not get it (opted out, discharged, bad number)."""
    if not may_receive(patient, kind):
        log.info("not queued: patient cannot receive SMS", extra={"patient_id": patient.id, "kind": kind})
        return None
    return _queue(
        session,
        rt,
        Message(
            direction=Direction.OUTBOUND,
            kind=kind,
            status=MessageStatus.QUEUED,
            patient_id=patient.id,
            check_in_id=check_in_id,
            item_code=item_code,
            alert_id=alert_id,
            from_number=sender_number(rt),
            to_number=patient.phone,
            body=body,
            dedup_key=dedup_key,
            valid_until=(rt.now() + valid_for) if valid_for else None,
        ),
    )


def queue_to_staff(
    session: Session,
    rt: Runtime,
    staff: StaffUser,
    body: str,
    *,
    alert_id: int | None,
    dedup_key: str,
    kind: MessageKind = MessageKind.PAGE,
) -> Message | None:
    if not staff.phone:
        return None
    return _queue(
        session,
        rt,
        Message(
            direction=Direction.OUTBOUND,
            kind=kind,
            status=MessageStatus.QUEUED,
            staff_id=staff.id,
            alert_id=alert_id,
            from_number=sender_number(rt),
            to_number=staff.phone,
            body=body,
            dedup_key=dedup_key,
        ),
    )


def _queue(session: Session, rt: Runtime, message: Message) -> Message | None:
    if message.dedup_key is not None:
        existing = session.scalar(select(Message).where(Message.dedup_key == message.dedup_key))
        if existing is not None:
            return None  # already queued by an earlier run of the same task
    message.created_at = rt.now()
    message.next_attempt_at = rt.now()
    session.add(message)
    session.flush()
    rt.tasks.after_commit(session, "pro.send_message", message.id, queue_name=send_queue(message))
    return message


URGENT_KINDS = frozenset({MessageKind.PAGE, MessageKind.SAFETY})


def send_queue(message: Message) -> str:
    """Pages and safety messages never wait behind a bulk send of check-in questions."""
    return "notify" if message.kind in URGENT_KINDS else "send"


@dataclass(frozen=True)
class SendOutcome:
    status: str  # sent | skipped | retry | failed
    reason: str = ""
    retry_in: float | None = None


def backoff(attempts: int) -> float:
    return float(min(2 ** max(attempts - 1, 0), 300))


def claim(session: Session, rt: Runtime, message_id: int) -> Message | None:
    """queued → sending, committed by the caller before the gateway is called. None if not ours to send."""
    message = session.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if message is None or message.direction != Direction.OUTBOUND or message.status != MessageStatus.QUEUED:
        return None
    if message.twilio_sid is not None:
        message.status = MessageStatus.ACCEPTED  # the provider has a copy: it is never sent again
        return None
    now = rt.now()
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return None
    if message.valid_until is not None and message.valid_until < now:
        message.status = MessageStatus.CANCELLED
        message.error_message = "no longer valid when its turn came"
        return None
    if message.patient_id is not None and message.kind not in ALLOWED_WHEN_OPTED_OUT:
        patient = session.get(Patient, message.patient_id)
        if patient is None or not may_receive(patient, message.kind):
            message.status = MessageStatus.CANCELLED
            message.error_message = "patient cannot receive SMS"
            return None
    if _superseded(session, message):
        message.status = MessageStatus.CANCELLED
        message.error_message = "superseded: the conversation has moved on"
        return None
    message.status = MessageStatus.SENDING
    message.attempts += 1
    message.updated_at = now
    return message


_CONVERSATION = frozenset({MessageKind.QUESTION, MessageKind.REPROMPT, MessageKind.REMINDER})


def _superseded(session: Session, message: Message) -> bool:
    """A question, re-prompt or reminder whose item is no longer the one awaited (answered, or the check-in
    closed) must not go out late: the patient's next reply would land on the wrong item."""
    if message.kind not in _CONVERSATION or message.check_in_id is None:
        return False
    from pro_service.models import CheckIn, CheckInStatus

    check_in = session.get(CheckIn, message.check_in_id)
    return (
        check_in is None
        or check_in.status != CheckInStatus.IN_PROGRESS
        or check_in.current_item != message.item_code
    )


def deliver(session: Session, rt: Runtime, message: Message) -> SendOutcome:
    """Call the gateway for a claimed row and record the result (the caller commits)."""
    validity = None
    if message.valid_until is not None:
        validity = max(1, min(36000, int((message.valid_until - rt.now()).total_seconds())))
    try:
        result = rt.gateway.send(
            to=message.to_number,
            body=message.body,
            status_callback=rt.status_callback_url(message.id),
            validity_period=validity,
        )
    except SendError as exc:
        return _record_failure(session, rt, message, exc)
    message.twilio_sid = result.sid
    # Twilio answers `queued` (a number) or `accepted` (a Messaging Service): ours is `accepted` for both.
    message.status = MessageStatus.from_provider(result.status) or MessageStatus.ACCEPTED
    message.sent_at = rt.now()
    message.error_code = None
    message.error_message = None
    return SendOutcome("sent")


def _record_failure(session: Session, rt: Runtime, message: Message, exc: SendError) -> SendOutcome:
    message.error_code = exc.code
    message.error_message = str(exc)[:500]
    if exc.retryable and message.attempts < MAX_ATTEMPTS:
        delay = backoff(message.attempts)
        # 429 means "not accepted": simply try again. A 5xx or a network failure may have been accepted
        # all the same: the row waits as `uncertain` and the provider is asked before any second send.
        message.status = MessageStatus.QUEUED if exc.http_status == 429 else MessageStatus.UNCERTAIN
        message.next_attempt_at = rt.now() + timedelta(seconds=delay)
        return SendOutcome("retry", f"provider error {exc.code or exc.http_status}", delay)
    message.status = MessageStatus.FAILED
    if message.patient_id is not None:
        apply_provider_error(session, rt, message.patient_id, exc.code)
    log.warning("send failed", extra={"message_id": message.id, "code": exc.code})
    return SendOutcome("failed", f"provider error {exc.code or exc.http_status}")


def apply_provider_error(session: Session, rt: Runtime, patient_id: int, code: int | None) -> None:
    """21610: the patient unsubscribed at the carrier → opted out. Invalid numbers → flag for an admin."""
    from pro_service.services.consent import opt_out

    patient = session.get(Patient, patient_id)
    if patient is None or code is None:
        return
    if code == UNSUBSCRIBED:
        opt_out(session, rt, patient, source=f"provider error {code}", confirm=False)
    elif code in INVALID_NUMBER_CODES and patient.phone_problem is None:
        patient.phone_problem = f"provider error {code}: number cannot receive SMS"


def record_status_callback(
    session: Session,
    rt: Runtime,
    message_id: int,
    *,
    reported: str,
    sid: str | None,
    error_code: int | None,
) -> bool:
    """Apply the provider's status callback for our outbound row `message_id` (the caller's unit of work
    commits); True when the row changed.

    The callback URL names the row (`?mid=`) and Twilio signs it, so it proves that an attempt for this row
    reached the provider: the row takes the reported state as `MessageStatus.after_report` allows (never back
    to a state it could be sent from), and when the send's own answer was lost (a crash, a 5xx after
    acceptance) it records the provider's SID of that copy.
    """
    status = MessageStatus.from_provider(reported)
    if status is None:
        return False  # not about an outbound message, or a status we do not know
    message = session.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if message is None or message.direction != Direction.OUTBOUND:
        return False
    if sid and message.twilio_sid not in (None, sid):
        return False  # another copy of this row's text (sent again after a lost answer): not the one it names
    new = message.status.after_report(status, copy_known=message.twilio_sid is not None)
    changed = False
    if (
        sid
        and message.twilio_sid is None
        and session.scalar(select(Message.id).where(Message.twilio_sid == sid)) is None
    ):
        message.twilio_sid = sid
        changed = True
    if new is None:
        return changed
    if message.sent_at is None:  # the provider's first word on it: our failed attempts' errors are moot
        message.sent_at = rt.now()
        message.error_code = None
        message.error_message = None
    message.status = new
    if error_code is not None:
        message.error_code = error_code
        if message.patient_id is not None:
            apply_provider_error(session, rt, message.patient_id, error_code)
    return True


def send_message(rt: Runtime, message_id: int) -> SendOutcome:
    """The whole send of one row, in two transactions: claim, then deliver and record."""
    with rt.unit_of_work() as session:
        if _resolve_uncertain(session, rt, message_id):
            return SendOutcome("sent", "the provider already had it")
        message = claim(session, rt, message_id)
        if message is None:
            return SendOutcome("skipped", "not queued, not due, or recipient cannot receive")
        urgent = message.kind in URGENT_KINDS
    # The rate limit is shared by all workers (Redis); wait for a slot outside any transaction. Pages and
    # safety texts take their slot without waiting for it (sms/ratelimit.py).
    wait = rt.rate_limiter.reserve(urgent=urgent)
    if wait > 0:
        time.sleep(wait)
    with rt.unit_of_work() as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != MessageStatus.SENDING:
            return SendOutcome("skipped", "moved on while waiting for a send slot")
        return deliver(session, rt, message)


def _resolve_uncertain(session: Session, rt: Runtime, message_id: int) -> bool:
    """An `uncertain` row that is due: adopt the provider's copy if it has one (True), else make it
    queued again so it is claimed and sent. Asking fails → it stays uncertain for the next try."""
    message = session.scalar(select(Message).where(Message.id == message_id).with_for_update())
    if message is None or message.status != MessageStatus.UNCERTAIN:
        return False
    now = rt.now()
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return False
    copy = _provider_copy(session, rt, message)
    if copy is None:
        message.status = MessageStatus.QUEUED
        return False
    if copy is _UNKNOWN:
        message.next_attempt_at = now + timedelta(seconds=backoff(message.attempts))
        return False
    _adopt(message, copy, now)
    return True


_UNKNOWN = SentMessage(sid="", to="", body="", date_created=None)


def _provider_copy(session: Session, rt: Runtime, message: Message) -> SentMessage | None:
    """The provider's copy of this row's text to this number, if it has one we have not adopted already;
    `_UNKNOWN` when the provider cannot be asked right now."""
    since = (message.created_at or rt.now()) - timedelta(minutes=5)
    try:
        sent = rt.gateway.recent_to(message.to_number, since)
    except Exception:
        log.warning("could not ask the provider about an uncertain send", extra={"message_id": message.id})
        return _UNKNOWN
    for candidate in sent:
        if candidate.body == message.body:
            taken = session.scalar(
                select(Message.id).where(Message.twilio_sid == candidate.sid, Message.id != message.id)
            )
            if taken is None:
                return candidate
    return None


def _adopt(message: Message, copy: SentMessage, now: datetime) -> None:
    message.twilio_sid = copy.sid
    message.status = MessageStatus.SENT
    message.sent_at = copy.date_created or now
    message.error_code = None
    message.error_message = None


def reconcile_stuck_sending(session: Session, rt: Runtime, message: Message, now: datetime) -> None:
    """A row left in `sending` by a dead worker: adopt the provider's copy if it went out, else requeue."""
    copy = _provider_copy(session, rt, message)
    if copy is _UNKNOWN:
        return  # ask again at the next sweep
    if copy is not None:
        _adopt(message, copy, now)
        return
    message.status = MessageStatus.QUEUED
    message.next_attempt_at = rt.now()  # due at once, even when a tick was told a later instant
    rt.tasks.after_commit(session, "pro.send_message", message.id, queue_name=send_queue(message))
