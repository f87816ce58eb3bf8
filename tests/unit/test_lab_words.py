"""Lab results in words for the nurse pages (pure): amounts, reference ranges, sample times, lab evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.labs import ADJUSTED_CALCIUM, ALKALINE_PHOSPHATASE, TOTAL_CALCIUM
from pro_service.web import ui

NOW = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reference", "unit", "expected"),
    [
        ("2.2-2.6 mmol/L", "mmol/L", "2.2–2.6"),
        ("8.6 - 10.3 mg/dL", "mmol/L", "8.6–10.3 mg/dL"),
        ("45-110 umol/L", "umol/L", "45–110"),
        ("<=130 U/L", "U/L", "<=130"),
        (None, "U/L", ""),
    ],
)
def test_reference_ranges_read_as_printed(reference: str | None, unit: str, expected: str) -> None:
    assert ui.reference_text(reference, unit) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (3.2, "mmol/L", "3.20 mmol/L"),
        (88.42, "umol/L", "88.4 µmol/L"),
        (140.0, "U/L", "140 U/L"),
        (None, "g/L", "—"),
    ],
)
def test_lab_amounts(value: float | None, unit: str, expected: str) -> None:
    assert ui.lab_amount(value, unit) == expected


def test_a_lab_missing_fact_without_an_earlier_result_and_for_other_tests() -> None:
    def words(value: dict[str, Any]) -> str:
        return ui.lab_missing_text(value, "America/New_York", NOW)

    calcium = {"lab_missing": ["adjusted calcium"], "codes": [ADJUSTED_CALCIUM], "within_days": 14}
    assert words({**calcium, "last_result": None}) == (
        "No calcium result in the last 14 days (no earlier result found)"
    )
    alp = {"lab_missing": ["alkaline phosphatase"], "codes": [ALKALINE_PHOSPHATASE], "within_days": 90}
    assert words(alp).startswith("No alkaline phosphatase result in the last 90 days")


def test_new_categories_have_words() -> None:
    assert ui.category_label("bone_marker_rise") == "Rising alkaline phosphatase (bone marker)"
    assert ui.sample_time("2024-12-02T19:05:00+00:00", "America/New_York", NOW) == "2 Dec 2024 14:05 EST"
    assert ui.sample_time("2025-07-02T13:05:00+00:00", "America/New_York", NOW) == "2 Jul 09:05 EDT"


def test_lab_evidence_names_derived_amended_and_withdrawn_values() -> None:
    evidence = {
        "code": ADJUSTED_CALCIUM,
        "name": "adjusted calcium",
        "value": 3.1,
        "unit": "mmol/L",
        "reference_range": None,
        "taken_at": "2025-12-02T19:05:00+00:00",
        "status": "amended",
        "derived": True,
        "result_id": 7,
    }
    assert ui.lab_evidence_text(evidence, "America/New_York", NOW) == (
        "Adjusted calcium 3.10 mmol/L, sample 2 Dec 14:05 EST "
        "(derived from total calcium and albumin; amended)"
    )
    total = {**evidence, "code": TOTAL_CALCIUM, "value": None, "status": "entered-in-error", "derived": False}
    assert (
        ui.lab_evidence_text(total, "UTC", NOW)
        == "Calcium (total) withdrawn, sample 2 Dec 19:05 UTC (withdrawn)"
    )
    assert ui.is_lab_result(evidence) and not ui.is_lab_missing(evidence)
    assert not ui.is_lab_result({"lab_missing": ["adjusted calcium"]}) and not ui.is_lab_result("3.1")


def test_an_age_reads_as_english_never_just_now_ago() -> None:
    from datetime import UTC, datetime, timedelta

    from pro_service.web.ui import ago

    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert ago(now - timedelta(seconds=20), now) == "just now"
    assert ago(now - timedelta(minutes=12), now) == "12 min ago"
    assert ago(None, now) == ""
