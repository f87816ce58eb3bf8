"""Read models for the care-team dashboard: the triage queue, an alert with its context, patients.

Built for scale (10,000 patients, 100,000 alerts): every list is one indexed query with a limit, joined
up front (no query per row). The queue reads only open and acknowledged alerts through
ix_alerts_status_urgency_opened; histories are bounded by date and count.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from alerts.labs import (
    ADJUSTED_CALCIUM,
    ALBUMIN,
    ALKALINE_PHOSPHATASE,
    CREATININE,
    CREATININE_MOLAR,
    IONISED_CALCIUM,
    TOTAL_CALCIUM,
    TOTAL_CALCIUM_MASS,
)
from alerts.rules import Urgency
from pro_service.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Answer,
    AnswerStatus,
    CareTeam,
    CheckIn,
    CheckInStatus,
    LabResult,
    LabStatus,
    Message,
    Patient,
    Schedule,
    StaffUser,
)
from pro_service.services.access import Scope, scoped
from pro_service.services.labs import SAME_SAMPLE, hide_derived_beside_lab

ACTIVE_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
URGENCIES = ("urgent", "same_day", "routine")
QUEUE_LIMIT = 200
TREND_WEEKS = 12
# Symptom flags under the pain trend, each read from the questions of either questionnaire version:
# (item code, the choice that means yes, or None for a yes/no item).
FLAG_ITEMS = (
    ("neuro", "Weakness / numbness"),
    ("bladder_bowel", "Bladder / bowel"),
    ("sudden_immobile", "Can't bear weight"),
    ("calcium_confused", "Confused / drowsy"),
    ("pain_new", "New pain"),
    ("fall", "Fall / unsteady"),
)
_FLAG_SOURCES: dict[str, tuple[tuple[str, int | None], ...]] = {
    "neuro": (("neuro", None), ("weakness", None), ("numbness", 2)),
    "bladder_bowel": (("bladder_bowel", None),),
    "sudden_immobile": (("sudden_immobile", None), ("weight_bearing", None)),
    "calcium_confused": (("calcium_sx", 5),),
    "pain_new": (("pain_new", None), ("pain_features", 1)),
    "fall": (("fall", None),),
}


def _flag(flag: str, answers: dict[str, Answer]) -> bool | None:
    """True if any source says yes, False if one was answered and none says yes, None if none answered."""
    seen: list[bool] = []
    for code, choice in _FLAG_SOURCES[flag]:
        found = answers.get(code)
        if found is None:
            continue
        if choice is None and isinstance(found.value, bool):
            seen.append(found.value)
        elif choice is not None and isinstance(found.value, list):
            seen.append(choice in found.value)
    return any(seen) if seen else None


@dataclass(frozen=True)
class QueueFilters:
    team_id: int | None = None
    urgency: str | None = None
    status: str | None = None  # "open" | "acknowledged" | None (both)
    # "My alerts": only those assigned to this staff id. None: the whole scope ("my care teams").
    assigned_to: int | None = None
    sort: str | None = None  # one of SORTS; None: the triage order


@dataclass(frozen=True)
class QueueRow:
    alert_id: int
    ref: str
    category: str
    urgency: str
    status: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalation_level: int
    patient_id: int
    patient_name: str
    mrn: str
    team_id: int
    team_name: str
    team_tz: str
    assigned_to_id: int | None = None
    assigned_to: str | None = None


@dataclass
class Queue:
    rows: list[QueueRow]
    counts: dict[str, int]  # by urgency, within the team/status filter (not the urgency filter)
    open_counts: dict[str, int]  # of those, still open (nobody has acknowledged)
    total: int
    truncated: bool


# An urgent alert acknowledged an hour ago must not sit above one nobody has seen yet.
_ACKNOWLEDGED_LAST = case((Alert.status == AlertStatus.ACKNOWLEDGED, 1), else_=0)


def _queue_base(stmt: Select[Any], filters: QueueFilters, scope: Scope) -> Select[Any]:
    """`stmt` joins patients when a team filter or a limited scope needs their care team."""
    statuses: Sequence[AlertStatus] = ACTIVE_STATUSES
    if filters.status in ("open", "acknowledged"):
        statuses = (AlertStatus(filters.status),)
    stmt = stmt.where(Alert.status.in_(statuses))
    if filters.team_id is not None:
        stmt = stmt.where(Patient.care_team_id == filters.team_id)
    if filters.assigned_to is not None:
        stmt = stmt.where(Alert.assigned_to_id == filters.assigned_to)
    return scoped(stmt, scope, Alert.patient_id, Patient.care_team_id)


def queue(session: Session, filters: QueueFilters, scope: Scope, limit: int = QUEUE_LIMIT) -> Queue:
    """Open and acknowledged alerts of the patients `scope` sees: most urgent first; within an urgency the
    ones nobody has picked up (open, including new evidence since an acknowledgement) before acknowledged
    ones; then oldest first. With counts per urgency (same scope)."""
    acker = aliased(StaffUser)
    owner = aliased(StaffUser)
    stmt = (
        select(
            Alert.id,
            Alert.ref,
            Alert.category,
            Alert.urgency,
            Alert.status,
            Alert.opened_at,
            Alert.acknowledged_at,
            acker.name,
            Alert.escalation_level,
            Patient.id,
            Patient.given_name,
            Patient.family_name,
            Patient.mrn,
            CareTeam.id,
            CareTeam.name,
            CareTeam.timezone,
            Alert.assigned_to_id,
            owner.name,
        )
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .outerjoin(acker, acker.id == Alert.acknowledged_by_id)
        .outerjoin(owner, owner.id == Alert.assigned_to_id)
        .order_by(*_queue_order(filters.sort, owner))
    )
    stmt = _queue_base(stmt, filters, scope)
    if filters.urgency in URGENCIES:
        stmt = stmt.where(Alert.urgency == filters.urgency)
    result = session.execute(stmt.limit(limit + 1)).all()
    rows = [
        QueueRow(
            alert_id=r[0],
            ref=r[1],
            category=r[2],
            urgency=r[3],
            status=r[4].value,
            opened_at=r[5],
            acknowledged_at=r[6],
            acknowledged_by=r[7],
            escalation_level=r[8],
            patient_id=r[9],
            patient_name=f"{r[10]} {r[11]}",
            mrn=r[12],
            team_id=r[13],
            team_name=r[14],
            team_tz=r[15],
            assigned_to_id=r[16],
            assigned_to=r[17],
        )
        for r in result[:limit]
    ]
    counts, open_counts = queue_counts(
        session,
        QueueFilters(team_id=filters.team_id, status=filters.status, assigned_to=filters.assigned_to),
        scope,
    )
    return Queue(
        rows=rows,
        counts=counts,
        open_counts=open_counts,
        total=sum(counts.values()),
        truncated=len(result) > limit,
    )


# Sortable columns: the key of `?sort=` (a leading "-" for descending) → its column. Every order ends with
# the triage order, so equal keys keep the most urgent first and the result is stable between polls.
SORTS = ("urgency", "patient", "team", "waiting", "status", "assignee")


def _queue_order(sort: str | None, owner: Any) -> list[Any]:
    triage = [Alert.urgency_rank.desc(), _ACKNOWLEDGED_LAST, Alert.opened_at, Alert.id]
    if not sort:
        return triage
    key = sort.removeprefix("-")
    desc = sort.startswith("-")
    column: Any = {
        "urgency": Alert.urgency_rank,
        "patient": func.lower(Patient.family_name),
        "team": CareTeam.name,
        "waiting": Alert.opened_at,
        "status": _ACKNOWLEDGED_LAST,
        "assignee": owner.name,
    }.get(key)
    if column is None:
        return triage
    # Ascending as the column reads: urgency routine → urgent, waiting shortest → longest.
    if key == "waiting":  # the column shows an age: the newer the alert, the shorter the wait
        desc = not desc
    first = column.desc().nulls_last() if desc else column.asc().nulls_last()
    return [first, *triage]


def queue_counts(
    session: Session, filters: QueueFilters, scope: Scope
) -> tuple[dict[str, int], dict[str, int]]:
    """Alerts waiting per urgency, and how many of them are still open (one grouped, indexed query)."""
    stmt = select(Alert.urgency, Alert.status, func.count()).group_by(Alert.urgency, Alert.status)
    if filters.team_id is not None or not scope.everything:
        stmt = stmt.join(Patient, Patient.id == Alert.patient_id)
    stmt = _queue_base(stmt, filters, scope)
    counts = dict.fromkeys(URGENCIES, 0)
    open_counts = dict.fromkeys(URGENCIES, 0)
    for urgency, status, count in session.execute(stmt).all():
        counts[urgency] = counts.get(urgency, 0) + int(count)
        if status == AlertStatus.OPEN:
            open_counts[urgency] = open_counts.get(urgency, 0) + int(count)
    return counts, open_counts


# --- handover ---------------------------------------------------------------------------------------

HANDOVER_LIMIT = 500


@dataclass(frozen=True)
class LastNote:
    text: str
    by: str
    at: datetime


@dataclass(frozen=True)
class HandoverRow:
    row: QueueRow
    last_note: LastNote | None


@dataclass
class HandoverTeam:
    team_id: int
    team_name: str
    team_tz: str
    rows: list[HandoverRow] = field(default_factory=list)


def last_notes(session: Session, alert_ids: Sequence[int]) -> dict[int, LastNote]:
    """The newest note event of each alert, with its author's name (one grouped query, one join)."""
    if not alert_ids:
        return {}
    newest = (
        select(func.max(AlertEvent.id))
        .where(AlertEvent.alert_id.in_(alert_ids), AlertEvent.kind == AlertEventKind.NOTE)
        .group_by(AlertEvent.alert_id)
    )
    rows = session.execute(
        select(AlertEvent, StaffUser.name)
        .outerjoin(StaffUser, StaffUser.id == AlertEvent.actor_staff_id)
        .where(AlertEvent.id.in_(newest))
    ).all()
    return {
        event.alert_id: LastNote(str(event.detail.get("note") or ""), name or event.actor, event.created_at)
        for event, name in rows
    }


