"""What a patient experiences: full check-ins in English and Spanish, forgiving replies, re-prompts,
keywords, messages outside a check-in — over the signed webhook, processed by the real worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
PHONE = "+15551230001"


class Phone:
    """The patient's phone: what it received (at the Twilio server) and replying to it."""

    def __init__(self, sms: Callable[..., Any], state: Any, number: str = PHONE) -> None:
        self.sms, self.state, self.number = sms, state, number

    def inbox(self) -> list[str]:
        return [m["body"] for m in self.state.messages(self.number)]

    def wait(self, count: int) -> list[str]:
        return [m["body"] for m in self.state.wait_for_messages(count, timeout=20, to=self.number)]

    def reply(self, text: str, expect_new: int = 1) -> list[str]:
        """Send a reply and return the texts it caused."""
        before = len(self.inbox())
        assert self.sms(self.number, text).status_code == 200
        return self.wait(before + expect_new)[before:]


@pytest.fixture
def phone(sms: Any, twilio_server: Any, worker: Any, live_server: str) -> Phone:
    return Phone(sms, twilio_server.state)


def _start(api: Any, patient_id: int) -> int:
    response = api("POST", f"/api/v1/patients/{patient_id}/check-ins", {"instrument": "sre-weekly"})
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def _alerts(api: Any, patient_id: int) -> list[dict[str, Any]]:
    return list(api("GET", f"/api/v1/alerts?patient_id={patient_id}").json["alerts"])


def test_full_check_in_in_english_with_forgiving_replies(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    assert phone.wait(1)[0].startswith("1/9 ")
    script = [
        ("Yes!", "2/9 "),
        ("7/10", "3/9 "),
        ("1 and 3", "4/9 "),
        ("no.", "5/9 "),
        ("nope", "6/9 "),
        ("NO", "7/9 "),
        ("n", "8/9 "),
        ("1, 3 & 4", "9/9 "),
    ]
    for reply, next_prefix in script:
        (question,) = phone.reply(reply)
        assert question.startswith(next_prefix), (reply, question)
        assert len(question) <= 160
    closing = phone.reply("No thanks")
    assert "Thank you" in closing[0]

    result = wait_for(
        lambda: (r := api("GET", f"/api/v1/check-ins/{check_in}").json)["status"] == "completed" and r,
        message="the check-in to complete",
    )
    values = {code: a["value"] for code, a in result["answers"].items()}
    assert values == {
        "pain_new": True,
        "pain_worst": 7,
        "pain_site": [1, 3],
        "pain_at_rest": False,
        "sudden_immobile": False,
        "neuro": False,
        "bladder_bowel": False,
        "calcium_sx": [1, 3, 4],
        "anything_else": None,
    }
    assert result["answers"]["pain_worst"]["raw_text"] == "7/10"

    def scored() -> list[tuple[str, str]]:
        alerts = _alerts(api, patient)
        return sorted((a["category"], a["urgency"]) for a in alerts) if len(alerts) >= 4 else []

    assert wait_for(scored, message="alerts for the completed check-in") == [
        ("hypercalcemia", "same_day"),
        ("new_bone_pain", "routine"),
        ("severe_pain", "same_day"),
        ("spinal_metastasis_pain", "same_day"),
    ]


def test_full_check_in_in_spanish(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt), language="es")
    check_in = _start(api, patient)
    assert phone.wait(1)[0].startswith("1/9 ¿Tiene dolor NUEVO")
    for reply in ("sí", "siete", "1 y 3", "si", "no", "no", "no gracias", "ninguno"):
        (question,) = phone.reply(reply)
        assert "Responda" in question or "?" in question
    closing = phone.reply("me duele la cadera por la noche")
    assert closing[0].startswith("Gracias")
    answers = wait_for(
        lambda: (
            (r := api("GET", f"/api/v1/check-ins/{check_in}").json)["status"] == "completed" and r["answers"]
        ),
        message="completion",
    )
    assert answers["pain_new"]["value"] is True
    assert answers["pain_worst"]["value"] == 7
    assert answers["pain_site"]["value"] == [1, 3]
    assert answers["calcium_sx"]["value"] == []
    assert answers["anything_else"]["value"] == "me duele la cadera por la noche"
    categories = wait_for(
        lambda: (
            {a["category"] for a in _alerts(api, patient)} >= {"new_bone_pain", "patient_message"}
            and {a["category"] for a in _alerts(api, patient)}
        ),
        message="alerts",
    )
    assert "new_bone_pain" in categories  # new pain, worse at rest: same day


