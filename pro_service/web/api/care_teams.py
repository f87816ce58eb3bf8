"""Care teams, their members and the on-call rota."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import CareTeam, CareTeamMember, OnCallShift, StaffUser
from pro_service.services import admin, admin_removals
from pro_service.services.errors import Conflict
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import audit, get_or_404, invalid
from pro_service.web.api.routing import ADMIN, ApiError, route
from pro_service.web.common import db, runtime


@route(
    "POST",
    "/care-teams",
    summary="Create a care team",
    roles=ADMIN,
    tag="care teams",
    body=s.CareTeamIn,
    response=s.CareTeamOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 409),
)
def create_team(data: s.CareTeamIn) -> s.CareTeamOut:
    team = admin.save_care_team(
        db(),
        None,
        name=data.name,
        timezone=data.timezone,
        phone=data.phone,
        acute_oncology_phone=data.acute_oncology_phone,
    )
    audit("create_care_team", ("care_team", team.id), None)
    return serialize.care_team(team)


@route(
    "GET",
    "/care-teams",
    summary="List care teams",
    tag="care teams",
    response=s.CareTeamList,
    errors=(401, 403),
)
def list_teams() -> s.CareTeamList:
    teams = db().scalars(select(CareTeam).order_by(CareTeam.id)).all()
    return s.CareTeamList(care_teams=[serialize.care_team(t) for t in teams])


@route(
    "GET",
    "/care-teams/<int:team_id>/members",
    summary="Members of a care team",
    tag="care teams",
    response=s.StaffList,
)
def list_members(team_id: int) -> s.StaffList:
    get_or_404(CareTeam, team_id, "care team")
    staff = (
        db()
        .scalars(
            select(StaffUser)
            .join(CareTeamMember, CareTeamMember.staff_id == StaffUser.id)
            .where(CareTeamMember.care_team_id == team_id)
            .order_by(StaffUser.id)
        )
        .all()
    )
    return s.StaffList(staff=[serialize.staff(m) for m in staff])


@route(
    "POST",
    "/care-teams/<int:team_id>/members",
    summary="Add a member to a care team",
    roles=ADMIN,
    tag="care teams",
    body=s.MemberIn,
    status=204,
    errors=(401, 403, 404),
)
def add_member(team_id: int, data: s.MemberIn) -> None:
    get_or_404(CareTeam, team_id, "care team")
    get_or_404(StaffUser, data.staff_id, "staff member")
    admin.add_member(db(), team_id, data.staff_id)
    audit("add_team_member", ("care_team", team_id), None, staff_id=data.staff_id)


@route(
    "DELETE",
    "/care-teams/<int:team_id>/members/<int:staff_id>",
    summary="Remove a member",
    roles=ADMIN,
    tag="care teams",
    query=s.MemberRemovalQuery,
    status=204,
    errors=(400, 401, 403, 404, 409),
)
def remove_member(team_id: int, staff_id: int, query: s.MemberRemovalQuery) -> None:
    # As on the admin page: someone still on the team's rota is removed only when the caller confirms
    # (`end_shifts=true`), and then leaves the rota too (nobody is paged for a team they left). Without
    # it, a 409: a rota sync must not empty tonight's on-call level by accident.
    try:
        removed = admin.remove_member(
            db(), team_id, staff_id, now=runtime().now(), confirmed=query.end_shifts
        )
    except admin.NeedsConfirmation as exc:
        raise Conflict(f"{exc.message}; send end_shifts=true to end their shifts too") from None
    if not removed.member:
        raise ApiError(404, "not_found", f"staff {staff_id} is not a member of care team {team_id}")
    audit(
        "remove_team_member",
        ("care_team", team_id),
        None,
        staff_id=staff_id,
        shifts_removed=removed.shifts_removed,
        shifts_ended=removed.shifts_ended,
    )


@route(
    "GET",
    "/care-teams/<int:team_id>/on-call",
    summary="On-call rota of a care team",
    tag="care teams",
    response=s.ShiftList,
)
def list_shifts(team_id: int) -> s.ShiftList:
    get_or_404(CareTeam, team_id, "care team")
    rows = (
        db()
        .scalars(
            select(OnCallShift)
            .where(OnCallShift.care_team_id == team_id)
            .order_by(OnCallShift.starts_at, OnCallShift.level)
        )
        .all()
    )
    return s.ShiftList(shifts=[serialize.shift(r) for r in rows])


@route(
    "POST",
    "/care-teams/<int:team_id>/on-call",
    summary="Add an on-call shift",
    roles=ADMIN,
    tag="care teams",
    body=s.ShiftIn,
    response=s.ShiftOut,
    status=201,
    idempotent=True,
)
def add_shift(team_id: int, data: s.ShiftIn) -> s.ShiftOut:
    team: CareTeam = get_or_404(CareTeam, team_id, "care team")
    get_or_404(StaffUser, data.staff_id, "staff member")
    if data.starts_at.tzinfo is None or data.ends_at.tzinfo is None:
        raise invalid("starts_at", "give times with a UTC offset, e.g. 2026-12-01T08:00:00-05:00")
    shift = admin.create_shift(
        db(), team, staff_id=data.staff_id, level=data.level, starts_at=data.starts_at, ends_at=data.ends_at
    )
    audit("add_on_call_shift", ("care_team", team_id), None, shift_id=shift.id)
    return serialize.shift(shift)


@route(
    "DELETE",
    "/care-teams/<int:team_id>/on-call/<int:shift_id>",
    summary="Remove an on-call shift",
    roles=ADMIN,
    tag="care teams",
    status=204,
)
def remove_shift(team_id: int, shift_id: int) -> None:
    admin_removals.delete_shift(db(), admin.team_shift(db(), team_id, shift_id))
    audit("remove_on_call_shift", ("care_team", team_id), None, shift_id=shift_id)