def handover(session: Session, scope: Scope, limit: int = HANDOVER_LIMIT) -> tuple[list[HandoverTeam], bool]:
    """Open and acknowledged alerts of the patients `scope` sees, per care team (by name), each in the
    triage order with its last note; and whether the list was cut at `limit`."""
    found = queue(session, QueueFilters(), scope, limit=limit)
    rows = sorted(found.rows, key=lambda r: (r.team_name, r.team_id))  # stable: triage order within a team
    notes = last_notes(session, [r.alert_id for r in rows])
    teams: dict[int, HandoverTeam] = {}
    for row in rows:
        team = teams.setdefault(row.team_id, HandoverTeam(row.team_id, row.team_name, row.team_tz))
        team.rows.append(HandoverRow(row, notes.get(row.alert_id)))
    return list(teams.values()), found.truncated


def open_urgent_count(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.status == AlertStatus.OPEN, Alert.urgency_rank == Urgency.URGENT.rank)
        )
        or 0
    )


@dataclass(frozen=True)
class UrgentAlert:
    """An open urgent alert as the watch screen's banner needs it, whatever the filters: no patient.
    `in_scope` False: another team's patient, shown with its care team only (no reference, no symptom)."""

    alert_id: int
    ref: str
    category: str
    team_name: str
    opened_at: datetime
    in_scope: bool = True
    patient_id: int | None = None  # never shown: for the disclosure audit of the in-scope ones


