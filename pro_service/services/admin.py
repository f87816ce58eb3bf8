"""Administration use cases: patients (edit, pause, discharge), schedules from a weekday/time picker,
care teams and members, the on-call rota (entered in the team's time zone, stored in UTC), staff accounts
and the audit log. Callers commit and write the audit row."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import Session

from pro_service.instruments import InstrumentRegistry
from pro_service.models import (
    AuditLog,
    CareTeam,
    CareTeamMember,
    OnCallShift,
    Patient,
    Schedule,
    StaffUser,
)
from pro_service.scheduling import ScheduleError, validate_rrule
from pro_service.services import tokens
from pro_service.services.errors import Conflict, Invalid, NotFound
from pro_service.services.patients import EnrolmentError, check_timezone, normalise_phone
from pro_service.services.staff import staff_phone

WEEKDAYS = (
    ("MO", "Monday"),
    ("TU", "Tuesday"),
    ("WE", "Wednesday"),
    ("TH", "Thursday"),
    ("FR", "Friday"),
    ("SA", "Saturday"),
    ("SU", "Sunday"),
)


class AdminError(Invalid):
    """A form value that cannot be accepted; `field` names the form field for the message."""


class NeedsConfirmation(AdminError):
    """Allowed but unusual (an overlapping or very long shift, removing someone still on the rota): the
    form asks again, saying why, and saves only when the administrator confirms."""


LONG_SHIFT = timedelta(hours=24)
# On-call levels are the escalation order (services/notify.py pages level 1, then the next level on the rota
# after each unacknowledged deadline: 15 minutes for an urgent alert, config/escalation.yaml). Five levels
# is already an hour of urgent pages unanswered; more is a typo, not a rota. The API and the form share it.
MAX_ON_CALL_LEVEL = 5


# --- patients --------------------------------------------------------------------------------------


# --- schedules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyPick:
    days: tuple[str, ...]
    hour: int
    minute: int


def weekly_rrule(days: list[str], at: str) -> str:
    """Weekday boxes and a time (HH:MM) → FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=10;BYMINUTE=0, validated."""
    order = [code for code, _ in WEEKDAYS]
    picked = [d for d in order if d in set(days)]
    if not picked:
        raise AdminError("days", "tick at least one weekday")
    try:
        clock = time.fromisoformat(at)
    except ValueError:
        raise AdminError("time", "enter a time such as 10:00") from None
    rule = f"FREQ=WEEKLY;BYDAY={','.join(picked)};BYHOUR={clock.hour};BYMINUTE={clock.minute}"
    try:
        return validate_rrule(rule)
    except ScheduleError as exc:
        raise AdminError("rrule", str(exc)) from None


def parse_weekly(rrule: str) -> WeeklyPick | None:
    """The picker's view of a rule it can show (weekly, days, one time); None for anything else."""
    parts = dict(p.split("=", 1) for p in rrule.split(";") if "=" in p)
    if parts.get("FREQ") != "WEEKLY" or set(parts) - {"FREQ", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"}:
        return None
    hours, minutes = parts.get("BYHOUR", ""), parts.get("BYMINUTE", "0")
    if not hours.isdigit() or not minutes.isdigit():
        return None
    days = tuple(d for d in parts.get("BYDAY", "").split(",") if d in dict(WEEKDAYS))
    return WeeklyPick(days, int(hours), int(minutes))


def describe_rrule(rrule: str) -> str:
    pick = parse_weekly(rrule)
    if pick is None:
        return rrule
    names = dict(WEEKDAYS)
    days = ", ".join(names[d] for d in pick.days) if pick.days else "every week"
    return f"{days} at {pick.hour:02d}:{pick.minute:02d}"


def save_schedule(
    session: Session,
    patient: Patient,
    *,
    schedule: Schedule | None,
    instrument_code: str,
    rrule: str,
    start_date: date,
    end_date: date | None,
    active: bool,
    now: datetime,
    instruments: InstrumentRegistry | None = None,
) -> Schedule:
    """Create (`schedule` None) or edit a schedule: the admin picker and the API both come here. The rule
    is validated (and stored normalised); with `instruments`, the questionnaire must exist."""
    if instruments is not None and instruments.latest(instrument_code) is None:
        raise AdminError("instrument", f"unknown instrument {instrument_code!r}")
    if end_date is not None and end_date < start_date:
        raise AdminError("end_date", "is before the start date")
    try:
        rrule = validate_rrule(rrule)
    except ScheduleError as exc:
        raise AdminError("rrule", str(exc)) from None
    if schedule is None:
        schedule = Schedule(patient_id=patient.id, created_at=now)
        session.add(schedule)
    elif schedule.patient_id != patient.id:
        raise NotFound("schedule", f"{schedule.id} for patient {patient.id}")
    schedule.instrument_code = instrument_code
    schedule.rrule = rrule
    schedule.start_date = start_date
    schedule.end_date = end_date
    schedule.active = active
    schedule.next_due_at = None  # what it produces may have changed: the next tick looks again
    session.flush()
    return schedule


def patient_schedule(session: Session, patient_id: int, schedule_id: int) -> tuple[Patient, Schedule]:
    """A patient's schedule; NotFound for either, or for a schedule of another patient."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("patient", patient_id)
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound("schedule", schedule_id)
    if schedule.patient_id != patient.id:
        raise NotFound("schedule", f"{schedule_id} for patient {patient_id}")
    return patient, schedule


# --- care teams and rota ---------------------------------------------------------------------------


def acute_oncology_number(raw: str | None) -> str | None:
    """The team's MSCC coordinator / acute oncology number, normalised like every phone (blank: none)."""
    if not raw or not raw.strip():
        return None
    try:
        return normalise_phone(raw)
    except EnrolmentError as exc:
        raise AdminError("acute_oncology_phone", f"MSCC / acute oncology number {exc.message}") from None


def save_care_team(
    session: Session,
    team: CareTeam | None,
    *,
    name: str,
    timezone: str,
    phone: str | None,
    acute_oncology_phone: str | None = None,
) -> CareTeam:
    """Create or edit a team. `acute_oncology_phone` None leaves it as it is; blank clears it."""
    name = name.strip()
    if not name:
        raise AdminError("name", "is required")
    check_timezone(timezone)
    if phone:
        phone = normalise_phone(phone)
    clash = select(CareTeam.id).where(CareTeam.name == name)
    if team is not None:
        clash = clash.where(CareTeam.id != team.id)
    if session.scalar(clash) is not None:
        raise Conflict(f"a care team named {name!r} exists", field="name")
    if team is None:
        team = CareTeam(name=name)
        session.add(team)
    team.name, team.timezone, team.phone = name, timezone, phone or None
    if acute_oncology_phone is not None:
        team.acute_oncology_phone = acute_oncology_number(acute_oncology_phone)
    session.flush()
    return team


def team_members(session: Session, team_id: int) -> list[StaffUser]:
    return list(
        session.scalars(
            select(StaffUser)
            .join(CareTeamMember, CareTeamMember.staff_id == StaffUser.id)
            .where(CareTeamMember.care_team_id == team_id)
            .order_by(StaffUser.name)
        )
    )


def add_member(session: Session, team_id: int, staff_id: int) -> bool:
    if session.get(StaffUser, staff_id) is None:
        raise AdminError("staff_id", "choose a staff member")
    if session.get(CareTeamMember, (team_id, staff_id)) is not None:
        return False
    session.add(CareTeamMember(care_team_id=team_id, staff_id=staff_id))
    return True


@dataclass(frozen=True)
class Removed:
    member: bool  # False: was not a member
    shifts_removed: int  # future shifts deleted
    shifts_ended: int  # shifts in progress ended now


def remove_member(
    session: Session, team_id: int, staff_id: int, *, now: datetime, confirmed: bool = False
) -> Removed:
    """Remove a member; one still on this team's rota is removed only when confirmed, and then leaves
    the rota too (a shift in progress ends now, later ones are deleted): nobody is paged for a team they
    left."""
    member = session.get(CareTeamMember, (team_id, staff_id))
    if member is None:
        return Removed(False, 0, 0)
    on_rota = list(
        session.scalars(
            select(OnCallShift).where(
                OnCallShift.care_team_id == team_id,
                OnCallShift.staff_id == staff_id,
                OnCallShift.ends_at > now,
            )
        )
    )
    if on_rota and not confirmed:
        raise NeedsConfirmation(
            "staff_id",
            f"this person is on the team's on-call rota ({len(on_rota)} current or future shift"
            f"{'s' if len(on_rota) != 1 else ''}); removing them also takes them off the rota",
        )
    ended = removed = 0
    for shift in on_rota:
        if shift.starts_at <= now:
            shift.ends_at, ended = now, ended + 1
        else:
            session.delete(shift)
            removed += 1
    session.delete(member)
    return Removed(True, removed, ended)


def local_to_utc(value: str, tz: str) -> datetime:
    """An <input type=datetime-local> value in the team's zone → aware UTC. A time skipped by a DST
    change moves forward; an ambiguous one is the first (fold=0), as schedules do."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise AdminError("when", "enter a date and time") from None
    if naive.tzinfo is not None:
        raise AdminError("when", "enter the team's local time without a zone")
    zone = ZoneInfo(tz)
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def on_call_staff(session: Session, staff_id: int) -> StaffUser:
    """Who may be put on a rota: an active account (a deactivated one cannot sign in to acknowledge a
    page, and paging it would leave the level silent)."""
    staff = session.get(StaffUser, staff_id)
    if staff is None or not staff.active:
        raise AdminError("staff_id", "choose an active staff member")
    return staff


def check_level(level: int) -> None:
    if not 1 <= level <= MAX_ON_CALL_LEVEL:
        raise AdminError("level", f"must be between 1 and {MAX_ON_CALL_LEVEL}")


def check_shift_times(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise AdminError("ends_at", "must be after the start")


def create_shift(
    session: Session, team: CareTeam, *, staff_id: int, level: int, starts_at: datetime, ends_at: datetime
) -> OnCallShift:
    """A shift given as aware instants (the API): the rules every shift follows, then stored in UTC."""
    staff = on_call_staff(session, staff_id)
    check_level(level)
    check_shift_times(starts_at, ends_at)
    return _store_shift(session, team, staff, level, starts_at.astimezone(UTC), ends_at.astimezone(UTC))


def add_shift(
    session: Session,
    team: CareTeam,
    *,
    staff_id: int,
    level: int,
    starts: str,
    ends: str,
    now: datetime,
    confirmed: bool = False,
) -> OnCallShift:
    """A shift from the rota form, in the team's local time: the rules every shift follows, and the form's
    safeguards against a typo (a past or month-long shift, an overlap to confirm)."""
    staff = on_call_staff(session, staff_id)
    check_level(level)
    starts_at, ends_at = local_to_utc(starts, team.timezone), local_to_utc(ends, team.timezone)
    check_shift_times(starts_at, ends_at)
    if ends_at - starts_at > timedelta(days=31):
        raise AdminError("ends_at", "a shift can be at most 31 days")
    if ends_at <= now:
        raise AdminError("ends_at", "this shift is already over: nobody would be paged by it")
    unusual = _unusual_shift(session, team.id, level, starts_at, ends_at)
    if unusual and not confirmed:
        raise NeedsConfirmation("starts_at", "; ".join(unusual))
    return _store_shift(session, team, staff, level, starts_at, ends_at)


def _store_shift(
    session: Session, team: CareTeam, staff: StaffUser, level: int, starts_at: datetime, ends_at: datetime
) -> OnCallShift:
    shift = OnCallShift(
        care_team_id=team.id, staff_id=staff.id, level=level, starts_at=starts_at, ends_at=ends_at
    )
    session.add(shift)
    session.flush()
    return shift


def team_shift(session: Session, team_id: int, shift_id: int) -> OnCallShift:
    """A shift of a team's rota; NotFound for no such shift, or one of another team."""
    shift = session.get(OnCallShift, shift_id)
    if shift is None:
        raise NotFound("shift", shift_id)
    if shift.care_team_id != team_id:
        raise NotFound("shift", f"{shift_id} in care team {team_id}")
    return shift


def _unusual_shift(
    session: Session, team_id: int, level: int, starts_at: datetime, ends_at: datetime
) -> list[str]:
    """What an administrator should confirm: a shift over 24 hours (a typo in the end date pages one
    person for weeks), or one overlapping another person's shift at the same level (two people paged)."""
    found = []
    if ends_at - starts_at > LONG_SHIFT:
        hours = (ends_at - starts_at).total_seconds() / 3600
        found.append(f"this shift lasts {hours:.0f} hours")
    overlap = (
        session.execute(
            select(StaffUser.name)
            .join(OnCallShift, OnCallShift.staff_id == StaffUser.id)
            .where(
                OnCallShift.care_team_id == team_id,
                OnCallShift.level == level,
                OnCallShift.starts_at < ends_at,
                OnCallShift.ends_at > starts_at,
            )
            .limit(3)
        )
        .scalars()
        .all()
    )
    if overlap:
        found.append(f"it overlaps a level-{level} shift of {', '.join(overlap)}: both would be paged")
    return found


def shifts(session: Session, team_id: int, now: datetime, limit: int = 100) -> list[tuple[OnCallShift, str]]:
    """Current and future shifts (and those ended in the last day), with the staff name."""
    rows = session.execute(
        select(OnCallShift, StaffUser.name)
        .join(StaffUser, StaffUser.id == OnCallShift.staff_id)
        .where(OnCallShift.care_team_id == team_id, OnCallShift.ends_at > now - timedelta(days=1))
        .order_by(OnCallShift.starts_at, OnCallShift.level)
        .limit(limit)
    ).all()
    return [(shift, name) for shift, name in rows]


# --- staff -----------------------------------------------------------------------------------------


def staff_list(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.name)))


