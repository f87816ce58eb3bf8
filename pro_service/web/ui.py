"""Words for the screen: urgency, categories, answers, ages and local times (Jinja filters and globals).

Everything a nurse reads is said in words; colour only repeats it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g
from markupsafe import Markup

from pro_service.services.alert_lifecycle import OUTCOMES

URGENCY_LABELS = {"urgent": "Urgent", "same_day": "Same day", "routine": "Routine"}
URGENCY_HINTS = {
    "urgent": "Act now: call the patient",
    "same_day": "Contact the patient today",
    "routine": "Review at the next routine contact",
}
URGENCY_ORDER = ("urgent", "same_day", "routine")
CATEGORY_LABELS = {
    "spinal_cord_compression": "Possible spinal cord compression",
    "pathologic_fracture": "Possible pathological fracture",
    "hypercalcemia": "Possible high calcium (hypercalcaemia)",
    "spinal_metastasis_pain": "Back or neck pain with red flags",
    "new_bone_pain": "New bone pain",
    "severe_pain": "Severe pain",
    "worsening_pain": "Pain getting worse",
    "non_response": "Not answering check-ins",
    "patient_message": "Message from the patient",
    "callback_request": "Patient asked for a call back",
    "altered_consciousness": "Confusion or drowsiness",
    "breathing_chest_pain": "Breathlessness or chest pain",
    "self_harm": "Thoughts of self-harm",
    "stopped_monitoring": "Stopped monitoring",
    "possible_red_flag": "Possible red flag (wording not recognised)",
}
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
}
CHOICE_LABELS = {
    "pain_site": {1: "back or neck", 2: "ribs or chest", 3: "hip or pelvis", 4: "arm or leg", 5: "elsewhere"},
    "calcium_sx": {
        0: "none",
        1: "very tired or weak",
        2: "nausea or vomiting",
        3: "poor appetite",
        4: "very thirsty or peeing a lot",
        5: "confused or drowsy",
        6: "constipated",
    },
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
EVENT_LABELS = {
    "opened": "Alert opened",
    "evidence_added": "More evidence added",
    "urgency_raised": "Urgency raised",
    "paged": "On-call paged",
    "no_on_call": "Nobody on call: care team paged",
    "safety_message": "Safety message sent to the patient",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "note": "Note",
    "escalated": "Escalated by staff",
}


def urgency_label(value: str) -> str:
    return URGENCY_LABELS.get(value, value.replace("_", " ").capitalize())


def category_label(value: str) -> str:
    return CATEGORY_LABELS.get(value, value.replace("_", " ").capitalize())


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


def install(app: Flask) -> None:
    app.jinja_env.filters.update(
        urgency_label=urgency_label,
        category_label=category_label,
        status_label=status_label,
        item_label=item_label,
        answer_text=answer_text,
        age=age,
        local_time=local_time,
        local_date=local_date,
        iso=iso,
        phone=phone_display,
        urgency_badge=urgency_badge,
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
            "simulator_enabled": rt.settings.SMS_BACKEND == "outbox",
            "idle_seconds": float(current_app.config.get("SESSION_IDLE_MINUTES", 15)) * 60,
            "now": rt.now(),
        }


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())