def open_urgent(session: Session, scope: Scope, limit: int = 50) -> list[UrgentAlert]:
    """Open urgent alerts, newest first, from every care team (the banner ignores the queue's filters and
    still tells a nurse that another team has one waiting; `in_scope` says which the nurse may open)."""
    rows = session.execute(
        select(
            Alert.id, Alert.ref, Alert.category, CareTeam.name, Alert.opened_at, Alert.patient_id, CareTeam.id
        )
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .where(Alert.status == AlertStatus.OPEN, Alert.urgency_rank == Urgency.URGENT.rank)
        .order_by(Alert.opened_at.desc(), Alert.id.desc())
        .limit(limit)
    ).all()
    return [
        UrgentAlert(
            int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], scope.in_scope(int(r[5]), int(r[6])), int(r[5])
        )
        for r in rows
    ]


def shown_patients(queue: Queue, urgent: Sequence[UrgentAlert]) -> set[int]:
    """The patients the queue screen discloses: its rows, and the urgent banner's alerts the nurse may open
    (reference and symptom; another team's are announced by team only). For the disclosure audit."""
    return {r.patient_id for r in queue.rows} | {u.patient_id for u in urgent if u.in_scope and u.patient_id}


def queue_version(session: Session, now: datetime) -> str:
    """What the watch screen's 1-second poll compares, before any other query: equal versions mean the
    page has nothing to redraw (a 204, nothing read or rendered; docs/benchmarks.md has the cost).

    One aggregate over the active alerts (their status index): how many, how many still open, and the sums
    of the integers a row shows (id, urgency rank, escalation level, notice). Sums, not a max of ids or
    times, so a change committed out of order still changes the version. Anything else shown (names, an
    acknowledger's name, "waiting 12 min") changes at most every minute: the minute is part of it."""
    open_ = case((Alert.status == AlertStatus.OPEN, 1), else_=0)
    row = session.execute(
        select(
            func.count(),
            func.sum(open_),
            func.sum(Alert.id),
            func.sum(Alert.urgency_rank),
            func.sum(Alert.escalation_level),
            func.sum(Alert.notice),
            func.max(Alert.updated_at),
        ).where(Alert.status.in_(ACTIVE_STATUSES))
    ).one()
    digest = hashlib.blake2b(digest_size=10)
    digest.update(repr((tuple(row), now.replace(second=0, microsecond=0))).encode())
    return digest.hexdigest()


def care_teams(session: Session) -> list[CareTeam]:
    return list(session.scalars(select(CareTeam).order_by(CareTeam.name)))


# --- one alert -------------------------------------------------------------------------------------


@dataclass
class AlertView:
    alert: Alert
    patient: Patient
    team: CareTeam
    staff_names: dict[int, str]
    other_alerts: list[Alert]


def alert_view(session: Session, alert_id: int) -> AlertView | None:
    alert = session.scalar(
        select(Alert).where(Alert.id == alert_id).options(selectinload(Alert.events)).limit(1)
    )
    if alert is None:
        return None
    patient = session.scalar(
        select(Patient).where(Patient.id == alert.patient_id).options(selectinload(Patient.care_team))
    )
    assert patient is not None
    ids = {
        alert.acknowledged_by_id,
        alert.resolved_by_id,
        alert.assigned_to_id,
        *(e.actor_staff_id for e in alert.events),
    }
    for event in alert.events:
        ids.update(v for k in ("to_staff_id", "from_staff_id") if isinstance(v := event.detail.get(k), int))
        ids.update(event.detail.get("staff_ids") or [])
        ids.update(event.detail.get("paged_team_members") or [])
    others = list(
        session.scalars(
            select(Alert)
            .where(Alert.patient_id == patient.id, Alert.id != alert.id, Alert.status.in_(ACTIVE_STATUSES))
            .order_by(Alert.urgency_rank.desc(), Alert.opened_at)
            .limit(20)
        )
    )
    return AlertView(alert, patient, patient.care_team, staff_names(session, ids), others)


def alert_by_ref(session: Session, ref: str) -> int | None:
    return session.scalar(select(Alert.id).where(Alert.ref == ref.strip().upper()[:16]))


def staff_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if isinstance(i, int)}
    if not wanted:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(wanted))).all()
    return {int(staff_id): str(name) for staff_id, name in rows}


def recent_check_ins(session: Session, patient_id: int, limit: int = 5) -> list[CheckIn]:
    return list(
        session.scalars(
            select(CheckIn)
            .where(CheckIn.patient_id == patient_id)
            .options(selectinload(CheckIn.answers))
            .order_by(CheckIn.id.desc())
            .limit(limit)
        )
    )


def timeline(
    session: Session, patient_id: int, *, before_id: int | None = None, limit: int = 100
) -> tuple[list[Message], int | None]:
    """The patient's messages, newest first (ix_messages_patient_created); and the id to page on from."""
    stmt = select(Message).where(Message.patient_id == patient_id)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    rows = list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit + 1)))
    more = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], more


# --- trend -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    at: datetime
    check_in_id: int
    status: str
    pain: int | None
    flags: dict[str, bool | None]  # item → yes / no / unknown


@dataclass
class Trend:
    start: datetime
    end: datetime
    points: list[TrendPoint] = field(default_factory=list)


def trend(session: Session, patient_id: int, now: datetime, weeks: int = TREND_WEEKS) -> Trend:
    start = now - timedelta(weeks=weeks)
    check_ins = session.scalars(
        select(CheckIn)
        .where(
            CheckIn.patient_id == patient_id,
            CheckIn.status.in_((CheckInStatus.COMPLETED, CheckInStatus.EXPIRED, CheckInStatus.IN_PROGRESS)),
            func.coalesce(CheckIn.started_at, CheckIn.created_at) >= start,
        )
        .options(selectinload(CheckIn.answers))
        .order_by(CheckIn.id)
        .limit(weeks * 7)
    ).all()
    points = []
    for check_in in check_ins:
        answers = {a.item_code: a for a in check_in.answers if a.status == AnswerStatus.ANSWERED}
        pain = answers.get("pain_worst")
        flags = {code: _flag(code, answers) for code, _label in FLAG_ITEMS}
        points.append(
            TrendPoint(
                at=check_in.started_at or check_in.created_at,
                check_in_id=check_in.id,
                status=check_in.status.value,
                pain=pain.value if pain is not None and isinstance(pain.value, int) else None,
                flags=flags,
            )
        )
    return Trend(start=start, end=now, points=points)


# --- patients --------------------------------------------------------------------------------------

_DIGITS = re.compile(r"\D+")


def search_patients(session: Session, query: str, scope: Scope, limit: int = 50) -> list[Patient]:
    """By name (any word, prefix), MRN (prefix, any case) or phone (its last digits), among the patients
    `scope` sees (a break-glass grant opens one record, it does not widen a search)."""
    q = query.strip()[:100]
    stmt = scoped(select(Patient), scope, Patient.id, Patient.care_team_id).options(
        selectinload(Patient.care_team)
    )
    if q:
        conditions = [func.upper(Patient.mrn).startswith(q.upper(), autoescape=True)]
        digits = _DIGITS.sub("", q)
        if len(digits) >= 4:
            conditions.append(Patient.phone.endswith(digits[-10:], autoescape=True))
        words = [w for w in re.split(r"[\s,]+", q) if w]
        if words:
            name_match = [
                or_(
                    func.lower(Patient.given_name).startswith(w.lower(), autoescape=True),
                    func.lower(Patient.family_name).startswith(w.lower(), autoescape=True),
                )
                for w in words
            ]
            conditions.append(and_(*name_match))
        stmt = stmt.where(or_(*conditions))
    return list(
        session.scalars(stmt.order_by(Patient.family_name, Patient.given_name, Patient.id).limit(limit))
    )


@dataclass(frozen=True)
class Adherence:
    sent: int
    completed: int
    partial: int
    unanswered: int
    since: datetime

    @property
    def answered(self) -> int:
        return self.completed + self.partial

    @property
    def percent(self) -> int | None:
        return round(100 * self.answered / self.sent) if self.sent else None