def new_password() -> str:
    """A temporary password shown once to the administrator: 4 groups of 4 unambiguous characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def update_staff(session: Session, staff: StaffUser, *, name: str, phone: str | None) -> None:
    if not name.strip():
        raise AdminError("name", "is required")
    try:
        phone = staff_phone(session, staff, phone)
    except EnrolmentError as exc:
        raise AdminError("phone", exc.message) from None
    except Conflict:
        raise AdminError("phone", "another account has this phone number") from None
    staff.name, staff.phone = name.strip(), phone


# --- audit log -------------------------------------------------------------------------------------


@dataclass
class AuditPage:
    rows: list[AuditLog]
    next_before: int | None


@dataclass(frozen=True)
class AuditFilter:
    """What the audit browser narrows to. `patient_ids` None: any patient; empty: a patient search that
    matched nobody (so nothing is shown, never everything)."""

    patient_ids: tuple[int, ...] | None = None
    # "staff:3", "client:EHR", "token:2", "system" or a whole stored actor; empty: matched nobody. A person or
    # client also matches what they did through their API tokens ("staff:3 (token 7)"): `actor_clause`.
    actors: tuple[str, ...] | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    @property
    def active(self) -> bool:
        values = (self.patient_ids, self.actors, self.action, self.since, self.until)
        return any(v is not None for v in values)


AUDIT_EXPORT_LIMIT = 50_000


def _like_escape(text: str) -> str:
    """Typed text as a LIKE pattern's literal part: % and _ match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_patients(session: Session, text: str, limit: int = 50) -> tuple[int, ...]:
    """Patients an audit search names: an id, an MRN (any case) or part of a name."""
    text = " ".join(text.split())[:120]
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return (int(text),)
    pattern = f"%{_like_escape(text.lower())}%"
    full_name = func.lower(Patient.given_name + " " + Patient.family_name)
    rows = session.scalars(
        select(Patient.id)
        .where(or_(func.lower(Patient.mrn) == text.lower(), full_name.like(pattern, escape="\\")))
        .order_by(Patient.id)
        .limit(limit)
    )
    return tuple(rows)


