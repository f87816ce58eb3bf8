"""Who may see which patients: one rule for the dashboard, the REST API and FHIR (issue 15).

A nurse sees and acts on the patients of the care teams they belong to and of the teams they are on call for
right now (lists and records); and opens the record of a patient whose active alert paged them (records only:
the page's link leads there). Anything else needs a break-glass: a typed reason, written to the audit log,
that opens one patient for `BREAK_GLASS_MINUTES`. Administrators see everything.

API tokens (services/tokens.py) follow the same rule: a staff member's token sees what that person sees now
(their current role and teams; break-glass is a dashboard act and never reaches a token), and an integration
client's token sees every patient, within the scopes its routes require (a client is an integration serving
the hospital, not a nurse).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, false, select, union
from sqlalchemy.orm import InstrumentedAttribute, Session

from pro_service.models import (
    Alert,
    AlertStatus,
    ApiToken,
    CareTeamMember,
    Message,
    MessageKind,
    OnCallShift,
    Patient,
    StaffRole,
    StaffUser,
)
from pro_service.services import audit
from pro_service.services.staff_inbound import may_acknowledge

BREAK_GLASS_MINUTES = 30
BREAK_GLASS_MIN_REASON = 10
BREAK_GLASS_MAX_REASON = 500
_ACTIVE = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
S = TypeVar("S", bound=Select[Any])


@dataclass(frozen=True)
class Scope:
    """What one actor may see. `team_ids` None: every patient (nothing else is consulted)."""

    team_ids: frozenset[int] | None
    # Opened by a reasoned break-glass (the session's live grants); never widens a list, only one record.
    break_glass: frozenset[int] = frozenset()

    @property
    def everything(self) -> bool:
        return self.team_ids is None

    def in_scope(self, patient_id: int, team_id: int) -> bool:
        """Without break-glass."""
        return self.team_ids is None or team_id in self.team_ids

    def allows(self, patient_id: int, team_id: int) -> bool:
        return self.in_scope(patient_id, team_id) or patient_id in self.break_glass

    def by_break_glass(self, patient_id: int, team_id: int) -> bool:
        """Seen only thanks to a break-glass grant: every such view is audited `break_glass: true`."""
        return not self.in_scope(patient_id, team_id) and patient_id in self.break_glass


EVERYTHING = Scope(team_ids=None)


def visible_team_ids(session: Session, actor: StaffUser, now: datetime) -> frozenset[int] | None:
    """The care teams whose patients `actor` sees; None for all (administrators). One query."""
    if actor.role in (StaffRole.ADMIN, StaffRole.INTEGRATION):
        return None
    if not actor.active:
        return frozenset()
    members = select(CareTeamMember.care_team_id).where(CareTeamMember.staff_id == actor.id)
    on_call = select(OnCallShift.care_team_id).where(
        OnCallShift.staff_id == actor.id, OnCallShift.starts_at <= now, OnCallShift.ends_at > now
    )
    return frozenset(int(t) for t in session.scalars(union(members, on_call)))


def paged_for_patient(session: Session, staff: StaffUser, patient_id: int) -> bool:
    """`staff` was paged for an active alert of this patient: the same "paged" notion as an SMS `ACK`
    (`staff_inbound.may_acknowledge`: a page message to them for the alert). Asked only for a record outside
    the scope: messages have no index on the alert or the staff member, so it is kept off the lists."""
    paged = (
        select(Message.id)
        .join(Alert, Alert.id == Message.alert_id)
        .where(
            Alert.patient_id == patient_id,
            Alert.status.in_(_ACTIVE),
            Message.kind == MessageKind.PAGE,
            Message.staff_id == staff.id,
        )
        .exists()
    )
    return bool(session.scalar(select(paged)))


def scope_for_staff(
    session: Session, staff: StaffUser, now: datetime, break_glass: Mapping[int, float] | None = None
) -> Scope:
    teams = visible_team_ids(session, staff, now)
    if teams is None:
        return EVERYTHING
    return Scope(teams, frozenset(active_grants(break_glass or {}, now)))


def scope_for_token(session: Session, token: ApiToken, now: datetime) -> Scope:
    """A person's token: the person's scope now (no break-glass). A client's token: every patient (its
    scopes, checked per route, say what it may do with them)."""
    if token.staff is not None:
        return scope_for_staff(session, token.staff, now)
    return EVERYTHING


def can_see_patient(session: Session, staff: StaffUser | None, scope: Scope, patient: Patient) -> bool:
    """In scope, opened by break-glass, or (a nurse) paged for one of the patient's active alerts."""
    if scope.allows(patient.id, patient.care_team_id):
        return True
    return staff is not None and paged_for_patient(session, staff, patient.id)


