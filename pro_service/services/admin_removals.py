"""An administrator's removals, from the admin pages or the REST API alike: a patient's check-in schedule,
an on-call shift. The caller's unit of work commits; the caller writes the audit row.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pro_service.models import OnCallShift, Schedule


def delete_schedule(session: Session, schedule: Schedule) -> None:
    """Remove a check-in schedule (check-ins already sent stay in the patient's record)."""
    session.delete(schedule)


def delete_shift(session: Session, shift: OnCallShift) -> None:
    """Take an on-call shift off the rota."""
    session.delete(shift)
