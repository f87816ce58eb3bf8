"""A patient's message timeline and the audit log."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import AuditLog, Message
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import actor, audit, check_patient, page_of, patient_scope
from pro_service.web.api.routing import ADMIN, route
from pro_service.web.disclosure import disclosed


@route(
    "GET",
    "/messages",
    summary="A patient's message timeline, newest first",
    tag="messages",
    query=s.MessageQuery,
    response=s.MessageList,
    errors=(400, 401, 403),
)
def list_messages(query: s.MessageQuery) -> s.MessageList:
    check_patient(patient_scope(), query.patient_id)
    stmt = select(Message).where(Message.patient_id == query.patient_id).order_by(Message.id.desc())
    rows, more = page_of(stmt, query)
    audit("view_messages", ("patient", query.patient_id), query.patient_id)
    return s.MessageList(
        messages=[serialize.message(m) for m in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


@route(
    "GET",
    "/audit",
    summary="The audit log, newest first",
    roles=ADMIN,
    tag="audit",
    query=s.AuditQuery,
    response=s.AuditList,
    errors=(400, 401, 403),
)
def list_audit(query: s.AuditQuery) -> s.AuditList:
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if query.patient_id:
        stmt = stmt.where(AuditLog.patient_id == query.patient_id)
    if query.actor:
        stmt = stmt.where(AuditLog.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditLog.action == query.action)
    rows, more = page_of(stmt, query)
    disclosed(actor(), "api_audit", (r.patient_id for r in rows))  # who saw whom is itself disclosed
    return s.AuditList(
        entries=[s.AuditOut.model_validate(r) for r in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )
