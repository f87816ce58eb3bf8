"""Escalation policy (data in config/escalation.yaml) and the pure decisions made with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class EscalationError(ValueError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkingHours(_Model):
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...]
    start: time
    end: time


class UrgencyPolicy(_Model):
    page: Literal["always", "working_hours", "never"]
    escalate_after_minutes: int | None = Field(default=None, ge=1)


class EscalationPolicy(_Model):
    working_hours: WorkingHours
    policies: dict[Literal["urgent", "same_day", "routine"], UrgencyPolicy]

    def for_urgency(self, urgency: str) -> UrgencyPolicy:
        return self.policies.get(urgency, UrgencyPolicy(page="never"))  # type: ignore[call-overload]


def load_policy(path: Path) -> EscalationPolicy:
    try:
        policy = EscalationPolicy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise EscalationError(f"{path.name}: {exc}") from None
    if "urgent" not in policy.policies or policy.policies["urgent"].page != "always":
        raise EscalationError(f"{path.name}: urgent alerts must page always (an urgent flag is never silent)")
    if "same_day" not in policy.policies or policy.policies["same_day"].page != "always":
        raise EscalationError(
            f"{path.name}: same_day alerts must page always (same day means within 24 hours, every day; "
            "out of hours the on-call rota is paged)"
        )
    return policy


def in_working_hours(policy: EscalationPolicy, now_utc: datetime, tz: str) -> bool:
    local = now_utc.astimezone(ZoneInfo(tz))
    hours = policy.working_hours
    return DAYS[local.weekday()] in hours.days and hours.start <= local.time() < hours.end


@dataclass(frozen=True)
class PageDecision:
    page_now: bool
    next_escalation_at: datetime | None


def decide(policy: EscalationPolicy, urgency: str, now_utc: datetime, team_tz: str) -> PageDecision:
    """Whether an alert of this urgency pages now, and when it escalates if nobody acknowledges."""
    rule = policy.for_urgency(urgency)
    if rule.page == "never":
        return PageDecision(False, None)
    if rule.page == "working_hours" and not in_working_hours(policy, now_utc, team_tz):
        # Outside working hours a same-day alert waits on the dashboard and pages when the day starts.
        return PageDecision(False, next_working_start(policy, now_utc, team_tz))
    after = rule.escalate_after_minutes
    return PageDecision(True, now_utc + timedelta(minutes=after) if after else None)


def next_working_start(policy: EscalationPolicy, now_utc: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    local = now_utc.astimezone(zone)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        start = datetime.combine(day, policy.working_hours.start, tzinfo=zone)
        if DAYS[day.weekday()] in policy.working_hours.days and start > local:
            return start.astimezone(now_utc.tzinfo)
    return now_utc + timedelta(days=1)


def page_text(urgency: str, ref: str, dashboard_url: str) -> str:
    """No PHI: never a name, an MRN or a symptom."""
    label = {"urgent": "URGENT", "same_day": "Same-day", "routine": "Routine"}.get(urgency, urgency)
    return f"pro-service: {label} alert {ref}. Open {dashboard_url} . Reply ACK {ref} to acknowledge."
