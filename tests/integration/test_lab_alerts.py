"""A lab result raises its alert at once (issue 17), through the real FHIR and HL7 endpoints on PostgreSQL.

The lab rules are sre-v2's (config/rules/sre-v2.yaml): adjusted calcium above 3.0 mmol/L is urgent, 2.6 to
3.0 same day; a result already raised is not raised again; a withdrawn result marks the alert raised on it;
the patient is not texted for a lab value (the team phones them); the nurse is paged as for any alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import Alert, AlertEvent, AlertStatus, Message, MessageKind, Patient
from pro_service.services import alert_lifecycle
from pro_service.services.tokens import create_token
from tests.conftest import wait_for
from tests.integration.helpers import make_nurse, make_patient, make_team
from tests.integration.test_check_in_conversation import Phone, _start
from tests.integration.test_check_in_conversation import _alerts as api_alerts
from tests.integration.test_labs_intake import MRN, _post_fhir, _post_hl7, observation, obx, oru
from tests.integration.test_own_words import _scored

pytestmark = pytest.mark.integration
ADJUSTED = "29265-6"


@pytest.fixture
def patient_id(rt: Any) -> int:
    return make_patient(rt, make_team(rt), phone="+15551230001", mrn=MRN)


@pytest.fixture
def integration_token(rt: Any) -> str:
    with rt.unit_of_work() as session:
        return create_token(
            session, requested_by="operator", name="lab-interface", client="lab", scopes=["labs:write"]
        ).token


def _recent(hours: float = 1) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")


def _calcium(value: float, ident: str, **extra: Any) -> dict[str, Any]:
    return observation(ADJUSTED, value, "mmol/L", ident=ident, taken=_recent(), **extra)


def _alerts(rt: Any, patient: int) -> list[Alert]:
    with rt.sessions() as session:
        return list(session.scalars(select(Alert).where(Alert.patient_id == patient).order_by(Alert.id)))


def _messages(rt: Any, kind: MessageKind) -> list[Message]:
    with rt.sessions() as session:
        return list(session.scalars(select(Message).where(Message.kind == kind)))


def test_a_high_adjusted_calcium_is_an_urgent_alert_that_pages_and_does_not_text_the_patient(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    with rt.sessions() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        team = patient.care_team_id
    make_nurse(rt, team)
    response = _post_fhir(client, "/fhir/Observation", _calcium(3.3, "CA-1"), integration_token)
    assert response.status_code == 201, response.get_data(as_text=True)
    (alert,) = _alerts(rt, patient_id)
    assert (alert.category, alert.urgency, alert.status) == ("hypercalcemia", "urgent", AlertStatus.OPEN)
    assert "hypercalcemia-lab-above-3" in alert.rule_ids
    (evidence,) = alert.evidence
    assert evidence["value"]["value"] == pytest.approx(3.3) and evidence["value"]["unit"] == "mmol/L"
    assert _messages(rt, MessageKind.PAGE) != []  # the on-call nurse is paged
    assert _messages(rt, MessageKind.SAFETY) == []  # not "your answers need attention"

    again = _post_fhir(client, "/fhir/Observation", _calcium(3.3, "CA-1"), integration_token)
    assert again.status_code in (200, 201)
    assert len(_alerts(rt, patient_id)) == 1  # the same result twice: stored once, raised once


def test_a_borderline_calcium_is_same_day_and_a_normal_one_raises_nothing(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    _post_fhir(client, "/fhir/Observation", _calcium(2.4, "CA-N"), integration_token)
    assert _alerts(rt, patient_id) == []
    _post_fhir(client, "/fhir/Observation", _calcium(2.8, "CA-B"), integration_token)
    (alert,) = _alerts(rt, patient_id)
    assert (alert.category, alert.urgency) == ("hypercalcemia", "same_day")


def test_a_new_high_result_after_a_resolved_one_is_a_new_episode(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    _post_fhir(client, "/fhir/Observation", _calcium(3.2, "CA-1"), integration_token)
    (first,) = _alerts(rt, patient_id)
    with rt.unit_of_work() as session:
        alert = session.get(Alert, first.id)
        assert alert is not None
        alert_lifecycle.resolve(
            session, alert, staff_id=None, actor="test", now=rt.now(), outcome="no_action_needed", note=None
        )
    _post_fhir(client, "/fhir/Observation", _calcium(3.4, "CA-2"), integration_token)
    alerts = _alerts(rt, patient_id)
    assert len(alerts) == 2 and alerts[1].status == AlertStatus.OPEN
    assert alerts[1].previous_alert_id == first.id
    assert alerts[1].evidence[0]["value"]["value"] == pytest.approx(3.4)


def test_a_withdrawn_result_is_marked_on_the_alert_raised_on_it(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    _post_fhir(client, "/fhir/Observation", _calcium(3.3, "CA-W"), integration_token)
    (alert,) = _alerts(rt, patient_id)
    withdrawn = _calcium(3.3, "CA-W", status="entered-in-error")
    assert _post_fhir(client, "/fhir/Observation", withdrawn, integration_token).status_code in (200, 201)
    with rt.sessions() as session:
        kinds = list(session.scalars(select(AlertEvent.kind).where(AlertEvent.alert_id == alert.id)))
    assert "evidence_withdrawn" in kinds


def test_an_hl7_result_raises_its_alert_too(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    stamp = now.strftime("%Y%m%d%H%M%S+0000")
    calcium = obx(1, ADJUSTED, "Calcium corrected for albumin", "3.5", "mmol/L", "2.2-2.6", "H").replace(
        "20251103083000-0500", stamp
    )
    response, segments = _post_hl7(client, oru(calcium, taken=stamp, sent=stamp), integration_token)
    assert segments["MSA"][1] == "AA", response.get_data(as_text=True)
    (alert,) = _alerts(rt, patient_id)
    assert alert.urgency == "urgent"


def test_thirst_in_a_check_in_with_no_recent_calcium_asks_for_one(
    api: Any, rt: Any, sms: Any, twilio_server: Any, worker: Any, live_server: str
) -> None:
    """The check-in's scoring reads the patient's labs: thirst and no calcium in 14 days is same day."""

    patient = make_patient(rt, make_team(rt))
    phone = Phone(sms, twilio_server.state)
    check_in = _start(api, patient)
    phone.wait(1)
    for reply in ("no", "0", "no", "no", "4"):  # no new pain, pain 0, neuro no, bladder no, very thirsty
        phone.reply(reply)
    phone.reply("no", expect_new=1)  # anything else: no (the closing text)
    wait_for(lambda: _scored(rt, check_in), message="the check-in scored")
    (alert,) = [a for a in api_alerts(api, patient) if a["category"] == "hypercalcemia"]
    assert alert["urgency"] == "same_day" and "hypercalcemia-check-calcium" in alert["rule_ids"]


def _post(
    client: Any, token: str, code: str, value: float, unit: str, ident: str, hours: float, **kw: Any
) -> None:
    taken = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")
    body = observation(code, value, unit, ident=ident, taken=taken, **kw)
    response = _post_fhir(client, "/fhir/Observation", body, token)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def test_withdrawing_the_newest_calcium_raises_an_older_high_one_never_raised(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    """Review finding: a high result that arrived late (not the latest) became current when the newer one was
    withdrawn, and nobody was paged because the request had changed only the withdrawn row."""
    _post(client, integration_token, ADJUSTED, 2.5, "mmol/L", "NEW", 1)
    _post(client, integration_token, ADJUSTED, 3.4, "mmol/L", "OLD", 20)
    assert _alerts(rt, patient_id) == []  # 2.5 is the latest: correct
    _post(client, integration_token, ADJUSTED, 2.5, "mmol/L", "NEW", 1, status="entered-in-error")
    (alert,) = _alerts(rt, patient_id)
    assert alert.urgency == "urgent" and alert.evidence[0]["value"]["value"] == pytest.approx(3.4)


def test_withdrawing_the_labs_adjusted_calcium_lets_the_derived_one_stand_in(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    """Review finding: with the lab's own adjusted calcium withdrawn, nothing was derived from a high total
    calcium and albumin of the same sample, so it stayed silent."""
    _post(client, integration_token, "17861-6", 12.8, "mg/dL", "TCA", 1)  # 3.19 mmol/L
    _post(client, integration_token, ADJUSTED, 2.5, "mmol/L", "LADJ", 1)
    _post(client, integration_token, "1751-7", 4.0, "g/dL", "ALB", 1)
    assert _alerts(rt, patient_id) == []  # the lab's 2.5 is the reading that counts
    _post(client, integration_token, ADJUSTED, 2.5, "mmol/L", "LADJ", 1, status="entered-in-error")
    (alert,) = _alerts(rt, patient_id)
    assert alert.urgency == "urgent" and alert.evidence[0]["value"]["derived"] is True