def resolve_actors(session: Session, text: str, limit: int = 50) -> tuple[str, ...]:
    """Who an audit search names: `staff:3`, `client:EHR-interface`, `token:2`, `system` or a whole stored
    actor (`staff:3 (token 7)`); a staff member's email; or part of staff members' names ("kim" → every
    Kim)."""
    text = " ".join(text.split())[:160]
    kind, _, number = text.partition(":")
    if text == "system" or (kind in ("staff", "token") and number.isascii() and number.isdigit()):
        return (text,)
    if (kind == "client" and number) or tokens.actor_token_id(text) is not None:
        return (text,)
    if "@" in text:
        match = func.lower(StaffUser.email) == text.lower()
    else:
        match = StaffUser.name.ilike(f"%{_like_escape(text)}%", escape="\\")
    ids = session.scalars(select(StaffUser.id).where(match).order_by(StaffUser.id).limit(limit))
    return tuple(f"staff:{staff_id}" for staff_id in ids)


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))


def actor_clause(actors: tuple[str, ...]) -> ColumnElement[bool]:
    """Rows written by any of `actors`: exactly as stored, plus, for a person or client, what they did
    through a token (`staff:3` → `staff:3 (token …)`), and for `token:7` every row written through token 7
    (the legacy `token:7` and `… (token 7)`)."""
    conditions: list[ColumnElement[bool]] = [AuditLog.actor.in_(actors)] if actors else [false()]
    for actor in actors:
        token_id = tokens.actor_token_id(actor)
        if actor.startswith("token:") and token_id is not None:
            conditions.append(AuditLog.actor.like(f"% (token {token_id})"))
        elif token_id is None and actor.startswith(("staff:", "client:")):
            conditions.append(AuditLog.actor.like(f"{_like_escape(actor)} (token %", escape="\\"))
    return or_(*conditions)