def adherence(session: Session, patient_id: int, now: datetime, weeks: int = TREND_WEEKS) -> Adherence:
    """Check-ins whose first question went out in the window, and how many got answers."""
    since = now - timedelta(weeks=weeks)
    has_answer = (
        select(Answer.check_in_id)
        .where(
            Answer.check_in_id == CheckIn.id,
            Answer.status.in_((AnswerStatus.ANSWERED, AnswerStatus.UNREADABLE)),
        )
        .exists()
    )
    kind = case(
        (CheckIn.status == CheckInStatus.COMPLETED, "completed"),
        (has_answer, "partial"),
        else_="unanswered",
    )
    rows = session.execute(
        select(kind, func.count())
        .where(
            CheckIn.patient_id == patient_id,
            CheckIn.started_at.is_not(None),
            CheckIn.started_at >= since,
            CheckIn.status.in_((CheckInStatus.COMPLETED, CheckInStatus.EXPIRED)),
        )
        .group_by(kind)
    ).all()
    found = {k: int(c) for k, c in rows}
    return Adherence(
        sent=sum(found.values()),
        completed=found.get("completed", 0),
        partial=found.get("partial", 0),
        unanswered=found.get("unanswered", 0),
        since=since,
    )


@dataclass
class PatientView:
    patient: Patient
    schedules: list[Schedule]
    alerts: list[Alert]
    open_check_in: CheckIn | None


def patient_view(session: Session, patient_id: int) -> PatientView | None:
    patient = session.scalar(
        select(Patient).where(Patient.id == patient_id).options(selectinload(Patient.care_team))
    )
    if patient is None:
        return None
    schedules = list(
        session.scalars(select(Schedule).where(Schedule.patient_id == patient.id).order_by(Schedule.id))
    )
    alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.patient_id == patient.id)
            .order_by(
                case((Alert.status == AlertStatus.RESOLVED, 1), else_=0),
                Alert.urgency_rank.desc(),
                Alert.opened_at.desc(),
            )
            .limit(50)
        )
    )
    open_check_in = session.scalar(
        select(CheckIn).where(
            CheckIn.patient_id == patient.id,
            CheckIn.status.in_((CheckInStatus.PENDING, CheckInStatus.IN_PROGRESS)),
        )
    )
    return PatientView(patient, schedules, alerts, open_check_in)


def outside_scope_by_mrn(session: Session, query: str, scope: Scope) -> int | None:
    """The patient whose MRN is exactly `query` when `scope` does not see them: the search offers a
    break-glass for that record without showing who it is (unique MRN index, one lookup)."""
    if scope.everything or not query.strip():
        return None
    row = session.execute(
        select(Patient.id, Patient.care_team_id).where(Patient.mrn == query.strip()[:64])
    ).first()
    if row is None or scope.in_scope(int(row[0]), int(row[1])):
        return None
    return int(row[0])


# --- lab results -----------------------------------------------------------------------------------
# The tests a nurse looks at beside a bone-metastasis alert, in the order shown. For each row the codes
# are in order of preference for one sample: the lab's adjusted calcium, then total calcium, then ionised
# (whose reference range is different, so it is shown under its own name, never as "calcium").
LAB_PANEL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("calcium", "Calcium", (ADJUSTED_CALCIUM, TOTAL_CALCIUM, TOTAL_CALCIUM_MASS, IONISED_CALCIUM)),
    ("albumin", "Albumin", (ALBUMIN,)),
    ("alp", "Alkaline phosphatase (ALP)", (ALKALINE_PHOSPHATASE,)),
    ("creatinine", "Creatinine", (CREATININE, CREATININE_MOLAR)),
)
# Current results read per code for the latest-values table: enough for a derived and a lab adjusted
# calcium of one sample, a withdrawn result and the valid one before it.
LATEST_PER_CODE = 6
CALCIUM_TREND_DAYS = 180
CALCIUM_TREND_LIMIT = 400
_WALK_LIMIT = 5  # versions walked back to find the value a withdrawal removed


