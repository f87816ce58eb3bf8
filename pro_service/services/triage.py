"""Findings → alerts: open, merge or raise (one open alert per patient and category).

DB-facing: it uses pro_service's models and outbound queue. The clinical judgement is in `alerts.rules`
(pure); this module only records it, and hands new or more urgent alerts to `services.notify`.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.rules import (
    RECENT_CHECK_INS,
    AnswerView,
    Finding,
    History,
    Urgency,
    callback_request,
    evaluate,
    evaluate_message,
)
from alerts.ruleset import Ruleset
from pro_service.db import ROW_LOCK
from pro_service.models import (
    Alert,
    AlertEventKind,
    AlertStatus,
    Answer,
    AnswerStatus,
    CheckIn,
    CheckInStatus,
    Message,
    Patient,
)
from pro_service.runtime import Runtime
from pro_service.services.alert_events import record_event
from pro_service.services.clinical_profile import baseline_for
from pro_service.services.labs import lab_views

_REF_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"  # no look-alikes (0/O, 1/I/L, 5/S, 8/B, 2/Z)


def new_ref() -> str:
    return "".join(secrets.choice(_REF_ALPHABET) for _ in range(6))


def _evidence(finding: Finding, **extra: Any) -> list[dict[str, Any]]:
    out = []
    for ev in finding.evidence:
        item = asdict(ev)
        item.update(rule_id=finding.rule_id, ruleset=finding.ruleset, ruleset_version=finding.ruleset_version)
        item.update(extra)
        out.append(item)
    return out


def result_id_of(value: object) -> int | None:
    """The lab result an evidence value is (alerts.rules.lab_evidence_value), if it is one."""
    result = value.get("result_id") if isinstance(value, dict) else None
    return result if isinstance(result, int) else None


def _result_id(ev: dict[str, Any]) -> int | None:
    return result_id_of(ev.get("value"))


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (
        ev.get("rule_id"),
        ev.get("item_code"),
        ev.get("check_in_id"),
        ev.get("message_id"),
        _result_id(ev),
    )


def _source(ev: dict[str, Any]) -> tuple[Any, ...]:
    """What a piece of evidence came from: one answer, one message, or a check-in as a whole.

    The reader's finding on a reply and the rules' finding on the same answer share a source, so they
    notify once between them.
    """
    if ev.get("check_in_id") is not None and ev.get("item_code") is not None:
        return ("answer", ev["check_in_id"], ev["item_code"])
    if ev.get("check_in_id") is None and ev.get("message_id") is None and _result_id(ev) is not None:
        return ("lab", _result_id(ev))  # a calcium of 3.4 after a resolved 3.2 is new evidence
    if ev.get("message_id") is not None:
        return ("message", ev["message_id"])
    return ("check_in", ev.get("check_in_id"), ev.get("rule_id"))


_RESOLVED_LOOKBACK = 20  # resolved episodes of a category whose evidence is never raised again


@dataclass(frozen=True)
class Raised:
    alert: Alert
    notified: bool  # this call opened the alert, raised its urgency or notified again (page, safety text)


def upsert_alert(
    session: Session,
    rt: Runtime,
    patient_id: int,
    finding: Finding,
    *,
    check_in_id: int | None = None,
    message_id: int | None = None,
) -> Alert | None:
    """`raise_finding`, for callers that only need the alert (None: nothing new to record)."""
    raised = raise_finding(session, rt, patient_id, finding, check_in_id=check_in_id, message_id=message_id)
    return raised.alert if raised is not None else None


def _resolved(
    session: Session, patient_id: int, category: str
) -> tuple[dict[tuple[Any, ...], int], int | None]:
    """Evidence sources already in resolved alerts of the category, each with the highest urgency it was
    resolved at, and the latest resolved alert (a new episode links to it)."""
    resolved = session.scalars(
        select(Alert)
        .where(
            Alert.patient_id == patient_id,
            Alert.category == category,
            Alert.status == AlertStatus.RESOLVED,
        )
        .order_by(Alert.id.desc())
        .limit(_RESOLVED_LOOKBACK)
    ).all()
    seen: dict[tuple[Any, ...], int] = {}
    for old in resolved:
        for ev in old.evidence:
            source = _source(ev)
            seen[source] = max(seen.get(source, 0), old.urgency_rank)
    return seen, resolved[0].id if resolved else None


def raise_finding(
    session: Session,
    rt: Runtime,
    patient_id: int,
    finding: Finding,
    *,
    check_in_id: int | None = None,
    message_id: int | None = None,
    tell_patient: bool = True,
) -> Raised | None:
    """Record a finding as an episode: a new alert, or new evidence on the open one.

    Urgency only ever rises. New urgent evidence from a new source (another answer or message) notifies
    again, reopening an acknowledged alert: an acknowledgement covers only what was seen. Evidence already
    resolved at this urgency or above never raises again, whether or not another episode is open (None
    when nothing is new); new evidence after a resolution opens a new alert linked to the resolved one.
    """
    from pro_service.services import notify

    now = rt.now()
    rank = finding.urgency.rank  # stored beside the urgency so the queue can sort on it
    seen, previous_id = _resolved(session, patient_id, finding.category)
    evidence = [
        ev
        for ev in _evidence(finding, check_in_id=check_in_id, message_id=message_id)
        if seen.get(_source(ev), 0) < rank
    ]
    if not evidence:
        return None
    alert = session.scalar(
        select(Alert)
        .where(
            Alert.patient_id == patient_id,
            Alert.category == finding.category,
            Alert.status != AlertStatus.RESOLVED,
        )
        .with_for_update(**ROW_LOCK)
    )
    if alert is None:
        alert = Alert(
            ref=new_ref(),
            patient_id=patient_id,
            check_in_id=check_in_id,
            category=finding.category,
            urgency=finding.urgency.value,
            urgency_rank=rank,
            status=AlertStatus.OPEN,
            ruleset=finding.ruleset,
            ruleset_version=finding.ruleset_version,
            rule_ids=[finding.rule_id, *finding.other_rule_ids],
            evidence=evidence,
            opened_at=now,
            updated_at=now,
            notice=0,
            previous_alert_id=previous_id,
        )
        try:
            with session.begin_nested():
                session.add(alert)
                session.flush()
        except IntegrityError:
            # Another worker opened it a moment ago (the partial unique index): merge into theirs.
            return raise_finding(
                session,
                rt,
                patient_id,
                finding,
                check_in_id=check_in_id,
                message_id=message_id,
                tell_patient=tell_patient,
            )
        record_event(
            session,
            alert,
            AlertEventKind.OPENED,
            now,
            {
                "urgency": finding.urgency.value,
                "rule_id": finding.rule_id,
                "other_rule_ids": list(finding.other_rule_ids),
                "previous_alert_id": alert.previous_alert_id,
            },
        )
        notify.alert_raised(
            session, rt, alert, previous_rank=0, message_id=message_id, tell_patient=tell_patient
        )
        return Raised(alert, notified=True)

    known = {_key(ev) for ev in alert.evidence}
    known_sources = {_source(ev) for ev in alert.evidence}
    fresh = [ev for ev in evidence if _key(ev) not in known]
    new_sources = {_source(ev) for ev in fresh} - known_sources
    if fresh:
        alert.evidence = [*alert.evidence, *fresh]
        for rule_id in (finding.rule_id, *finding.other_rule_ids):
            if rule_id not in alert.rule_ids:
                alert.rule_ids = [*alert.rule_ids, rule_id]
        record_event(
            session,
            alert,
            AlertEventKind.EVIDENCE_ADDED,
            now,
            {"rule_id": finding.rule_id, "count": len(fresh), "new_sources": len(new_sources)},
        )
    previous = alert.urgency_rank
    if rank > alert.urgency_rank:
        record_event(
            session,
            alert,
            AlertEventKind.URGENCY_RAISED,
            now,
            {"from": alert.urgency, "to": finding.urgency.value},
        )
        alert.urgency, alert.urgency_rank = finding.urgency.value, rank
        alert.ruleset, alert.ruleset_version = finding.ruleset, finding.ruleset_version
    renotify = finding.urgency is Urgency.URGENT and bool(new_sources) and rank <= previous
    if rank > previous or renotify:
        if alert.status == AlertStatus.ACKNOWLEDGED:
            # The acknowledgement covered what was seen then; this is new, so somebody must look again.
            alert.status = AlertStatus.OPEN
            alert.escalation_level = 0
            record_event(session, alert, AlertEventKind.NEW_SINCE_ACKNOWLEDGED, now)
        if renotify:
            alert.notice += 1
            alert.escalation_level = 0
        notify.alert_raised(
            session,
            rt,
            alert,
            previous_rank=previous,
            renotify=renotify,
            message_id=message_id,
            tell_patient=tell_patient,
        )
    alert.updated_at = now
    return Raised(alert, notified=rank > previous or renotify)


def _views(answers: list[Answer]) -> dict[str, AnswerView]:
    return {
        a.item_code: AnswerView(a.item_code, a.status.value, a.value, a.raw_text, a.question) for a in answers
    }


def history_for(session: Session, check_in: CheckIn) -> History:
    previous = session.scalars(
        select(CheckIn)
        .where(
            CheckIn.patient_id == check_in.patient_id,
            CheckIn.id < check_in.id,
            CheckIn.status == CheckInStatus.COMPLETED,
        )
        .order_by(CheckIn.id.desc())
        .limit(RECENT_CHECK_INS)
    ).all()
    recent_values: dict[str, list[int]] = {}
    for past in previous:  # newest first
        for answer in past.answers:
            value = answer.value
            if (
                answer.status == AnswerStatus.ANSWERED
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                recent_values.setdefault(answer.item_code, []).append(value)
    # The previous completed check-in's pain only if that check-in answered it (not an older one's).
    previous_pain = None
    if previous:
        pain = next((a for a in previous[0].answers if a.item_code == "pain_worst"), None)
        if pain is not None and pain.status == AnswerStatus.ANSWERED and isinstance(pain.value, int):
            previous_pain = pain.value
    # Scheduled check-ins in a row, newest first up to this one, that expired with nothing answered.
    recent = session.scalars(
        select(CheckIn)
        .where(
            CheckIn.patient_id == check_in.patient_id,
            CheckIn.id <= check_in.id,
            CheckIn.schedule_id.is_not(None),
            CheckIn.status.in_((CheckInStatus.COMPLETED, CheckInStatus.EXPIRED)),
        )
        .order_by(CheckIn.id.desc())
        .limit(10)
    ).all()
    streak = 0
    for past in recent:
        unanswered = past.status == CheckInStatus.EXPIRED and not any(
            a.status in (AnswerStatus.ANSWERED, AnswerStatus.UNREADABLE) for a in past.answers
        )
        if not unanswered:
            break
        streak += 1
    return History(
        previous_pain_worst=previous_pain,
        consecutive_expired_unanswered=streak,
        recent_values={code: tuple(values) for code, values in recent_values.items()},
    )


def ruleset_for_check_in(session: Session, rt: Runtime, check_in: CheckIn) -> Ruleset:
    pinned = session.scalar(select(Patient.ruleset_version).where(Patient.id == check_in.patient_id))
    return rt.ruleset_for_check_in(pinned, check_in.instrument_code, check_in.instrument_version)


def ruleset_for_patient(session: Session, rt: Runtime, patient_id: int) -> Ruleset:
    return rt.ruleset_for(session.scalar(select(Patient.ruleset_version).where(Patient.id == patient_id)))


def scoring_inputs(
    session: Session, check_in: CheckIn, ruleset: Ruleset, *, now: datetime
) -> tuple[dict[str, AnswerView], History]:
    """What the rules read for one check-in at `now`: its stored answers, and the patient's history,
    baseline and lab results as the database holds them (score_check_in and the rules backtest share it)."""
    lookback = now - timedelta(days=ruleset.lab_lookback_days)
    history = replace(
        history_for(session, check_in),
        labs=tuple(lab_views(session, check_in.patient_id, since=lookback)),
        now=now,
        baseline=baseline_for(session, check_in.patient_id),
    )
    return _views(list(check_in.answers)), history


def score_check_in(session: Session, rt: Runtime, check_in_id: int) -> list[Alert]:
    """Evaluate a check-in's answers (all rules once closed, early ones while open) and record alerts."""
    check_in = session.get(CheckIn, check_in_id)
    if check_in is None:
        return []
    session.scalar(select(Patient.id).where(Patient.id == check_in.patient_id).with_for_update(**ROW_LOCK))
    session.refresh(check_in)
    complete = not check_in.status.is_open
    ruleset = ruleset_for_check_in(session, rt, check_in)
    answers, history = scoring_inputs(session, check_in, ruleset, now=rt.now())
    findings = evaluate(answers, history, ruleset, complete=complete)
    alerts = [
        alert
        for f in findings
        if (alert := upsert_alert(session, rt, check_in.patient_id, f, check_in_id=check_in.id)) is not None
    ]
    if complete and check_in.scored_at is None:
        check_in.scored_at = rt.now()
    return alerts


def record_patient_message(
    session: Session, rt: Runtime, patient: Patient, message: Message, *, source: str
) -> Alert | None:
    text = message.body or ""
    if not text.strip() and message.num_media:
        text = f"[{message.num_media} picture(s) or file(s), no text]"
    finding = evaluate_message(text, ruleset_for_patient(session, rt, patient.id), source=source)
    return upsert_alert(session, rt, patient.id, finding, message_id=message.id)


def record_callback_request(
    session: Session, rt: Runtime, patient: Patient, message: Message
) -> Alert | None:
    return upsert_alert(
        session,
        rt,
        patient.id,
        callback_request(ruleset_for_patient(session, rt, patient.id), message.body or ""),
        message_id=message.id,
    )


def closed_unscored(session: Session, before: datetime, limit: int = 200) -> list[int]:
    """Closed check-ins never scored (a lost score task): the sweep re-publishes them."""
    return list(
        session.scalars(
            select(CheckIn.id)
            .where(
                CheckIn.status.in_((CheckInStatus.COMPLETED, CheckInStatus.EXPIRED)),
                CheckIn.scored_at.is_(None),
                CheckIn.closed_at < before,
            )
            .limit(limit)
        )
    )
