"""Same day means within 24 hours, every day: the shipped policy pages same-day alerts out of hours."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.escalation import EscalationError, decide, in_working_hours, load_policy

CONFIG = Path(__file__).resolve().parents[2] / "config" / "escalation.yaml"


def test_a_friday_evening_same_day_alert_pages_now_not_on_monday() -> None:
    policy = load_policy(CONFIG)
    friday_evening = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # 18:30 in New York, a Friday
    assert not in_working_hours(policy, friday_evening, "America/New_York")
    decision = decide(policy, "same_day", friday_evening, "America/New_York")
    assert decision.page_now
    assert decision.next_escalation_at is not None
    assert (decision.next_escalation_at - friday_evening).total_seconds() <= 24 * 3600


@pytest.mark.parametrize("page", ["working_hours", "never"])
def test_a_policy_that_lets_same_day_wait_is_refused(tmp_path: Path, page: str) -> None:
    text = CONFIG.read_text(encoding="utf-8").replace("  same_day:\n", f"  same_day:\n    page: {page}\n", 1)
    # Drop the shipped `page: always` line of same_day so only the replacement remains.
    lines = text.splitlines()
    start = lines.index("  same_day:")
    block = [i for i in range(start + 1, start + 8) if lines[i].strip() == "page: always"]
    del lines[block[0]]
    path = tmp_path / "escalation.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EscalationError, match="same_day"):
        load_policy(path)
