"""Every patient message is read for danger on arrival, whatever else it is (ARCHITECTURE rule 10).

An answer (and the words beyond it), an unreadable attempt, free text, a reply after expiry, STOP or HELP
with more words: the symptom reader runs first, and what it finds is raised at once, not when the
check-in closes. An urgent finding sends the patient the safety text (the crisis text for self-harm)
through the alert, and pages; the caller then skips the generic acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from alerts.escalation import in_working_hours
from alerts.rules import Evidence, Finding, Urgency
from pro_service.instruments import Item
from pro_service.message_reading import MessageReading, findings_of, read_message
from pro_service.models import Alert, Message, Patient
from pro_service.runtime import Runtime
from pro_service.services import triage

STOPPED_MONITORING = "stopped_monitoring"


@dataclass(frozen=True)
class Arrival:
    reading: MessageReading
    raised: list[triage.Raised] = field(default_factory=list)

    @property
    def alerts(self) -> list[Alert]:
        """Alerts this message opened or notified again (merely merged evidence does not count: nobody
        was told, so the message still needs its own patient-message alert)."""
        return [r.alert for r in self.raised if r.notified]

    @property
    def urgent(self) -> bool:
        """This message sent the safety (or crisis) text: the generic acknowledgement is not sent."""
        return any(alert.urgency == Urgency.URGENT.value for alert in self.alerts)

    @property
    def unclear(self) -> str | None:
        """Why a readable reply to a red-flag question is not an answer, for the conversation."""
        return self.reading.red_flag_reason if self.reading.unclear_red_flag else None


def read_on_arrival(
    session: Session,
    rt: Runtime,
    patient: Patient,
    message: Message,
    *,
    item: Item | None = None,
    check_in_id: int | None = None,
) -> Arrival:
    """Read the message and raise what it says; `item` is the question it answers, if any."""
    text = message.body or ""
    reading = read_message(text, rt.lexicon, item=item, language=patient.language)
    question = item.text.get(patient.language, item.text["en"]) if item is not None else None
    raised = [
        result
        for finding in findings_of(reading, rt.lexicon, text=text, item=item, question=question)
        if (
            result := triage.raise_finding(
                session, rt, patient.id, finding, check_in_id=check_in_id, message_id=message.id
            )
        )
        is not None
    ]
    return Arrival(reading, raised)


def record_opt_out(session: Session, rt: Runtime, patient: Patient, message: Message) -> Alert | None:
    """Opting out is not silence: a routine alert that monitoring stopped, for the care team to see."""
    finding = Finding(
        category=STOPPED_MONITORING,
        urgency=Urgency.ROUTINE,
        rule_id="opted-out",
        rationale=(
            "The patient (or someone with their phone) asked to stop the check-in texts. Monitoring has "
            "stopped: confirm with the patient, and check whether they are unwell, in hospital or have died."
        ),
        ruleset=rt.lexicon.name,
        ruleset_version=rt.lexicon.version,
        evidence=(Evidence(item_code=None, question=None, raw_text=message.body, value=message.body),),
    )
    return triage.upsert_alert(session, rt, patient.id, finding, message_id=message.id)


def reply_text_key(rt: Runtime, patient: Patient, key: str) -> str:
    """`callback` / `acknowledgement`, or their out-of-hours forms (never promise a call)."""
    if in_working_hours(rt.policy, rt.now(), patient.care_team.timezone):
        return key
    return f"{key}_out_of_hours"
