"""Materialise due check-ins from schedules. Beat only ticks; the schedule rows say what is due.

Each due occurrence becomes a `check_ins` row keyed by (schedule_id, scheduled_for), inserted with
ON CONFLICT DO NOTHING: two beats, a restart or a crash never create it twice. Missed occurrences are
skipped, not caught up (only the latest one inside CATCH_UP_WINDOW_MINUTES counts).

A tick costs what is due, not how many schedules exist: `schedules.next_due_at` is the instant a schedule
must next be looked at (NULL: on the next tick), and a tick selects only `next_due_at IS NULL OR
next_due_at <= now`. Once a schedule's due occurrence is settled (inserted, already there, or nothing
due), next_due_at moves to its next occurrence. An occurrence blocked only by the patient's open check-in
(one open per patient) is looked at again BLOCKED_RETRY later, while it is still inside the window.
Whatever changes what a schedule produces (rule, dates, instrument, active, the patient's time zone)
resets next_due_at to NULL. A tick takes at most MATERIALISE_BATCH schedules, longest-waiting first,
and none once its time budget is spent (sweeps.tick): they are still due on the next tick.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pro_service.models import CheckIn, CheckInStatus, Patient, PatientStatus, Schedule
from pro_service.runtime import Runtime
from pro_service.scheduling import ScheduleError, latest_due, next_occurrence, send_time
from pro_service.services.check_ins import quiet_hours

log = logging.getLogger(__name__)

# next_due_at of a schedule with no occurrence left (COUNT or UNTIL used up, end date passed, nothing in
# the ten years next_occurrence looks ahead): later than any tick, so it is never selected again. Editing
# the schedule resets next_due_at to NULL and brings it back.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
# Rows per multi-row INSERT (and per look-up of the rows it skipped): ~10 parameters a row stays well
# inside PostgreSQL's 65,535 and SQLite's 32,766 bound parameters per statement.
INSERT_BATCH = 1000
# Schedules looked at per tick (~1 ms each: rule expansion and the insert); the rest wait for the next tick.
MATERIALISE_BATCH = 5000
# An occurrence blocked by the patient's open check-in is tried again this much later (while in the window).
BLOCKED_RETRY = timedelta(minutes=1)


def materialise_due(session: Session, rt: Runtime, now: datetime, limit: int = MATERIALISE_BATCH) -> int:
    """Insert the check-ins due now, at most `limit` schedules a call (the longest-waiting first, so a
    fan-out of 100,000 spreads over ticks instead of holding one tick for minutes); returns how many were
    created. What is left is due on the next tick, well inside the catch-up window."""
    window = timedelta(minutes=rt.settings.CATCH_UP_WINDOW_MINUTES)
    quiet = quiet_hours(rt)
    rows = session.execute(
        select(
            Schedule.id,
            Schedule.patient_id,
            Schedule.instrument_code,
            Schedule.rrule,
            Schedule.start_date,
            Schedule.end_date,
            Patient.timezone,
            Patient.ruleset_version,
        )
        .join(Patient, Patient.id == Schedule.patient_id)
        .where(
            Schedule.active.is_(True),
            or_(Schedule.next_due_at.is_(None), Schedule.next_due_at <= now),
            Patient.status == PatientStatus.ACTIVE,
            Patient.opted_out_at.is_(None),
            Patient.phone_problem.is_(None),
        )
        .order_by(Schedule.next_due_at.asc().nulls_first(), Schedule.id)
        .limit(limit)
        # Locked until this tick commits: an edit (which resets next_due_at) waits for it instead of being
        # overwritten with a value worked out from the old rule; a concurrent tick takes other schedules.
        .with_for_update(of=Schedule, skip_locked=True)
    ).all()
    if not rows:
        return 0
    values: list[dict[str, Any]] = []
    # schedule id -> its next_due_at once this tick has settled its due occurrence
    upcoming: dict[int, datetime] = {}
    for schedule_id, patient_id, instrument_code, rule, start, end, tz, ruleset_version in rows:
        try:
            due = latest_due(rule, tz, start, end, now, window)
            following = next_occurrence(rule, tz, start, end, now)
        except ScheduleError:
            # next_due_at unchanged: looked at (and logged) again on the next tick.
            log.warning("schedule cannot be expanded", extra={"schedule_id": schedule_id})
            continue
        upcoming[schedule_id] = following or NEVER
        if due is None:
            continue
        # The questionnaire version the patient's ruleset is written for (a patient stays on v1 until moved).
        instrument = rt.instrument_for(ruleset_version, instrument_code)
        if instrument is None:
            # Skipped like any missed occurrence; the next one is looked at when it is due.
            log.warning(
                "schedule names an unknown instrument",
                extra={"schedule_id": schedule_id, "instrument_code": instrument_code},
            )
            continue
        send_after = send_time(due, tz, quiet)
        values.append(
            {
                "patient_id": patient_id,
                "schedule_id": schedule_id,
                "instrument_code": instrument.code,
                "instrument_version": instrument.version,
                "status": CheckInStatus.PENDING.value,
                "scheduled_for": due,
                "send_after": send_after,
                "next_deadline_at": send_after,
                "misses_on_current": 0,
                "created_at": now,
            }
        )
    created, blocked = _insert(session, values, now - window)
    for schedule_id in blocked:
        # Looked at again shortly, behind the schedules waiting longer: blocked ones never starve a batch.
        upcoming[schedule_id] = min(now + BLOCKED_RETRY, upcoming[schedule_id])
    if upcoming:
        # ORM bulk UPDATE by primary key (one executemany), in id order like the inserts.
        session.execute(update(Schedule), [{"id": k, "next_due_at": v} for k, v in sorted(upcoming.items())])
    return created


def _insert(session: Session, values: list[dict[str, Any]], earliest: datetime) -> tuple[int, set[int]]:
    """Insert the check-in rows, INSERT_BATCH to a statement. Returns how many were created and the ids of
    the schedules whose row was blocked by the patient's open check-in (not by being there already)."""
    if not values:
        return 0, set()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created: set[tuple[int, datetime]] = set()
    # A conflict (already materialised, or the patient has a check-in open) skips that row only.
    for i in range(0, len(values), INSERT_BATCH):
        result = session.execute(
            insert(CheckIn)
            .values(values[i : i + INSERT_BATCH])
            .on_conflict_do_nothing()
            .returning(CheckIn.schedule_id, CheckIn.scheduled_for)
        )
        created.update((s, d) for s, d in result.tuples() if s is not None and d is not None)
    skipped = [v for v in values if (v["schedule_id"], v["scheduled_for"]) not in created]
    existing: set[tuple[int, datetime]] = set()
    for i in range(0, len(skipped), INSERT_BATCH):
        ids = [v["schedule_id"] for v in skipped[i : i + INSERT_BATCH]]
        # Every due occurrence is inside the window, so this bounds the look-up to this tick's rows.
        found = session.execute(
            select(CheckIn.schedule_id, CheckIn.scheduled_for).where(
                CheckIn.schedule_id.in_(ids), CheckIn.scheduled_for > earliest
            )
        ).tuples()
        existing.update((s, d) for s, d in found if s is not None and d is not None)
    blocked = {v["schedule_id"] for v in skipped if (v["schedule_id"], v["scheduled_for"]) not in existing}
    return len(created), blocked
