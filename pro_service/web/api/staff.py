"""Staff accounts."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import StaffRole, StaffUser, utcnow
from pro_service.services import staff as staff_service
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import audit, get_or_404
from pro_service.web.api.routing import ADMIN, route
from pro_service.web.common import db


@route(
    "GET", "/staff", summary="List staff", roles=ADMIN, tag="staff", response=s.StaffList, errors=(401, 403)
)
def list_staff() -> s.StaffList:
    return s.StaffList(
        staff=[serialize.staff(m) for m in db().scalars(select(StaffUser).order_by(StaffUser.id))]
    )


@route(
    "POST",
    "/staff",
    summary="Create a staff account",
    roles=ADMIN,
    tag="staff",
    body=s.StaffIn,
    response=s.StaffOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 409),
)
def create_staff_member(data: s.StaffIn) -> s.StaffOut:
    staff = staff_service.create_staff(
        db(),
        email=data.email,
        name=data.name,
        role=StaffRole(data.role),
        phone=data.phone,
        password=data.password,
        # The caller (an administrator or a hospital system) knows this password: it is a temporary
        # one, replaced by its owner at first sign-in.
        must_change_password=data.password is not None,
    )
    audit("create_staff", ("staff", staff.id), None)
    return serialize.staff(staff)


@route(
    "PATCH",
    "/staff/<int:staff_id>",
    summary="Update or deactivate a staff account",
    roles=ADMIN,
    tag="staff",
    body=s.StaffPatch,
    response=s.StaffOut,
    errors=(400, 401, 403, 404, 409),
)
def update_staff(staff_id: int, data: s.StaffPatch) -> s.StaffOut:
    staff: StaffUser = get_or_404(StaffUser, staff_id, "staff member", lock=True)
    if data.name is not None:
        staff.name = data.name
    if "phone" in data.model_fields_set:
        staff.phone = staff_service.staff_phone(db(), staff, data.phone)
    if data.active is not None:
        # Through the service: deactivating ends every session of the account at once.
        staff_service.set_active(db(), staff, data.active, now=utcnow())  # sessions keep wall-clock time
    audit("update_staff", ("staff", staff.id), None, fields=sorted(data.model_fields_set))
    return serialize.staff(staff)
