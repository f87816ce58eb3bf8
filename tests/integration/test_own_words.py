"""Urgent in the patient's own words (issue 12), through the signed webhook and the real worker.

Each test is a class of message: free text outside a check-in, words beyond an answer, a "no" with symptom
words on a red-flag question, STOP with a symptom, new urgent evidence on an acknowledged alert, and an
answer already resolved. The wording here is ours; the reader's coverage is measured on the labelled
corpus (tests/unit/test_reading_corpus.py, benchmarks/bench_reading.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from pro_service.models import CheckIn
from tests.conftest import wait_for
from tests.integration.helpers import make_nurse, make_patient, make_team
from tests.integration.test_check_in_conversation import Phone, _alerts, _start

pytestmark = pytest.mark.integration


@pytest.fixture
def phone(sms: Any, twilio_server: Any, worker: Any, live_server: str) -> Phone:
    return Phone(sms, twilio_server.state)


def _scored(rt: Any, check_in_id: int) -> bool:
    with rt.sessions() as session:
        check_in = session.get(CheckIn, check_in_id)
        return check_in is not None and check_in.scored_at is not None


def _urgent(api: Any, patient: int) -> list[dict[str, Any]]:
    return [a for a in _alerts(api, patient) if a["urgency"] == "urgent"]


def _answer_to(phone: Phone, replies: list[str]) -> None:
    for reply in replies:
        phone.reply(reply)


def _at_the_neuro_question(api: Any, rt: Any, phone: Phone) -> tuple[int, int]:
    """A patient in a check-in, now asked the neuro red-flag question: (patient id, check-in id)."""
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    phone.wait(1)
    _answer_to(phone, ["no", "0"])  # no new pain; worst pain 0 skips the pain follow-ups
    return patient, check_in


def test_an_emergency_outside_a_check_in_is_urgent_with_the_safety_text_in_spanish(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt), language="es")
    (reply,) = phone.reply("ayer me cai en la cocina y ahora no me puedo levantar")
    assert "911" in reply and "urgencias" in reply.lower()  # the safety text, not "su mensaje se envio"
    urgent = wait_for(lambda: _urgent(api, patient), message="urgent alerts")
    assert {a["category"] for a in urgent} >= {"pathologic_fracture"}
    evidence = next(a for a in urgent if a["category"] == "pathologic_fracture")["evidence"][0]
    assert evidence["raw_text"].startswith("ayer me cai")
    # The words are the urgent alert's evidence; no second "patient message" alert pages the nurse again.
    assert all(a["category"] != "patient_message" for a in _alerts(api, patient))


def test_a_quiet_message_gets_the_acknowledgement_and_no_urgent_alert(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt))
    (reply,) = phone.reply("no numbness or tingling this week, walking fine, thanks")
    assert "message" in reply.lower() and "emergency" in reply.lower()
    wait_for(lambda: _alerts(api, patient), message="the message alert")
    assert _urgent(api, patient) == []


def test_words_beyond_an_answer_are_read(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    check_in = _start(api, patient)
    phone.wait(1)
    phone.reply("yes")
    replies = phone.reply("10, and now i cant walk properly", expect_new=2)
    assert any(r.startswith("3/9 ") for r in replies)  # the score is still an answer
    assert any("911" in r for r in replies)  # and the words after it raised an emergency
    state = api("GET", f"/api/v1/check-ins/{check_in}").json
    assert state["answers"]["pain_worst"]["value"] == 10
    urgent = wait_for(lambda: _urgent(api, patient), message="the urgent alert")
    assert [a["category"] for a in urgent] == ["spinal_cord_compression"]


def test_a_no_with_symptom_words_on_a_red_flag_question_is_an_urgent_unknown(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient, check_in = _at_the_neuro_question(api, rt, phone)
    replies = phone.reply("nope but its gone a bit numb down below", expect_new=2)
    assert any(r.startswith("7/9 ") or r.startswith("8/9 ") for r in replies)  # moved on, no re-prompt
    assert any("911" in r for r in replies)
    state = api("GET", f"/api/v1/check-ins/{check_in}").json
    assert state["answers"]["neuro"]["status"] == "unreadable"  # never stored as "no"
    urgent = wait_for(lambda: _urgent(api, patient), message="the urgent alert")
    assert [a["category"] for a in urgent] == ["spinal_cord_compression"]
    assert urgent[0]["evidence"][0]["raw_text"] == "nope but its gone a bit numb down below"


def test_a_qualified_reply_to_a_red_flag_question_is_urgent_but_a_clean_no_is_not(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient, _ = _at_the_neuro_question(api, rt, phone)
    phone.reply("No thanks, all good")  # neuro: a clean no
    assert _urgent(api, patient) == []
    phone.reply("maybe a little, not sure", expect_new=2)  # bladder_bowel: qualified
    urgent = wait_for(lambda: _urgent(api, patient), message="the urgent alert")
    assert urgent[0]["category"] == "spinal_cord_compression"
    assert "red-flag-unclear.bladder_bowel" in urgent[0]["rule_ids"]


def test_stop_with_a_symptom_opts_out_and_alerts(
    api: Any, rt: Any, sms: Any, twilio_server: Any, phone: Phone
) -> None:
    # A number of its own: the Twilio stand-in, like Twilio, blocks a number that texted STOP.
    phone = Phone(sms, twilio_server.state, number="+15551230077")
    patient = make_patient(rt, make_team(rt), phone=phone.number, mrn="MRN077")
    replies = phone.reply("stop texting me, I cant feel my legs", expect_new=2)
    assert any("911" in r for r in replies)  # the safety text went before the opt-out
    assert api("GET", f"/api/v1/patients/{patient}").json["opted_out_at"] is not None
    categories = wait_for(
        lambda: (
            {a["category"] for a in _alerts(api, patient)}
            >= {"spinal_cord_compression", "stopped_monitoring"}
            and {a["category"] for a in _alerts(api, patient)}
        ),
        message="the urgent and the stopped-monitoring alerts",
    )
    assert "spinal_cord_compression" in categories


def test_opting_out_mid_check_in_scores_what_was_answered(
    api: Any, rt: Any, sms: Any, twilio_server: Any, phone: Phone
) -> None:
    phone = Phone(sms, twilio_server.state, number="+15551230078")
    patient = make_patient(rt, make_team(rt), phone=phone.number, mrn="MRN078")
    check_in = _start(api, patient)
    phone.wait(1)
    _answer_to(phone, ["yes", "8"])
    phone.reply("STOP")
    alerts = wait_for(
        lambda: (
            {a["category"]: a for a in _alerts(api, patient)}.get("severe_pain") and _alerts(api, patient)
        ),
        message="the severe pain found before the opt-out",
    )
    assert {a["category"] for a in alerts} >= {"severe_pain", "stopped_monitoring"}
    assert api("GET", f"/api/v1/check-ins/{check_in}").json["status"] == "cancelled"


def test_new_urgent_evidence_after_an_acknowledgement_notifies_again(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))
    (first,) = phone.reply("my legs have gone numb")
    alert = wait_for(lambda: _urgent(api, patient), message="the urgent alert")[0]
    assert api("POST", f"/api/v1/alerts/{alert['id']}/acknowledge", {}).status_code == 200
    (second,) = phone.reply("now i cant stand up at all")
    assert "911" in first and "911" in second  # the safety text again, not the acknowledgement
    again = wait_for(
        lambda: (a := api("GET", f"/api/v1/alerts/{alert['id']}").json)["status"] == "open" and a,
        message="the alert reopened by new evidence",
    )
    assert {e["kind"] for e in again["events"]} >= {"acknowledged", "new_since_acknowledged"}
    assert len(_urgent(api, patient)) == 1  # one episode, not a second alert


def test_a_resolved_answer_never_raises_again(api: Any, rt: Any, phone: Phone) -> None:
    patient, check_in = _at_the_neuro_question(api, rt, phone)
    phone.reply("yes", expect_new=2)  # neuro yes: urgent at once
    alert = wait_for(lambda: _urgent(api, patient), message="the urgent alert")[0]
    resolved = api(
        "POST",
        f"/api/v1/alerts/{alert['id']}/resolve",
        {"outcome": "advised_emergency_care", "rag": "red", "note": "called"},
    )
    assert resolved.status_code == 200
    _answer_to(phone, ["no", "0"])
    phone.reply("no")  # anything_else: the check-in completes and is scored in full
    wait_for(lambda: _scored(rt, check_in), message="the completed check-in scored in full")
    assert [a["id"] for a in _urgent(api, patient)] == [alert["id"]]  # no second alert for that answer


def test_stop_saying_the_patient_died_is_a_same_day_stopped_monitoring_alert(
    api: Any, rt: Any, sms: Any, twilio_server: Any, phone: Phone
) -> None:
    phone = Phone(sms, twilio_server.state, number="+15551230079")
    patient = make_patient(rt, make_team(rt), phone=phone.number, mrn="MRN079")
    phone.reply("please stop the messages, she passed away yesterday")
    assert api("GET", f"/api/v1/patients/{patient}").json["opted_out_at"] is not None
    alert = wait_for(
        lambda: next((a for a in _alerts(api, patient) if a["category"] == "stopped_monitoring"), None),
        message="the stopped-monitoring alert",
    )
    assert alert["urgency"] == "same_day"  # not routine: the team must know today
    assert _urgent(api, patient) == []


def test_an_unreadable_reply_to_a_red_flag_question_is_urgent_and_not_asked_again(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient, check_in = _at_the_neuro_question(api, rt, phone)
    replies = phone.reply("hmm??", expect_new=2)  # neuro
    assert any(r.startswith("7/9 ") for r in replies)  # the next question, not a re-prompt
    assert api("GET", f"/api/v1/check-ins/{check_in}").json["answers"]["neuro"]["status"] == "unreadable"
    urgent = wait_for(lambda: _urgent(api, patient), message="the urgent alert")
    assert "red-flag-unclear.neuro" in urgent[0]["rule_ids"]


def test_unknown_wording_about_a_red_flag_body_part_is_urgent_for_a_nurse_with_a_gentler_text(
    api: Any, rt: Any, phone: Phone
) -> None:
    """The reader's net (symptoms-v2 `unsure`): a limb and a change in words no pattern knows. Unsure is
    not safe here, so a nurse is paged now; the patient is told a nurse will read it, not that it is an
    emergency."""
    from sqlalchemy import select

    from pro_service.models import Message

    team = make_team(rt)
    patient = make_patient(rt, team)
    make_nurse(rt, team)
    (reply,) = phone.reply("my knees feel kind of different since yesterday, hard to explain")
    assert "nurse will read your message" in reply and rt.settings.EMERGENCY_NUMBER in reply
    (alert,) = wait_for(lambda: _urgent(api, patient), message="the urgent alert")
    assert alert["category"] == "possible_red_flag"
    assert "unsure" in " ".join(alert["rule_ids"])

    def pages() -> list[str]:
        with rt.sessions() as session:
            return list(session.scalars(select(Message.body).where(Message.kind == "page")))

    (page,) = wait_for(pages, message="the page")
    assert "knees" not in page  # no PHI, no patient words, in a page