@dataclass(frozen=True)
class LabValue:
    """One current result as the dashboard shows it: the canonical value, and what the lab sent."""

    result_id: int
    code: str
    value: float | None  # canonical unit; None when withdrawn
    unit: str  # canonical
    reported_value: float | None  # as the lab sent it
    reported_unit: str | None
    reference_range: str | None  # as the lab reported it (may carry the lab's unit)
    interpretation: str | None  # the lab's flag: H, L, HH, LL, A, N
    taken_at: datetime
    status: str  # LabStatus value
    derived: bool
    withdrawn_at: datetime | None
    withdrawn_value: float | None = None  # the value the lab withdrew (shown struck through)
    withdrawn_result_id: int | None = None  # the version that value was (an alert may name it)

    @property
    def withdrawn(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class LabRow:
    key: str  # LAB_PANEL key
    label: str
    latest: LabValue | None
    last_valid: LabValue | None = None  # when `latest` is withdrawn: the latest result still valid


def _usable(row: LabResult) -> bool:
    return (
        row.canonical_value is not None
        and row.withdrawn_at is None
        and row.status != LabStatus.ENTERED_IN_ERROR
    )


def _lab_value(row: LabResult, withdrawn: LabResult | None = None) -> LabValue:
    """`withdrawn`: for a withdrawal, the version whose value it withdrew (see `_withdrawn_version`)."""
    usable = _usable(row)
    if usable:
        withdrawn = None
    return LabValue(
        result_id=row.id,
        code=row.code,
        value=row.canonical_value if usable else None,
        unit=row.canonical_unit,
        reported_value=row.value,
        reported_unit=row.unit,
        reference_range=row.reference_range or (withdrawn.reference_range if withdrawn else None),
        interpretation=row.interpretation,
        taken_at=row.effective_at,
        status=row.status.value,
        derived=row.derived,
        withdrawn_at=row.withdrawn_at,
        withdrawn_value=withdrawn.canonical_value if withdrawn else None,
        withdrawn_result_id=withdrawn.id if withdrawn else None,
    )


def _withdrawn_version(session: Session, row: LabResult) -> LabResult | None:
    """The version whose value an entered-in-error version withdrew: the one it replaced (walking back over
    a repeated withdrawal). A late version kept as history also points at the current one, but it
    arrived after it (a higher id), so only earlier ids are the version that was withdrawn."""
    if _usable(row):
        return None
    current = row
    for _ in range(_WALK_LIMIT):
        previous = session.scalar(
            select(LabResult)
            .where(LabResult.replaced_by_id == current.id, LabResult.id < current.id)
            .order_by(LabResult.id.desc())
            .limit(1)
        )
        if previous is None or previous.canonical_value is not None:
            return previous
        current = previous
    return None


def _best(rows: Sequence[LabResult], preference: tuple[str, ...]) -> LabResult | None:
    """The result to show for one panel row: from the latest sample, a valid one before a withdrawn one,
    then by the codes' preference (adjusted calcium before total), the lab's own before one derived."""
    if not rows:
        return None
    latest = max(r.effective_at for r in rows)
    sample = [r for r in rows if latest - r.effective_at <= SAME_SAMPLE]

    def order(r: LabResult) -> tuple[bool, int, bool, float, int]:
        return (not _usable(r), preference.index(r.code), r.derived, -r.effective_at.timestamp(), -r.id)

    return min(sample, key=order)


def latest_labs(session: Session, patient_id: int) -> list[LabRow]:
    """The latest current result of each panel row (one windowed query: a few rows per code, by sample
    time, through ix_lab_results_patient_effective); a withdrawn latest result comes with the value it
    withdrew and the latest result still valid."""
    codes = [code for _key, _label, row_codes in LAB_PANEL for code in row_codes]
    rank = (
        func.row_number()
        .over(partition_by=LabResult.code, order_by=(LabResult.effective_at.desc(), LabResult.id.desc()))
        .label("rank")
    )
    ranked = (
        select(LabResult.id, rank)
        .where(
            LabResult.patient_id == patient_id,
            LabResult.replaced_by_id.is_(None),
            LabResult.code.in_(codes),
        )
        .subquery()
    )
    rows = hide_derived_beside_lab(
        list(
            session.scalars(
                select(LabResult)
                .join(ranked, ranked.c.id == LabResult.id)
                .where(ranked.c.rank <= LATEST_PER_CODE)
                .order_by(LabResult.effective_at.desc(), LabResult.id.desc())
            )
        )
    )
    out = []
    for key, label, row_codes in LAB_PANEL:
        mine = [r for r in rows if r.code in row_codes]
        best = _best(mine, row_codes)
        if best is None:
            out.append(LabRow(key, label, None))
            continue
        if _usable(best):
            out.append(LabRow(key, label, _lab_value(best)))
            continue
        valid = _best([r for r in mine if _usable(r)], row_codes)
        out.append(
            LabRow(
                key,
                label,
                _lab_value(best, _withdrawn_version(session, best)),
                None if valid is None else _lab_value(valid),
            )
        )
    return out


@dataclass
class LabTrend:
    start: datetime
    end: datetime
    points: list[LabValue] = field(default_factory=list)  # oldest first; withdrawn ones have no value


def calcium_trend(
    session: Session, patient_id: int, now: datetime, days: int = CALCIUM_TREND_DAYS
) -> LabTrend:
    """Adjusted calcium (the lab's, or the service's derived one when the lab gave none) over `days`."""
    start = now - timedelta(days=days)
    rows = list(
        session.scalars(
            select(LabResult)
            .where(
                LabResult.patient_id == patient_id,
                LabResult.replaced_by_id.is_(None),
                LabResult.code == ADJUSTED_CALCIUM,
                LabResult.effective_at >= start,
            )
            .order_by(LabResult.effective_at.desc(), LabResult.id.desc())
            .limit(CALCIUM_TREND_LIMIT)
        )
    )
    shown = sorted(hide_derived_beside_lab(rows), key=lambda r: (r.effective_at, r.id))
    return LabTrend(
        start=start, end=now, points=[_lab_value(r, _withdrawn_version(session, r)) for r in shown]
    )


@dataclass(frozen=True)
class EvidenceResult:
    """What became of a result an alert was raised on."""

    result_id: int
    reported_value: float | None
    reported_unit: str | None
    withdrawn_at: datetime | None  # the lab withdrew it (entered in error) after the alert
    now: LabValue | None = None  # when replaced (amended, corrected, withdrawn): the current version


def evidence_result_ids(evidence: Iterable[dict[str, Any]]) -> set[int]:
    """The lab results an alert's evidence names (a lab result's value carries its result_id)."""
    found = set()
    for ev in evidence:
        value = ev.get("value")
        if ev.get("item_code") is None and isinstance(value, dict):
            result_id = value.get("result_id")
            if isinstance(result_id, int):
                found.add(result_id)
    return found


def evidence_results(session: Session, ids: Iterable[int]) -> dict[int, EvidenceResult]:
    """Each result's state now: withdrawn by the lab, replaced by a newer version, or as it was."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    out = {}
    for row in session.scalars(select(LabResult).where(LabResult.id.in_(wanted))):
        current: LabValue | None = None
        if row.replaced_by_id is not None:
            latest = session.scalar(
                select(LabResult).where(
                    LabResult.patient_id == row.patient_id,
                    LabResult.source == row.source,
                    LabResult.source_key == row.source_key,
                    LabResult.code == row.code,
                    LabResult.replaced_by_id.is_(None),
                )
            )
            if latest is not None and latest.id != row.id:
                current = _lab_value(latest, _withdrawn_version(session, latest))
        out[row.id] = EvidenceResult(row.id, row.value, row.unit, row.withdrawn_at, current)
    return out
