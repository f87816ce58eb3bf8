"""Disclosure audit: which patients a read showed to whom, through which view (issue 15).

A record page writes its own audit row each time (`view_patient`, `view_alert`, ...). A list, a search, a
poll or an export shows many patients at once and, until now, wrote one row with a count: nobody could
answer "who saw this patient's data last month" for a patient seen in the queue. `record` writes one
`seen_<view>` row per patient shown, in the existing `audit_log`, with the patient as its subject and in
`patient_id`: so "who saw patient X" stays one query on the existing `(patient_id, at)` index, the audit
browser's patient filter finds list disclosures beside record views, and no migration is needed.

Volume: the queue page polls every 1-2 s and a nurse's queue shows up to a few hundred patients, so a row
per patient per poll would be ~100 rows a second per open screen. A patient's disclosure to the same actor
through the same view is written at most once per window (`AUDIT_DISCLOSURE_WINDOW_MINUTES`, 15 by default:
the staff idle timeout, so a watch screen left open writes about one row per patient shown per 15
minutes). The row records the first sight in the window; "when" is therefore known to the window's width,
which is what an access review needs (who, which patient, which screen, which quarter hour), and each row
says the window it stands for. Cost per call: one SELECT over the index for the patients shown
(`patient_id IN (...) AND at >= now - window`, narrowed by actor and action) and at most one bulk INSERT of
the patients not yet recorded; nothing when a poll answers 204 (nothing shown). Two concurrent requests of
the same actor may both write a patient once: a duplicate row, never a missing one.

Only the patients actually shown count (the page of a paginated list, not the whole match), and a screen
that showed no patient writes nothing. The caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from pro_service.models import AuditLog

PREFIX = "seen_"
# Rows that never showed the patient's data: the refusal of a record outside the nurse's care teams.
NOT_SEEN = frozenset({"scope_refused"})
_CHUNK = 1000  # patients per IN list (SQLite's default bound on parameters is far above)
_MAX_VIEW = 64 - len(PREFIX)


def action_for(view: str) -> str:
    """The audit action of a disclosure through `view` ("queue" → "seen_queue")."""
    if not view or len(view) > _MAX_VIEW or not view.replace("_", "").isalnum() or not view.islower():
        raise ValueError(f"a view name is lower-case letters, digits and _, at most {_MAX_VIEW}: {view!r}")
    return PREFIX + view


def to_record(shown: Iterable[int | None], recent: Collection[int]) -> list[int]:
    """The patients to write a row for: each shown patient once, without those already recorded in the
    window (pure; sorted, so the rows come out in a stable order)."""
    return sorted({int(p) for p in shown if p is not None} - set(recent))


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def record(
    session: Session,
    *,
    actor: str,
    view: str,
    patient_ids: Iterable[int | None],
    now: datetime,
    window: timedelta,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> list[int]:
    """Write a `seen_<view>` row for each patient in `patient_ids` not already written for this actor and
    view since `now - window`; return the patients written. The caller commits."""
    action = action_for(view)
    shown = to_record(patient_ids, ())
    if not shown:
        return []
    recent: set[int] = set()
    for chunk in _chunks(shown):
        recent.update(
            session.scalars(
                select(AuditLog.patient_id).where(
                    AuditLog.patient_id.in_(chunk),
                    AuditLog.at >= now - window,
                    AuditLog.actor == actor,
                    AuditLog.action == action,
                )
            )
        )
    new = to_record(shown, recent)
    if new:
        minutes = round(window.total_seconds() / 60, 2)
        extra = {"window_minutes": int(minutes) if minutes == int(minutes) else minutes, **(detail or {})}
        session.execute(
            insert(AuditLog),
            [
                {
                    "at": now,
                    "actor": actor,
                    "action": action,
                    "subject_type": "patient",
                    "subject_id": str(pid),
                    "patient_id": pid,
                    "detail": extra,
                    "ip": ip,
                }
                for pid in new
            ],
        )
    return new


def record_streamed(
    session: Session,
    *,
    actor: str,
    view: str,
    patient_ids: Iterable[int | None],
    now: datetime,
    window: timedelta,
    ip: str | None = None,
) -> list[int]:
    """`record` for a streamed response (a CSV export): the patients are known only once the body has been
    sent, after the request's unit of work ended, so this use case commits its own rows."""
    new = record(session, actor=actor, view=view, patient_ids=patient_ids, now=now, window=window, ip=ip)
    session.commit()
    return new


_PATIENT_PATH = re.compile(r"/patients/(\d{1,10})(?:/|$)")


def replayed_patients(path: str, response: object) -> set[int]:
    """The patients an `Idempotency-Key` replay shows again (pure): the one in the path, the response's
    `patient_id`, and the `id` of a patient the replayed enrolment answered with."""
    found: set[int] = set()
    match = _PATIENT_PATH.search(path)
    if match:
        found.add(int(match[1]))
    if isinstance(response, dict):
        keys = ("patient_id", "id") if path.rstrip("/").endswith("/patients") else ("patient_id",)
        found.update(v for k in keys if isinstance(v := response.get(k), int) and not isinstance(v, bool))
    return found


# ------------------------------------------------------------------------------------ who saw a patient
@dataclass
class Sighting:
    """What one actor saw of one patient in the period: each action with its count, first and last time."""

    actor: str
    patient_id: int
    first: datetime
    last: datetime
    count: int = 0
    actions: dict[str, int] = field(default_factory=dict)


def who_saw(
    session: Session,
    patient_ids: Sequence[int],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[Sighting]:
    """Every actor who saw any of `patient_ids` in [since, until): record views, actions on the record and
    list disclosures alike (not a refused look), most recent first. One grouped query."""
    if not patient_ids:
        return []
    stmt = (
        select(
            AuditLog.actor,
            AuditLog.patient_id,
            AuditLog.action,
            func.count(),
            func.min(AuditLog.at),
            func.max(AuditLog.at),
        )
        .where(AuditLog.patient_id.in_(list(patient_ids)[:_CHUNK]), AuditLog.action.not_in(NOT_SEEN))
        .group_by(AuditLog.actor, AuditLog.patient_id, AuditLog.action)
        .order_by(func.max(AuditLog.at).desc())
        .limit(limit * 8)
    )
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.at < until)
    return summarise(session.execute(stmt).tuples())[:limit]


def summarise(rows: Iterable[tuple[str, int | None, str, int, datetime, datetime]]) -> list[Sighting]:
    """(actor, patient, action, count, first, last) groups → one Sighting per actor and patient, the most
    recent first (pure)."""
    found: dict[tuple[str, int], Sighting] = {}
    for actor, patient_id, action, count, first, last in rows:
        if patient_id is None:
            continue
        key = (actor, int(patient_id))
        seen = found.get(key)
        if seen is None:
            seen = found[key] = Sighting(actor, int(patient_id), first, last)
        seen.first, seen.last = min(seen.first, first), max(seen.last, last)
        seen.count += int(count)
        seen.actions[action] = seen.actions.get(action, 0) + int(count)
    return sorted(found.values(), key=lambda s: (s.last, s.actor), reverse=True)