def can_act_on_alert(session: Session, staff: StaffUser, scope: Scope, alert: Alert, team_id: int) -> bool:
    """In scope (or break-glass) for the patient, or allowed to ACK it by SMS (paged for it, on call when it
    opened): the dashboard never refuses what a text message from the same nurse may do."""
    return scope.allows(alert.patient_id, team_id) or may_acknowledge(session, staff, alert)


def patient_clause(
    scope: Scope,
    patient_id: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    team_id: InstrumentedAttribute[int] | None = None,
) -> ColumnElement[bool] | None:
    """The WHERE that keeps a list to `scope` (None: no restriction). `team_id`: the patient's care team
    column when the query already joins patients; otherwise a subquery on patients by team (indexed)."""
    if scope.team_ids is None:
        return None
    teams = sorted(scope.team_ids)
    if not teams:
        return false()
    if team_id is not None:
        return team_id.in_(teams)
    return patient_id.in_(select(Patient.id).where(Patient.care_team_id.in_(teams)))


def scoped(
    stmt: S,
    scope: Scope,
    patient_id: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    team_id: InstrumentedAttribute[int] | None = None,
) -> S:
    """`stmt` restricted to the patients `scope` lists (patients, alerts, check-ins, messages, labs)."""
    clause = patient_clause(scope, patient_id, team_id)
    return stmt if clause is None else stmt.where(clause)


# --- break-glass grants (kept in the signed session: patient ids and expiry times, nothing else) -----


def active_grants(grants: Mapping[int, float], now: datetime) -> dict[int, float]:
    """The grants that have not expired (`grants`: patient id → POSIX expiry)."""
    stamp = now.timestamp()
    return {pid: until for pid, until in grants.items() if until > stamp}


def grant(grants: Mapping[int, float], patient_id: int, now: datetime) -> dict[int, float]:
    """`grants` plus one patient for `BREAK_GLASS_MINUTES` from `now` (expired ones dropped)."""
    out = active_grants(grants, now)
    out[patient_id] = (now + timedelta(minutes=BREAK_GLASS_MINUTES)).timestamp()
    return out


def reason_problem(reason: str) -> str | None:
    """Why a break-glass reason is refused, or None."""
    if len(reason) < BREAK_GLASS_MIN_REASON:
        return f"Give a reason of at least {BREAK_GLASS_MIN_REASON} characters."
    if len(reason) > BREAK_GLASS_MAX_REASON:
        return f"Keep the reason under {BREAK_GLASS_MAX_REASON} characters."
    return None


def record_refusal(
    session: Session,
    *,
    actor: str,
    patient_id: int,
    alert_id: int | None,
    ip: str | None,
    now: datetime,
) -> None:
    """Audit a record refused as outside the staff member's scope. The refusal answers 403 (or 400 for a
    bad break-glass reason), which rolls the request back, so this use case commits its own row; the
    caller has written nothing else (a refusal comes before any change)."""
    audit.record_kept(
        session,
        actor=actor,
        action="scope_refused",
        subject=("patient", patient_id),
        patient_id=patient_id,
        detail={"alert_id": alert_id},
        ip=ip,
        at=now,
    )
