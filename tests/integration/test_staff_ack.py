"""`ACK <ref>` by SMS stops escalation, so only someone who may act on the alert can send it (issue 15).

A deactivated account's phone, or a nurse on another team who was never paged for it, must not silence an
urgent alert. In-process on the real database: the message is stored and processed in one transaction,
as the worker would, so the session's worker never sees it.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import Alert, AlertStatus, Message, MessageKind, StaffUser
from pro_service.services import triage
from pro_service.services.inbound import store_inbound
from pro_service.services.staff_inbound import process_staff_message
from tests.integration.helpers import make_nurse, make_patient, make_team

pytestmark = pytest.mark.integration


def _urgent_alert(rt: Any, patient: int) -> Alert:
    evidence = Evidence(item_code="neuro", question=None, raw_text="yes", value=True)
    finding = Finding("spinal_cord_compression", Urgency.URGENT, "scc", "test", "sre", 1, (evidence,))
    with rt.unit_of_work() as session:
        alert = triage.upsert_alert(session, rt, patient, finding)
        assert alert is not None
        session.expunge(alert)
        return alert


def _text_ack(rt: Any, phone: str, ref: str) -> tuple[str, str]:
    """(outcome, the reply texted back)."""
    form = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "From": phone,
        "To": "+15005550006",
        "Body": f"ACK {ref}",
    }
    with rt.unit_of_work() as session:
        stored = store_inbound(session, form, rt.now())
        assert stored.message_id is not None
        outcome = process_staff_message(session, rt, stored.message_id)
        reply = session.scalars(
            select(Message.body)
            .where(Message.kind == MessageKind.STAFF_REPLY, Message.to_number == phone)
            .order_by(Message.id.desc())
        ).first()
    assert reply is not None
    return outcome, reply


def _status(rt: Any, alert_id: int) -> AlertStatus:
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.status


def test_a_deactivated_account_cannot_silence_an_alert_by_sms(rt: Any) -> None:
    team = make_team(rt)
    alert = _urgent_alert(rt, make_patient(rt, team))
    nurse = make_nurse(rt, team, phone="+15557770001")
    with rt.unit_of_work() as session:
        staff = session.get(StaffUser, nurse)
        assert staff is not None
        staff.active = False
    outcome, reply = _text_ack(rt, "+15557770001", alert.ref)
    assert outcome == "not_allowed" and "stays open" in reply
    assert _status(rt, alert.id) == AlertStatus.OPEN


def test_a_nurse_on_another_team_never_paged_for_it_cannot_acknowledge(rt: Any) -> None:
    alert = _urgent_alert(rt, make_patient(rt, make_team(rt)))
    make_nurse(rt, make_team(rt, name="Haematology"), phone="+15557770002", email="other@example.org")
    outcome, _ = _text_ack(rt, "+15557770002", alert.ref)
    assert outcome == "not_allowed"
    assert _status(rt, alert.id) == AlertStatus.OPEN


def test_a_nurse_on_the_patients_team_acknowledges(rt: Any) -> None:
    team = make_team(rt)
    alert = _urgent_alert(rt, make_patient(rt, team))
    make_nurse(rt, team, phone="+15557770003", email="kim@example.org")
    outcome, reply = _text_ack(rt, "+15557770003", alert.ref)
    assert outcome == "acknowledged" and "acknowledged" in reply
    assert _status(rt, alert.id) == AlertStatus.ACKNOWLEDGED


def test_someone_on_call_for_the_patients_team_acknowledges_before_being_paged(rt: Any) -> None:
    """Review finding: the covering clinician on the rota (not on the team, not yet paged) was refused."""
    from datetime import timedelta

    from pro_service.models import OnCallShift

    team = make_team(rt)
    alert = _urgent_alert(rt, make_patient(rt, team))
    cover = make_nurse(
        rt, make_team(rt, name="Acute oncology"), phone="+15557770004", email="cover@example.org"
    )
    with rt.unit_of_work() as session:
        now = rt.now()
        session.add(
            OnCallShift(
                care_team_id=team,
                staff_id=cover,
                level=2,
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=8),
            )
        )
    outcome, _ = _text_ack(rt, "+15557770004", alert.ref)
    assert outcome == "acknowledged"
    assert _status(rt, alert.id) == AlertStatus.ACKNOWLEDGED
