"""Words for the screen: urgency, categories, answers, ages and local times (Jinja filters and globals).

Everything a nurse reads is said in words; colour only repeats it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from alerts.labs import (
    ADJUSTED_CALCIUM,
    ALBUMIN,
    ALKALINE_PHOSPHATASE,
    CALCIUM_CODES,
    CREATININE,
    CREATININE_MOLAR,
    IONISED_CALCIUM,
    LAB_NAMES,
    TOTAL_CALCIUM,
    TOTAL_CALCIUM_MASS,
)

# The alert and answer words live in pro_service.labels (the FHIR export needs them too); re-exported here.
from pro_service.labels import (  # noqa: F401
    ALERT_EVENT_LABELS,
    CATEGORY_LABELS,
    CHOICE_LABELS,
    URGENCY_LABELS,
    category_label,
    urgency_label,
)
from pro_service.services.alert_lifecycle import OUTCOMES

URGENCY_HINTS = {
    "urgent": "Act now: call the patient",
    "same_day": "Contact the patient today",
    "routine": "Review at the next routine contact",
}
URGENCY_ORDER = ("urgent", "same_day", "routine")
STATUS_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}
ITEM_LABELS = {
    "pain_new": "New pain in bones, back or neck",
    "pain_worst": "Worst pain, 0–10",
    "pain_site": "Where the pain is",
    "pain_at_rest": "Pain as bad or worse at rest",
    "sudden_immobile": "Sudden pain, hard to move or bear weight",
    "neuro": "New weakness, numbness, tingling or trouble walking",
    "bladder_bowel": "New bladder or bowel problems",
    "calcium_sx": "Symptoms of high calcium",
    "anything_else": "Anything else",
    # questionnaire v2
    "weakness": "New weakness in arms or legs, legs giving way, trouble walking or standing",
    "numbness": "Numbness or tingling (none / as usual / new or worse)",
    "weight_bearing": "Cannot move or put weight on an arm, leg, hip or the back",
    "fall": "Fallen or unsteady since the last check-in",
    "pain_features": "What the pain is like",
}
MESSAGE_KIND_LABELS = {
    "reply": "Patient reply",
    "question": "Question",
    "reprompt": "Re-asked",
    "reminder": "Reminder",
    "acknowledgement": "Auto-reply",
    "safety": "Safety message",
    "help": "Help text",
    "opt_out": "Opt-out confirmation",
    "opt_in": "Opt-in confirmation",
    "closing": "Thank-you",
    "page": "Page to staff",
    "staff_reply": "Staff reply",
    "unknown_sender": "Unknown sender",
}
EVENT_LABELS = {kind.value: label for kind, label in ALERT_EVENT_LABELS.items()}


# Lab results in words: the test's name as a nurse says it, the unit as printed, the lab's status.
LAB_LABELS = {
    ADJUSTED_CALCIUM: "Adjusted calcium",
    TOTAL_CALCIUM: "Calcium (total)",
    TOTAL_CALCIUM_MASS: "Calcium (total)",
    IONISED_CALCIUM: "Ionised calcium",
    ALBUMIN: "Albumin",
    ALKALINE_PHOSPHATASE: "Alkaline phosphatase",
    CREATININE: "Creatinine",
    CREATININE_MOLAR: "Creatinine",
}
UNIT_LABELS = {"umol/L": "µmol/L", "ukat/L": "µkat/L"}
LAB_STATUS_LABELS = {
    "preliminary": "Preliminary",
    "final": "Final",
    "amended": "Amended",
    "corrected": "Corrected",
    "entered-in-error": "Withdrawn",
}
# The lab's own flag (HL7 table 0078 / FHIR v3 ObservationInterpretation), said in words.
INTERPRETATION_LABELS = {
    "H": "high",
    "L": "low",
    "HH": "critically high",
    "LL": "critically low",
    "HU": "very high",
    "LU": "very low",
    "A": "abnormal",
    "AA": "critically abnormal",
}
DERIVED_NOTE = "derived from total calcium and albumin"
_RANGE_DASH = re.compile(r"(?<=\d)\s*-\s*(?=\d)")


def status_label(value: Any) -> str:
    raw = getattr(value, "value", value)
    return STATUS_LABELS.get(raw, str(raw).replace("_", " ").capitalize())


def item_label(code: str | None) -> str:
    if code is None:
        return "History"
    return ITEM_LABELS.get(code, code.replace("_", " ").capitalize())


def answer_text(value: Any, item_code: str | None = None) -> str:
    """A parsed answer in words: Yes / No / 7 / "1 3 (back or neck, hip or pelvis)"."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        if not value:
            return "none"
        labels = CHOICE_LABELS.get(item_code or "", {})
        words = [labels.get(v, str(v)) if isinstance(v, int) else str(v) for v in value]
        return f"{' '.join(str(v) for v in value)} ({', '.join(words)})" if labels else ", ".join(words)
    if item_code == "pain_worst" and isinstance(value, int):
        return f"{value} of 10"
    return str(value)