def test_unreadable_reply_gets_one_reprompt_then_moves_on_and_reaches_the_nurse(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    phone.wait(1)
    (reprompt,) = phone.reply("banana")
    assert reprompt.startswith("Sorry") and "YES or NO" in reprompt and "1/9" in reprompt
    (next_question,) = phone.reply("purple")
    assert next_question.startswith("2/9 ")
    answer = api("GET", f"/api/v1/check-ins/{check_in}").json["answers"]["pain_new"]
    assert answer == {**answer, "status": "unreadable", "raw_text": "purple", "value": None}


def test_stop_mid_check_in_opts_out_and_nothing_more_is_sent(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    phone.wait(1)
    phone.reply("yes")
    (confirmation,) = phone.reply("STOP")
    assert "no more" in confirmation.lower()
    assert api("GET", f"/api/v1/check-ins/{check_in}").json["status"] == "cancelled"
    assert api("GET", f"/api/v1/patients/{patient}").json["opted_out_at"] is not None
    # Anything more from them is kept for the care team, but they get no reply.
    assert phone.sms(PHONE, "7").status_code == 200
    wait_for(
        lambda: any(a["category"] == "patient_message" for a in _alerts(api, patient)),
        message="the message to reach the care team",
    )
    refused = api("POST", f"/api/v1/patients/{patient}/check-ins", {"instrument": "sre-weekly"})
    assert refused.status_code == 409
    assert len(phone.inbox()) == 3
    (welcome,) = phone.reply("START")
    assert "Welcome back" in welcome
    assert api("GET", f"/api/v1/patients/{patient}").json["opted_out_at"] is None


def test_plain_language_opt_out_is_honoured(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    phone.reply("please stop texting me")
    assert api("GET", f"/api/v1/patients/{patient}").json["opted_out_at"] is not None


def test_help_and_nurse_are_never_taken_as_answers(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    phone.wait(1)
    (help_text,) = phone.reply("HELP")
    assert "STOP" in help_text
    (callback,) = phone.reply("nurse")
    # In hours a nurse calls back today; out of hours the patient is pointed to the 24-hour line instead.
    assert ("call you back" in callback) or ("on-call team" in callback and "24 hours" in callback)
    state = api("GET", f"/api/v1/check-ins/{check_in}").json
    assert state["current_item"] == "pain_new" and state["answers"] == {}
    alerts = wait_for(lambda: _alerts(api, patient), message="the call-back request")
    assert [(a["category"], a["urgency"]) for a in alerts] == [("callback_request", "same_day")]


def test_message_outside_a_check_in_is_acknowledged_and_shown_to_the_team(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt))
    (ack,) = phone.reply("I've had a busy week, see you at clinic on Tuesday")
    assert "911" in ack and "+1 555 0100" in ack
    alerts = wait_for(lambda: _alerts(api, patient), message="the patient message alert")
    assert [(a["category"], a["urgency"]) for a in alerts] == [("patient_message", "routine")]
    assert alerts[0]["evidence"][0]["raw_text"] == "I've had a busy week, see you at clinic on Tuesday"
    timeline = api("GET", f"/api/v1/messages?patient_id={patient}").json["messages"]
    assert [m["direction"] for m in timeline][:2] == ["outbound", "inbound"]
