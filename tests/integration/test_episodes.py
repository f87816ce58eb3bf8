"""Alert episodes and the one reply a message gets, in-process on the real database (review findings).

Each test names the defect it guards against: a crisis text lost behind a safety text, a same-day message
merged into an acknowledged alert and told to nobody, resolved evidence re-paging through a newer episode,
and a resolved lower urgency hiding a more urgent finding on the same answer.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import Alert, AlertEvent, AlertStatus, Message, MessageKind
from pro_service.services import alert_lifecycle, inbound, triage
from tests.integration.helpers import make_nurse, make_patient, make_team

pytestmark = pytest.mark.integration
PHONE = "+15551230001"


def _finding(urgency: Urgency = Urgency.URGENT, category: str = "spinal_cord_compression") -> Finding:
    evidence = Evidence(item_code=None, question=None, raw_text="legs numb", value="legs numb")
    return Finding(category, urgency, "reading.neuro", "test", "symptoms", 1, (evidence,))


def _raise(rt: Any, patient: int, finding: Finding, message_id: int | None) -> triage.Raised | None:
    with rt.unit_of_work() as session:
        return triage.raise_finding(session, rt, patient, finding, message_id=message_id)


def _text(rt: Any, body: str) -> None:
    """A patient's text, stored as the webhook stores it and processed as the worker would."""
    with rt.unit_of_work() as session:
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": PHONE,
            "To": "+15005550006",
            "Body": body,
        }
        stored = inbound.store_inbound(session, params, rt.now())
        assert stored.patient_id is not None
        inbound.process_patient(session, rt, stored.patient_id)


def _outbound(rt: Any, kind: MessageKind) -> list[str]:
    with rt.sessions() as session:
        return list(session.scalars(select(Message.body).where(Message.kind == kind).order_by(Message.id)))


def _resolve(rt: Any, alert_id: int) -> None:
    with rt.unit_of_work() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert_lifecycle.resolve(
            session, alert, staff_id=None, actor="test", now=rt.now(), outcome="no_action_needed", note=None
        )


def _alerts(rt: Any, patient: int) -> list[Alert]:
    with rt.sessions() as session:
        return list(session.scalars(select(Alert).where(Alert.patient_id == patient).order_by(Alert.id)))


def test_self_harm_beside_another_emergency_gets_the_crisis_text(rt: Any) -> None:
    team = make_team(rt)
    make_patient(rt, team, phone=PHONE)
    make_nurse(rt, team)
    _text(rt, "I can't breathe and I want to die")
    (reply,) = _outbound(rt, MessageKind.SAFETY)  # one text for the message, and it is the crisis text
    assert rt.settings.CRISIS_LINE in reply


def test_a_same_day_message_on_an_acknowledged_alert_still_reaches_the_team(rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team, phone=PHONE)
    make_nurse(rt, team)
    _text(rt, "the pain is unbearable")
    (severe,) = [a for a in _alerts(rt, patient) if a.category == "severe_pain"]
    with rt.unit_of_work() as session:
        alert = session.get(Alert, severe.id)
        assert alert is not None
        alert_lifecycle.acknowledge(session, alert, staff_id=None, actor="test", now=rt.now(), via="test")
    _text(rt, "pain is excruciating again tonight")
    # Merged into the acknowledged alert, nobody was told: so the message has its own alert as well.
    assert any(a.category == "patient_message" for a in _alerts(rt, patient))
    assert len(_outbound(rt, MessageKind.ACKNOWLEDGEMENT)) == 2  # and the patient got an answer both times


def test_evidence_resolved_in_one_episode_never_pages_through_the_next(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    first = _raise(rt, patient, _finding(), message_id=1001)
    assert first is not None
    _resolve(rt, first.alert.id)
    second = _raise(rt, patient, _finding(), message_id=1002)  # a new episode
    assert second is not None and second.alert.id != first.alert.id
    again = _raise(rt, patient, _finding(), message_id=1001)  # the resolved answer, scored once more
    assert again is None
    (episode,) = [a for a in _alerts(rt, patient) if a.status != AlertStatus.RESOLVED]
    assert episode.notice == 0  # not paged again


def test_a_resolved_lower_urgency_does_not_hide_a_more_urgent_finding(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    same_day = _raise(rt, patient, _finding(Urgency.SAME_DAY), message_id=2001)
    assert same_day is not None
    _resolve(rt, same_day.alert.id)
    urgent = _raise(rt, patient, _finding(Urgency.URGENT), message_id=2001)
    assert urgent is not None and urgent.notified and urgent.alert.urgency == "urgent"


def test_every_rule_that_fired_and_the_raising_policy_are_on_the_alert(rt: Any) -> None:
    """Issue 13, defect 4: only the winning rule was stored; the audit trail lost the others and the
    combination policy that raised the urgency."""
    team = make_team(rt)
    patient = make_patient(rt, team, phone=PHONE)
    first = Finding(
        "spinal_cord_compression",
        Urgency.URGENT,
        "scc-neuro-or-bladder",
        "test",
        "sre-red-flags",
        1,
        (Evidence(item_code="neuro", question=None, raw_text="yes", value=True),),
        other_rule_ids=("new-bone-pain", "two-ambers-make-a-red"),
    )
    raised = _raise(rt, patient, first, message_id=None)
    assert raised is not None
    later = Finding(
        "spinal_cord_compression",
        Urgency.URGENT,
        "reading.neuro",
        "test",
        "symptoms",
        1,
        (Evidence(item_code=None, question=None, raw_text="legs numb", value="legs numb"),),
    )
    _raise(rt, patient, later, message_id=None)
    (alert,) = _alerts(rt, patient)
    assert alert.rule_ids == [
        "scc-neuro-or-bladder",
        "new-bone-pain",
        "two-ambers-make-a-red",
        "reading.neuro",
    ]
    with rt.sessions() as session:
        opened = session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert.id, AlertEvent.kind == "opened")
        ).one()
    assert opened.detail["other_rule_ids"] == ["new-bone-pain", "two-ambers-make-a-red"]