def _audit_query(audit: AuditFilter) -> Select[tuple[AuditLog]]:
    stmt = select(AuditLog)
    if audit.patient_ids is not None:
        stmt = stmt.where(AuditLog.patient_id.in_(audit.patient_ids))
    if audit.actors is not None:
        stmt = stmt.where(actor_clause(audit.actors))
    if audit.action:
        stmt = stmt.where(AuditLog.action == audit.action)
    if audit.since is not None:
        stmt = stmt.where(AuditLog.at >= audit.since)
    if audit.until is not None:
        stmt = stmt.where(AuditLog.at < audit.until)
    return stmt


def audit_page(
    session: Session, audit: AuditFilter = AuditFilter(), *, before_id: int | None = None, limit: int = 50
) -> AuditPage:
    """Newest first, paged by id (keyset: as fast on page 500 as on page 1)."""
    stmt = _audit_query(audit)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    rows = list(session.scalars(stmt.order_by(AuditLog.id.desc()).limit(limit + 1)))
    return AuditPage(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)


def audit_rows(session: Session, audit: AuditFilter, limit: int = AUDIT_EXPORT_LIMIT) -> Iterator[AuditLog]:
    """Every matching row, newest first, for an export (at most `limit`): fetched 1,000 at a time by id, so
    memory stays flat and no cursor is left open if the download stops half way."""
    sent, before = 0, None
    while sent < limit:
        page = audit_page(session, audit, before_id=before, limit=min(1000, limit - sent))
        yield from page.rows
        sent += len(page.rows)
        for row in page.rows:  # written out: keep the session's identity map small
            session.expunge(row)
        if page.next_before is None:
            return
        before = page.next_before


def patient_labels(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Patient id → "MRN Given Family", for showing audit rows by who they are about."""
    wanted = {i for i in ids if isinstance(i, int)}
    if not wanted:
        return {}
    rows = session.execute(
        select(Patient.id, Patient.mrn, Patient.given_name, Patient.family_name).where(Patient.id.in_(wanted))
    ).all()
    return {int(pid): f"{mrn} {given} {family}" for pid, mrn, given, family in rows}


def count_patients_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Patient.status, func.count()).group_by(Patient.status)).all()
    return {status.value: int(count) for status, count in rows}
