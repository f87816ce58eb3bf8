"""Inbound SMS: store first (the webhook), wake a worker, then process a patient's replies in arrival order.

`store_inbound` is the webhook's whole job: one statement (sender lookup + INSERT … ON CONFLICT DO NOTHING on
the MessageSid), committed before Twilio gets its 200. The web does not touch the broker: `wake_received`,
polled by every worker (workers/wake.py), claims newly stored replies and publishes their tasks, so the
database is the ingest queue and the broker only wakes workers (ARCHITECTURE rule 2). `process_patient` runs
under the patient's row lock and handles that patient's unprocessed messages oldest first, so two workers
never interleave one patient.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, bindparam, select, text, update
from sqlalchemy.orm import Session

from pro_service.db import ROW_LOCK
from pro_service.models import (
    INBOUND_TO_WAKE,
    CheckInStatus,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    Patient,
    UTCDateTime,
)
from pro_service.replies import AnswerSpec, Keyword, Parsed, classify_keyword, parse_reply
from pro_service.runtime import Runtime
from pro_service.services import arrival as arrivals
from pro_service.services import check_ins
from pro_service.services.consent import clinic_phone, opt_in, opt_out
from pro_service.services.outbound import queue_to_patient

log = logging.getLogger(__name__)

_YES_NO = AnswerSpec(kind="yes_no")


@dataclass(frozen=True)
class Stored:
    message_id: int | None  # None: a repeat delivery of a MessageSid we already have
    patient_id: int | None
    staff_id: int | None


def _media(form: Mapping[str, str]) -> tuple[int, list[dict[str, str]] | None]:
    try:
        count = max(0, min(int(form.get("NumMedia", "0") or 0), 10))
    except ValueError:
        count = 0
    media = [
        {"url": _text(form, f"MediaUrl{i}", 2000), "content_type": _text(form, f"MediaContentType{i}", 100)}
        for i in range(count)
    ]
    return count, media or None


def _text(form: Mapping[str, str], name: str, limit: int | None = None) -> str:
    # PostgreSQL text cannot hold NUL; keep everything else exactly as sent.
    value = (form.get(name) or "").replace("\x00", "\ufffd")
    return value[:limit] if limit else value


# The webhook's whole database work is this one statement: find whose number it is (patient, else staff) and
# insert, idempotent on the MessageSid. One round trip instead of three, and a constant text the driver can
# prepare: SQLAlchemy cannot cache a dialect `insert().on_conflict_do_nothing()` construct, and compiling it
# per request cost a third of the webhook's CPU (benchmarks/bench_ingest.py). `WHERE true` is SQLite's way
# to let ON CONFLICT follow a SELECT; PostgreSQL accepts it as is.
INSERT_INBOUND = text(
    """
    INSERT INTO messages (direction, kind, status, patient_id, staff_id, from_number, to_number, body,
                          num_media, media, twilio_sid, attempts, created_at, updated_at)
    SELECT 'inbound',
           CASE WHEN p.id IS NOT NULL THEN 'reply' WHEN s.id IS NOT NULL THEN 'staff_reply'
                ELSE 'unknown_sender' END,
           'received', p.id, CASE WHEN p.id IS NULL THEN s.id END, :from_number, :to_number, :body,
           :num_media, :media, :twilio_sid, 0, :now, :now
    FROM (SELECT 1 AS one) AS single
    LEFT JOIN patients AS p ON p.phone = :from_number
    LEFT JOIN staff_users AS s ON s.phone = :from_number
    WHERE true
    ON CONFLICT (twilio_sid) DO NOTHING
    RETURNING id, patient_id, staff_id
    """
).bindparams(bindparam("media", type_=JSON()), bindparam("now", type_=UTCDateTime()))


# INSERT_INBOUND for several webhooks at once (PostgreSQL; ingest/store.py stores concurrent webhooks
# together): the same lookup and insert over parallel arrays, one constant text however many rows, so the
# driver prepares it once. Rows go in in arrival order (a patient's "1" then "3" keep their order); the
# MessageSid comes back so each request learns its own outcome (none returned: a repeat delivery).
INSERT_INBOUND_ROWS_PG = """
    INSERT INTO messages (direction, kind, status, patient_id, staff_id, from_number, to_number, body,
                          num_media, media, twilio_sid, attempts, created_at, updated_at)
    SELECT 'inbound',
           CASE WHEN p.id IS NOT NULL THEN 'reply' WHEN s.id IS NOT NULL THEN 'staff_reply'
                ELSE 'unknown_sender' END,
           'received', p.id, CASE WHEN p.id IS NULL THEN s.id END, v.from_number, v.to_number, v.body,
           v.num_media, v.media::json, v.twilio_sid, 0, v.now, v.now
    FROM unnest(%(from_number)s::text[], %(to_number)s::text[], %(body)s::text[], %(num_media)s::int[],
                %(media)s::text[], %(twilio_sid)s::text[], %(now)s::timestamptz[])
         WITH ORDINALITY AS v(from_number, to_number, body, num_media, media, twilio_sid, now, arrival)
    LEFT JOIN LATERAL (SELECT id FROM patients WHERE phone = v.from_number) AS p ON true
    LEFT JOIN LATERAL (SELECT id FROM staff_users WHERE phone = v.from_number) AS s ON true
    ORDER BY v.arrival
    ON CONFLICT (twilio_sid) DO NOTHING
    RETURNING id, patient_id, staff_id, twilio_sid
"""


def inbound_values(form: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The parameters of INSERT_INBOUND for one webhook form (Twilio's field names)."""
    sid = (_text(form, "MessageSid") or _text(form, "SmsSid")).strip()[:64]
    num_media, media = _media(form)
    return {
        "from_number": _text(form, "From").strip()[:32],
        "to_number": _text(form, "To", 32),
        "body": _text(form, "Body"),
        "num_media": num_media,
        "media": media,
        "twilio_sid": sid or None,
        "now": now,
    }


def stored(row: Sequence[Any] | None) -> Stored:
    """INSERT_INBOUND's RETURNING row; none for a repeat delivery of a MessageSid we already have."""
    return Stored(None, None, None) if row is None else Stored(row[0], row[1], row[2])


def store_inbound(db: Connection | Session, form: Mapping[str, str], now: datetime) -> Stored:
    """Insert the message (idempotent on MessageSid) and name whose it is. The caller commits."""
    return stored(db.execute(INSERT_INBOUND, inbound_values(form, now)).first())


WAKE_BATCH = 500


class BrokerUnavailable(RuntimeError):
    """A wake-up could not be published: nothing was claimed; the poller backs off and tries again."""


def wake_received(connection: Connection, rt: Runtime) -> int:
    """Claim replies stored since the last poll and publish their tasks; returns how many were claimed.

    A claim sets `attempts` from 0 to 1 and commits only if every publish succeeded: at the first failed
    publish it rolls back and raises BrokerUnavailable (the poller backs off), so a broker outage leaves the
    rows for a later poll; a claim whose task is lost later is re-published by the beat sweep.
    Workers poll concurrently: the outer WHERE repeats `attempts = 0`, which PostgreSQL re-checks on a row
    another poller claimed meanwhile, so each row is claimed once (SKIP LOCKED keeps pollers from queueing).
    Core, not the ORM: this runs ten times a second in every worker, mostly finding nothing.
    """
    batch = select(Message.id).where(INBOUND_TO_WAKE).order_by(Message.id).limit(WAKE_BATCH)
    claimed = connection.execute(
        update(Message)
        .where(Message.id.in_(batch.with_for_update(skip_locked=True).scalar_subquery()), INBOUND_TO_WAKE)
        .values(attempts=1)
        .returning(Message.id, Message.patient_id, Message.staff_id)
    ).all()
    patients = sorted({patient_id for _, patient_id, _ in claimed if patient_id is not None})
    staff_messages = sorted(mid for mid, patient_id, staff_id in claimed if patient_id is None and staff_id)
    jobs = [("pro.process_inbound", p) for p in patients] + [
        ("pro.process_staff_inbound", m) for m in staff_messages
    ]
    for name, argument in jobs:
        if not rt.tasks.publish(name, argument):
            connection.rollback()  # leave the rows unclaimed for the next poll
            raise BrokerUnavailable(f"could not publish {name}")
    connection.commit()
    return len(claimed)


def process_patient(session: Session, rt: Runtime, patient_id: int) -> int:
    """Handle the patient's unprocessed messages in arrival order, under the patient's row lock."""
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update(**ROW_LOCK))
    if patient is None:
        return 0
    pending = session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.RECEIVED,
        )
        .order_by(Message.id)
    ).all()
    for message in pending:
        _handle(session, rt, patient, message)
        message.status = MessageStatus.PROCESSED
        message.processed_at = rt.now()
    return len(pending)


def _handle(session: Session, rt: Runtime, patient: Patient, message: Message) -> None:
    from pro_service.services import triage

    text = message.body or ""
    keyword = classify_keyword(text)
    check_in = check_ins.open_check_in(session, patient.id)
    answering = (
        keyword is None
        and patient.opted_out_at is None
        and check_in is not None
        and check_in.status == CheckInStatus.IN_PROGRESS
        and check_in.current_item is not None
        and bool(text.strip())
    )
    item = None
    if answering:
        assert check_in is not None and check_in.current_item is not None
        item = check_ins.instrument_of(rt, check_in).item(check_in.current_item)
    # Read for danger first, whatever the message is (rule 10): an urgent finding is raised, paged and
    # answered with the safety text now, before the opt-out, the keyword or the answer is handled.
    arrival = arrivals.read_on_arrival(
        session, rt, patient, message, item=item, check_in_id=check_in.id if answering and check_in else None
    )

    if keyword is Keyword.STOP:
        opt_out(session, rt, patient, source=f"message {message.id}")
        arrivals.record_opt_out(session, rt, patient, message)
        return
    if keyword is Keyword.START or (
        patient.opted_out_at is not None and parse_reply(text, _YES_NO) == Parsed(True)
    ):
        opt_in(session, rt, patient, source=f"message {message.id}")
        return
    if keyword is Keyword.HELP:
        help_text = rt.texts.get("help", patient.language, clinic_phone=clinic_phone(rt, patient))
        queue_to_patient(session, rt, patient, MessageKind.HELP, help_text)
        return
    if keyword is Keyword.NURSE:
        triage.record_callback_request(session, rt, patient, message)
        if not arrival.urgent:  # the safety text already told them what to do now
            key = arrivals.reply_text_key(rt, patient, "callback")
            queue_to_patient(
                session, rt, patient, MessageKind.ACKNOWLEDGEMENT, rt.texts.get(key, patient.language)
            )
        return

    if answering and check_in is not None:
        check_ins.apply_reply(session, rt, check_in, patient, message, unclear=arrival.unclear)
        return

    # Outside a check-in (or a photo with no text, or from an opted-out patient): a message for the care
    # team. It is kept, shown on the timeline and triaged; the patient is told how to reach the clinic,
    # unless an urgent finding already sent the safety text. When the reader raised alerts, the message is
    # their evidence already: a second "patient message" alert would only page the nurse twice.
    if not arrival.alerts:
        triage.record_patient_message(session, rt, patient, message, source="message")
    if patient.opted_out_at is None and not arrival.urgent:
        key = arrivals.reply_text_key(rt, patient, "acknowledgement")
        ack = rt.texts.get(key, patient.language, clinic_phone=clinic_phone(rt, patient))
        queue_to_patient(session, rt, patient, MessageKind.ACKNOWLEDGEMENT, ack)
