"""The disclosure audit's pure parts (services/disclosure.py): which patients get a row, the action name,
what an idempotent replay shows again, and the "who saw" summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from pro_service.services.disclosure import action_for, replayed_patients, summarise, to_record

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_each_patient_shown_once_without_those_already_recorded_in_the_window() -> None:
    assert to_record([5, 3, 5, None, 3, 9], recent={9}) == [3, 5]
    assert to_record([4, 4], recent=()) == [4]
    assert to_record([1, 2], recent={1, 2}) == []  # the next poll of the same screen: nothing to write
    assert to_record([], recent={1}) == []


def test_the_action_names_the_view_and_refuses_what_the_column_cannot_hold() -> None:
    assert action_for("queue") == "seen_queue"
    assert action_for("fhir_questionnaire_response") == "seen_fhir_questionnaire_response"
    for bad in ("", "Queue", "queue poll", "x" * 60, "q;drop"):
        with pytest.raises(ValueError, match="a view name is"):
            action_for(bad)


def test_a_replay_shows_the_patient_of_its_path_or_of_its_answer() -> None:
    assert replayed_patients("/api/v1/patients/12/check-ins", {"id": 7, "patient_id": 12}) == {12}
    assert replayed_patients("/api/v1/alerts/3/notes", {"id": 3, "patient_id": 40}) == {40}
    assert replayed_patients("/api/v1/patients", {"id": 41, "mrn": "X"}) == {41}  # an enrolment
    assert replayed_patients("/api/v1/care-teams", {"id": 2, "name": "Breast"}) == set()  # no patient
    assert replayed_patients("/api/v1/alerts/3/acknowledge", None) == set()
    assert replayed_patients("/api/v1/alerts/3/notes", {"patient_id": True}) == set()


def test_who_saw_groups_each_actor_and_patient_newest_first() -> None:
    later = T0 + timedelta(hours=2)
    rows = [
        ("staff:1", 7, "seen_queue", 3, T0, T0 + timedelta(minutes=45)),
        ("staff:1", 7, "view_alert", 1, T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)),
        ("token:2", 7, "seen_fhir_flag", 1, later, later),
        ("staff:1", None, "view_queue", 9, T0, later),  # no patient: not a sighting
    ]
    token, kim = summarise(rows)
    assert (token.actor, token.first, token.last, token.count) == ("token:2", later, later, 1)
    assert kim.actor == "staff:1" and kim.patient_id == 7 and kim.count == 4
    assert (kim.first, kim.last) == (T0, T0 + timedelta(minutes=45))
    assert kim.actions == {"seen_queue": 3, "view_alert": 1}


def test_the_window_is_a_bounded_setting() -> None:
    assert Settings(SECRET_KEY="x" * 32).AUDIT_DISCLOSURE_WINDOW_MINUTES == 15
    five = Settings(SECRET_KEY="x" * 32, AUDIT_DISCLOSURE_WINDOW_MINUTES=5)
    assert five.AUDIT_DISCLOSURE_WINDOW_MINUTES == 5
    for bad in (0, 1441):
        with pytest.raises(ValueError, match="AUDIT_DISCLOSURE_WINDOW_MINUTES"):
            Settings(SECRET_KEY="x" * 32, AUDIT_DISCLOSURE_WINDOW_MINUTES=bad)