def age(value: datetime | None, now: datetime | None = None) -> str:
    """'just now', '12 min', '3 h 5 min', '2 d 4 h'."""
    if value is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def local_time(value: datetime | None, tz: str | None = None, fmt: str = "%a %-d %b %H:%M") -> str:
    if value is None:
        return ""
    zone = ZoneInfo(tz or "UTC")
    local = value.astimezone(zone)
    return f"{local.strftime(fmt)} {local.strftime('%Z')}"


def local_date(value: date | datetime | None, tz: str | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(tz or "UTC")).date()
    return value.strftime("%a %-d %b %Y")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def lab_label(code: str | None) -> str:
    if not code:
        return "Lab result"
    return LAB_LABELS.get(code, LAB_NAMES.get(code, code).capitalize())


def unit_label(unit: str | None) -> str:
    return UNIT_LABELS.get(unit or "", unit or "")


def lab_number(value: float | int | None, unit: str | None = None) -> str:
    """Calcium in mmol/L to two decimals as labs print it (2.45); other units to one at most (35, 88.4)."""
    if value is None:
        return "—"
    if unit == "mmol/L":
        return f"{value:.2f}"
    return format(round(float(value), 1), "g")


def lab_amount(value: float | int | None, unit: str | None) -> str:
    """'3.20 mmol/L'; '—' without a value."""
    if value is None:
        return "—"
    return f"{lab_number(value, unit)} {unit_label(unit)}".strip()


def reference_text(reference: str | None, unit: str | None = None) -> str:
    """The lab's reference range with an en dash ('2.2–2.6'); its unit is dropped when it is the unit the
    value is shown in, and kept when it is not (a calcium shown in mmol/L against '8.6–10.3 mg/dL')."""
    if not reference:
        return ""
    text = _RANGE_DASH.sub("–", reference.strip())
    if unit and text.endswith(" " + unit):
        text = text[: -len(unit) - 1].rstrip()
    for raw, label in UNIT_LABELS.items():
        text = text.replace(raw, label)
    return text


def lab_status_label(status: str | None) -> str:
    return LAB_STATUS_LABELS.get(status or "", (status or "").replace("-", " ").capitalize())


def interpretation_label(flag: str | None) -> str:
    return INTERPRETATION_LABELS.get((flag or "").upper(), "")


