"""What an API view knows about its request: the actor behind the token, the patients it may see, the
audit row of a read, and the lookups that answer 404/403 alike for every resource."""

from __future__ import annotations

from typing import Any

from flask import g, request
from sqlalchemy import Select, select

from pro_service.db import ROW_LOCK
from pro_service.models import Alert, ApiToken, Patient
from pro_service.services import access, clinical_profile, tokens
from pro_service.services.errors import Invalid, NotFound
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.routing import ApiError
from pro_service.web.common import audit_request, db, runtime


def actor() -> str:
    """`staff:12 (token 7)` or `client:EHR-interface (token 7)`: the person or client behind the request."""
    token: ApiToken = g.api_token
    return tokens.actor_label(token)


def acting_staff_id() -> int | None:
    """The person behind the request's token (alert events name them); None for a client."""
    token: ApiToken = g.api_token
    return token.staff_id


def audit(action: str, subject: tuple[str, object], patient_id: int | None, **detail: Any) -> None:
    audit_request(actor(), action, subject, patient_id, detail)


def patient_scope() -> access.Scope:
    """The patients this request's token may see (services/access.py): a person's token, what the person
    sees on the dashboard now; a client's token, every patient."""
    token: ApiToken = g.api_token
    return access.scope_for_token(db(), token, runtime().now())


def check_patient(scope: access.Scope, patient_id: int | None) -> None:
    """403 when `patient_id` is outside `scope` (nothing is read when the scope is everything). As on the
    dashboard, a nurse also opens the record of a patient whose active alert paged them."""
    if scope.everything or patient_id is None:
        return
    team_id = db().scalar(select(Patient.care_team_id).where(Patient.id == patient_id))
    if team_id is None or scope.allows(patient_id, team_id):
        return
    token: ApiToken = g.api_token
    if token.staff is not None and access.paged_for_patient(db(), token.staff, patient_id):
        return
    raise ApiError(403, "forbidden", f"patient {patient_id} is outside the care teams of this token's owner")


def load_patient(patient_id: int, *, lock: bool = False) -> Patient:
    scope = patient_scope()  # before the read: a refused token learns nothing, not even a 404
    patient: Patient = get_or_404(Patient, patient_id, "patient", lock=lock)
    check_patient(scope, patient.id)
    return patient


def load_alert(alert_id: int, *, lock: bool = False) -> Alert:
    scope = patient_scope()
    alert: Alert = get_or_404(Alert, alert_id, "alert", lock=lock)
    check_patient(scope, alert.patient_id)
    return alert


def get_or_404(model: type[Any], ident: int, what: str, *, lock: bool = False) -> Any:
    row = db().get(model, ident, with_for_update=ROW_LOCK if lock else None)
    if row is None:
        raise NotFound(what, ident)
    return row


def invalid(field: str, message: str) -> Invalid:
    """A value the view itself refuses, answered as every service's Invalid is (400, at `field`)."""
    return Invalid(field, message)


def save_profile(patient_id: int, data: s.ProfileIn | None) -> list[str]:
    """The sent profile fields through the service (validated, audited); a bad value is a 400 naming
    the field as `profile.<name>`."""
    if data is None:
        return []
    try:
        return clinical_profile.update_profile(
            db(),
            patient_id,
            data.model_dump(exclude_unset=True),
            actor=actor(),
            staff_id=acting_staff_id(),
            now=runtime().now(),
            ip=request.remote_addr,
        )
    except clinical_profile.ProfileError as exc:  # nested in the body: named as the API sends it
        raise invalid(f"profile.{exc.field}", exc.message) from None


def patient_out(patient: Patient) -> s.PatientOut:
    return serialize.patient(patient, clinical_profile.get_profile(db(), patient.id))


def page_of(query: Select[Any], page: s.Page) -> tuple[list[Any], bool]:
    rows = list(db().scalars(query.offset((page.page - 1) * page.page_size).limit(page.page_size + 1)))
    return rows[: page.page_size], len(rows) > page.page_size
