"""Lab results."""

from __future__ import annotations

from pro_service.services import labs
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import audit, check_patient, patient_scope
from pro_service.web.api.routing import route
from pro_service.web.common import db


@route(
    "GET",
    "/patients/<int:patient_id>/labs",
    summary="A patient's lab results, newest sample first (values in canonical units)",
    tag="labs",
    query=s.LabQuery,
    response=s.LabList,
)
def list_labs(patient_id: int, query: s.LabQuery) -> s.LabList:
    check_patient(patient_scope(), patient_id)
    rows, more = labs.patient_labs(
        db(),
        patient_id,
        code=query.code,
        since=query.since,
        history=query.history,
        offset=(query.page - 1) * query.page_size,
        limit=query.page_size,
    )
    audit("view_labs", ("patient", patient_id), patient_id, count=len(rows))
    return s.LabList(
        patient_id=patient_id,
        labs=[serialize.lab(r) for r in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )
