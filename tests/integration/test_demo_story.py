"""Issue 13: the demo is a story told through the real services with a moved clock, so it cannot drift from
the real path and doubles as an end-to-end test. Seeded on a fresh PostgreSQL database, its rows must be
the ones the real use cases write: alerts with the rules and ruleset that fired, the life cycle's events,
pages as outbound texts with no PHI, and answers stored with their parsed values."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pro_service.models import (
    Alert,
    AlertEvent,
    AlertStatus,
    Answer,
    AnswerStatus,
    CheckIn,
    CheckInStatus,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    Patient,
    StaffUser,
)
from pro_service.replies import Parsed, parse_reply

pytestmark = pytest.mark.integration
STORY_MRNS = ("DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004", "DEMO-005", "DEMO-006", "DEMO-007", "DEMO-008")


def test_the_demo_story_is_told_through_the_real_path(rt: Any, twilio_server: Any) -> None:
    """One seed (it takes a while: every reply is stored, processed and scored as in production)."""
    from pro_service.demo import seed

    clock, tasks, gateway = rt.clock, rt.tasks, rt.gateway
    list(seed(rt))
    # The runtime is given back as it was: its clock, its task queue and its SMS gateway.
    assert rt.clock is clock and rt.tasks is tasks and rt.gateway is gateway
    # Sent to the outbox: SMS_BACKEND is twilio here, and no demo text reached the provider.
    assert twilio_server.state.messages() == []
    _alerts_carry_what_the_real_triage_records(rt)
    _each_alert_has_the_life_cycle_events_with_their_actors(rt)
    _pages_went_out_as_outbound_texts_with_no_phi(rt)
    _answers_are_stored_with_their_parsed_values(rt)
    _a_second_seed_adds_nothing(rt)


def _staff(session: Session, email: str) -> int:
    staff_id = session.scalar(select(StaffUser.id).where(StaffUser.email == email))
    assert staff_id is not None
    return staff_id


def _alerts_of(session: Session, mrn: str) -> list[Alert]:
    return list(
        session.scalars(select(Alert).join(Patient, Patient.id == Alert.patient_id).where(Patient.mrn == mrn))
    )


def _alerts_carry_what_the_real_triage_records(rt: Any) -> None:
    known = {(r.name, r.version) for r in rt.rulesets.values()} | {(rt.lexicon.name, rt.lexicon.version)}
    with rt.sessions() as session:
        alerts = list(session.scalars(select(Alert)))
        for alert in alerts:
            assert alert.rule_ids and (alert.ruleset, alert.ruleset_version) in known, alert.ref
            for evidence in alert.evidence:
                assert evidence["rule_id"] in alert.rule_ids
                assert (evidence["ruleset"], evidence["ruleset_version"]) in known
                assert evidence["check_in_id"] is not None or evidence["message_id"] is not None
        # Every urgency, open, acknowledged and (older weeks) resolved.
        shown = Counter((a.urgency, a.status) for a in alerts)
        for wanted in (
            ("urgent", AlertStatus.OPEN),
            ("urgent", AlertStatus.ACKNOWLEDGED),
            ("same_day", AlertStatus.OPEN),
            ("same_day", AlertStatus.ACKNOWLEDGED),
            ("routine", AlertStatus.OPEN),
            ("same_day", AlertStatus.RESOLVED),
            ("routine", AlertStatus.RESOLVED),
        ):
            assert shown[wanted], (wanted, shown)

        # "Yes" to new weakness: the cord compression rule of the newest ruleset, on the answer itself.
        (cord,) = _alerts_of(session, "DEMO-002")
        assert (cord.category, cord.urgency, cord.status) == ("spinal_cord_compression", "urgent", "open")
        assert cord.rule_ids == ["scc-weakness"]
        assert (cord.ruleset, cord.ruleset_version) == (rt.ruleset.name, rt.ruleset.version)
        assert any(e["item_code"] == "weakness" and e["raw_text"] == "Yes" for e in cord.evidence)
        # Texting for a call back is the NURSE keyword's callback request, acknowledged by the nurse.
        (callback,) = _alerts_of(session, "DEMO-007")
        assert (callback.category, callback.status) == ("callback_request", AlertStatus.ACKNOWLEDGED)
        assert callback.acknowledged_by_id == _staff(session, "nurse@demo.local")
        # Two check-ins in a row expired with no reply: the non-response rule counted the scheduled ones.
        (silent,) = _alerts_of(session, "DEMO-005")
        assert silent.category == "non_response" and silent.status == AlertStatus.OPEN


def _each_alert_has_the_life_cycle_events_with_their_actors(rt: Any) -> None:
    with rt.sessions() as session:
        nurse = _staff(session, "nurse@demo.local")
        for alert in session.scalars(select(Alert)):
            events = list(
                session.scalars(
                    select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)
                )
            )
            kinds = [e.kind.value for e in events]
            assert kinds[0] == "opened" and events[0].detail["rule_id"] == alert.rule_ids[0], kinds
            if alert.urgency in ("urgent", "same_day"):
                # Paged by the rota of the story's day: the demo nurse is level 1.
                paged = [e for e in events if e.kind == "paged"]
                assert paged and nurse in paged[0].detail["staff_ids"], kinds
            if alert.urgency == "urgent":
                assert "safety_message" in kinds and alert.safety_message_sent
            if alert.status != AlertStatus.OPEN:
                (ack,) = [e for e in events if e.kind == "acknowledged"]
                assert ack.actor_staff_id == alert.acknowledged_by_id is not None
                assert ack.actor == f"staff:{alert.acknowledged_by_id}"
                assert alert.acknowledged_at is not None and alert.acknowledged_at > alert.opened_at
            if alert.status == AlertStatus.RESOLVED:
                (done,) = [e for e in events if e.kind == "resolved"]
                assert done.actor_staff_id == alert.resolved_by_id == nurse
                assert done.detail["outcome"] == alert.outcome and alert.outcome_rag in ("green", "amber")
            else:
                assert "resolved" not in kinds


def _pages_went_out_as_outbound_texts_with_no_phi(rt: Any) -> None:
    with rt.sessions() as session:
        pages = list(session.scalars(select(Message).where(Message.kind == MessageKind.PAGE)))
        paged = [
            (event.alert_id, staff_id)
            for event in session.scalars(select(AlertEvent).where(AlertEvent.kind == "paged"))
            for staff_id in event.detail["staff_ids"]
        ]
        assert pages and sorted((p.alert_id, p.staff_id) for p in pages) == sorted(paged)
        patients = list(session.scalars(select(Patient).where(Patient.mrn.in_(STORY_MRNS))))
        for page in pages:
            assert page.direction == Direction.OUTBOUND and page.status == MessageStatus.DELIVERED
            alert = session.get(Alert, page.alert_id)
            assert alert is not None and alert.ref in page.body
            for patient in patients:
                for phi in (patient.given_name, patient.family_name, patient.mrn, patient.phone):
                    assert phi not in page.body
        # Sent through the outbox: every outbound text delivered, every reply processed, nothing waiting.
        statuses = Counter(
            (m.direction, m.status)
            for m in session.scalars(select(Message).where(Message.patient_id.is_not(None)))
        )
        assert set(statuses) == {
            (Direction.OUTBOUND, MessageStatus.DELIVERED),
            (Direction.INBOUND, MessageStatus.PROCESSED),
        }, statuses


def _answers_are_stored_with_their_parsed_values(rt: Any) -> None:
    with rt.sessions() as session:
        for mrn in STORY_MRNS:
            patient = session.scalar(select(Patient).where(Patient.mrn == mrn))
            assert patient is not None
            check_ins = list(
                session.scalars(select(CheckIn).where(CheckIn.patient_id == patient.id).order_by(CheckIn.id))
            )
            assert len(check_ins) == 6, mrn  # six weekly check-ins, on the patient's schedule
            assert all(c.schedule_id is not None and c.scored_at is not None for c in check_ins), mrn
            assert all(not c.status.is_open for c in check_ins), mrn
            for check_in in check_ins:
                instrument = rt.instruments.get(check_in.instrument_code, check_in.instrument_version)
                for answer in check_in.answers:
                    if answer.status != AnswerStatus.ANSWERED:
                        continue
                    # The reply that carried it, stored as the webhook stores a reply.
                    reply = session.get(Message, answer.message_id)
                    assert reply is not None and reply.body == answer.raw_text
                    assert reply.direction == Direction.INBOUND and reply.check_in_id == check_in.id
                    parsed = parse_reply(
                        answer.raw_text or "", instrument.item(answer.item_code).spec, patient.language
                    )
                    assert isinstance(parsed, Parsed) and parsed.value == answer.value, answer.item_code

        # Severe pain, 8 of 10: the newest check-in of DEMO-006 answered 8.
        pain = session.scalar(
            select(Answer.value)
            .join(CheckIn, CheckIn.id == Answer.check_in_id)
            .join(Patient, Patient.id == CheckIn.patient_id)
            .where(Patient.mrn == "DEMO-006", Answer.item_code == "pain_worst")
            .order_by(CheckIn.id.desc())
            .limit(1)
        )
        assert pain == 8
        # The last two of DEMO-005 expired unanswered, after a reminder.
        silent = list(
            session.scalars(
                select(CheckIn)
                .join(Patient, Patient.id == CheckIn.patient_id)
                .where(Patient.mrn == "DEMO-005")
                .order_by(CheckIn.id.desc())
                .limit(2)
            )
        )
        assert [c.status for c in silent] == [CheckInStatus.EXPIRED, CheckInStatus.EXPIRED]
        assert all(c.reminder_sent_at is not None for c in silent)
        assert all(a.status == AnswerStatus.MISSING for c in silent for a in c.answers)


def _a_second_seed_adds_nothing(rt: Any) -> None:
    from pro_service.demo import seed

    tables = (CheckIn, Answer, Message, Alert, AlertEvent)

    def counts() -> list[int]:
        with rt.sessions() as session:
            return [int(session.scalar(select(func.count()).select_from(t)) or 0) for t in tables]

    before = counts()
    list(seed(rt))
    assert counts() == before
