"""Materialise due check-ins from schedules. Beat only ticks; the schedule rows say what is due.

Each due occurrence becomes a `check_ins` row keyed by (schedule_id, scheduled_for), inserted with
ON CONFLICT DO NOTHING: two beats, a restart or a crash never create it twice. Missed occurrences are
skipped, not caught up (only the latest one inside CATCH_UP_WINDOW_MINUTES counts).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pro_service.models import CheckIn, CheckInStatus, Patient, PatientStatus, Schedule
from pro_service.runtime import Runtime
from pro_service.scheduling import ScheduleError, latest_due, send_time
from pro_service.services.check_ins import quiet_hours

log = logging.getLogger(__name__)


def materialise_due(session: Session, rt: Runtime, now: datetime) -> int:
    window = timedelta(minutes=rt.settings.CATCH_UP_WINDOW_MINUTES)
    quiet = quiet_hours(rt)
    rows = session.execute(
        select(Schedule, Patient.timezone)
        .join(Patient, Patient.id == Schedule.patient_id)
        .where(
            Schedule.active.is_(True),
            Patient.status == PatientStatus.ACTIVE,
            Patient.opted_out_at.is_(None),
            Patient.phone_problem.is_(None),
        )
    ).all()
    values: list[dict[str, Any]] = []
    candidates: list[Schedule] = []
    for schedule, tz in rows:
        instrument = rt.instruments.latest(schedule.instrument_code)
        if instrument is None:
            continue
        try:
            due = latest_due(schedule.rrule, tz, schedule.start_date, schedule.end_date, now, window)
        except ScheduleError:
            log.warning("schedule cannot be expanded", extra={"schedule_id": schedule.id})
            continue
        if due is None or (schedule.last_considered_at is not None and due <= schedule.last_considered_at):
            continue
        send_after = send_time(due, tz, quiet)
        candidates.append(schedule)
        values.append(
            {
                "patient_id": schedule.patient_id,
                "schedule_id": schedule.id,
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
    if not values:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = 0
    # One statement per row: a conflict (already materialised, or the patient has a check-in open)
    # skips that row only.
    for row in values:
        result = session.execute(insert(CheckIn).values(**row).on_conflict_do_nothing().returning(CheckIn.id))
        if result.scalar() is not None:
            created += 1
    return created