def _instant(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def sample_time(value: datetime | str | None, tz: str | None = None, now: datetime | None = None) -> str:
    """When a sample was taken, in the care team's time: '2 Dec 14:05 EST' ('2 Dec 2024 14:05 EST' when
    it is not this year)."""
    at = _instant(value)
    if at is None:
        return ""
    zone = ZoneInfo(tz or "UTC")
    local = at.astimezone(zone)
    this_year = (now or datetime.now(UTC)).astimezone(zone).year
    fmt = "%-d %b %H:%M" if local.year == this_year else "%-d %b %Y %H:%M"
    return f"{local.strftime(fmt)} {local.strftime('%Z')}"


def is_lab_result(value: Any) -> bool:
    """A lab result as alert evidence (alerts.rules.lab_evidence_value)."""
    return isinstance(value, Mapping) and "code" in value and "result_id" in value and "taken_at" in value


def is_lab_missing(value: Any) -> bool:
    """A 'no recent result' fact as alert evidence (alerts.rules, lab_missing)."""
    return isinstance(value, Mapping) and "lab_missing" in value


def lab_evidence_text(value: Mapping[str, Any], tz: str | None = None, now: datetime | None = None) -> str:
    """'Adjusted calcium 3.20 mmol/L (ref 2.2–2.6), sample 2 Dec 14:05 EST'; a derived value says so, a
    status other than final is named, an ALP rise says which result is which and by how much."""
    unit = value.get("unit")
    amount = lab_amount(value.get("value"), unit) if value.get("value") is not None else "withdrawn"
    text = f"{lab_label(value.get('code'))} {amount}"
    reference = reference_text(value.get("reference_range"), unit)
    if reference:
        text += f" (ref {reference})"
    when = sample_time(value.get("taken_at"), tz, now)
    if when:
        text += f", sample {when}"
    notes = []
    if value.get("derived"):
        notes.append(DERIVED_NOTE)
    status = value.get("status")
    if status and status != "final":
        notes.append(lab_status_label(status).lower())
    if notes:
        text += f" ({'; '.join(notes)})"
    role = value.get("role")
    if role == "lowest_earlier":
        text = f"Lowest earlier result: {text}"
    elif role == "latest":
        text = f"Latest result: {text}"
        fraction = value.get("rise_fraction")
        if isinstance(fraction, int | float):
            text += f", {round(fraction * 100)}% above the lowest earlier result"
    return text


def lab_missing_text(value: Mapping[str, Any], tz: str | None = None, now: datetime | None = None) -> str:
    """'No calcium result in the last 14 days (last: Adjusted calcium 2.45 mmol/L, sample 2 Oct 09:10 EDT)';
    without an earlier result in what the rules read, it says so."""
    codes = [str(c) for c in value.get("codes") or []]
    if codes and all(code in CALCIUM_CODES for code in codes):
        what = "calcium"
    else:
        names = [str(n) for n in value.get("lab_missing") or []] or [lab_label(c).lower() for c in codes]
        what = " or ".join(dict.fromkeys(names)) or "lab"
    days = value.get("within_days")
    text = f"No {what} result in the last {days} days" if days else f"No recent {what} result"
    last = value.get("last_result")
    if is_lab_result(last):
        assert isinstance(last, Mapping)
        return f"{text} (last: {lab_evidence_text(last, tz, now)})"
    return f"{text} (no earlier result found)"


def phone_display(value: str | None) -> str:
    if not value:
        return ""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def urgency_badge(value: str) -> Markup:
    """The urgency as a word with a shape: never colour alone."""
    icons = {"urgent": "▲", "same_day": "●", "routine": "○"}
    label = urgency_label(value)
    return Markup('<span class="badge badge-{u}"><span aria-hidden="true">{i}</span> {label}</span>').format(
        u=value if value in URGENCY_LABELS else "other", i=icons.get(value, "•"), label=label
    )


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'just now' or '12 min ago' (never 'just now ago')."""
    text = age(value, now)
    return text if text in ("", "just now") else f"{text} ago"


@pass_context
def invalid(context: Context, field: str, hint: str | None = None) -> Markup:
    """Attributes marking a form field invalid when the page's `field_errors` name it (WCAG 3.3.1): the
    message below the field describes it, before the field's own `hint` (an element id), if any."""
    errors = context.get("field_errors") or {}
    if field in errors:
        described = f"{field}-error {hint}" if hint else f"{field}-error"
        return Markup(' aria-invalid="true" aria-describedby="{0}"').format(described)
    if hint:
        return Markup(' aria-describedby="{0}"').format(hint)
    return Markup("")


@pass_context
def field_error(context: Context, field: str) -> Markup:
    """The message under an invalid field (empty when the field is fine)."""
    message = (context.get("field_errors") or {}).get(field)
    if not message:
        return Markup("")
    return Markup('<p class="field-error" id="{0}-error">{1}</p>').format(field, message)


def install(app: Flask) -> None:
    app.jinja_env.filters.update(
        urgency_label=urgency_label,
        category_label=category_label,
        status_label=status_label,
        item_label=item_label,
        answer_text=answer_text,
        age=age,
        ago=ago,
        local_time=local_time,
        local_date=local_date,
        iso=iso,
        phone=phone_display,
        urgency_badge=urgency_badge,
        lab_label=lab_label,
        unit_label=unit_label,
        lab_number=lab_number,
        lab_amount=lab_amount,
        reference_text=reference_text,
        lab_status_label=lab_status_label,
        interpretation_label=interpretation_label,
        sample_time=sample_time,
        lab_evidence_text=lab_evidence_text,
        lab_missing_text=lab_missing_text,
    )
    from pro_service.services.admin import describe_rrule

    app.jinja_env.globals.update(
        describe_rrule=describe_rrule,
        OUTCOMES=OUTCOMES,
        URGENCY_LABELS=URGENCY_LABELS,
        URGENCY_HINTS=URGENCY_HINTS,
        URGENCY_ORDER=URGENCY_ORDER,
        MESSAGE_KIND_LABELS=MESSAGE_KIND_LABELS,
        EVENT_LABELS=EVENT_LABELS,
        DERIVED_NOTE=DERIVED_NOTE,
        is_lab_result=is_lab_result,
        is_lab_missing=is_lab_missing,
        invalid=invalid,
        field_error=field_error,
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def _context() -> dict[str, Any]:
        staff = g.get("staff")
        rt = current_app.extensions["pro"]
        return {
            "staff": staff,
            "is_admin": staff is not None and staff.role.value == "admin",
            # Only where the simulator would open for this person (admins; nurses on a demo setting).
            "simulator_enabled": rt.settings.SMS_BACKEND == "outbox"
            and staff is not None
            and (staff.role.value == "admin" or rt.settings.simulator_for_nurses),
            "idle_seconds": float(current_app.config.get("SESSION_IDLE_MINUTES", 15)) * 60,
            "now": rt.now(),
        }


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())
