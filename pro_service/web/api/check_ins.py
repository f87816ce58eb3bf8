"""Check-ins, questionnaires and red-flag rulesets."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import CheckIn
from pro_service.services import access, tokens
from pro_service.services.check_ins import start_now
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import (
    actor,
    audit,
    check_patient,
    get_or_404,
    load_patient,
    page_of,
    patient_scope,
)
from pro_service.web.api.routing import route
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed


@route(
    "POST",
    "/patients/<int:patient_id>/check-ins",
    summary="Start a check-in now",
    scope=tokens.ENROLMENT,
    tag="check-ins",
    body=s.CheckInIn,
    response=s.CheckInOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 404, 409),
)
def start_check_in(patient_id: int, data: s.CheckInIn) -> s.CheckInOut:
    patient = load_patient(patient_id, lock=True)
    # An unknown questionnaire is a 404, a patient who cannot take one now a 409 (the blueprint's mapping).
    check_in = start_now(db(), runtime(), patient, data.instrument)
    audit("start_check_in", ("check_in", check_in.id), patient.id)
    return serialize.check_in(check_in)


@route(
    "GET",
    "/check-ins",
    summary="List check-ins",
    tag="check-ins",
    query=s.CheckInQuery,
    response=s.CheckInList,
    errors=(400, 401, 403),
)
def list_check_ins(query: s.CheckInQuery) -> s.CheckInList:
    stmt = access.scoped(select(CheckIn), patient_scope(), CheckIn.patient_id).order_by(CheckIn.id.desc())
    if query.patient_id:
        stmt = stmt.where(CheckIn.patient_id == query.patient_id)
    if query.status:
        stmt = stmt.where(CheckIn.status == query.status)
    rows, more = page_of(stmt, query)
    audit("list_check_ins", ("check_in", None), query.patient_id)
    disclosed(actor(), "api_check_ins", (c.patient_id for c in rows))
    return s.CheckInList(
        check_ins=[serialize.check_in(c) for c in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


@route(
    "GET",
    "/check-ins/<int:check_in_id>",
    summary="A check-in with its answers",
    tag="check-ins",
    response=s.CheckInOut,
)
def get_check_in(check_in_id: int) -> s.CheckInOut:
    scope = patient_scope()
    check_in: CheckIn = get_or_404(CheckIn, check_in_id, "check-in")
    check_patient(scope, check_in.patient_id)
    audit("view_check_in", ("check_in", check_in.id), check_in.patient_id)
    return serialize.check_in(check_in)


@route(
    "GET",
    "/instruments",
    summary="Questionnaires and their versions",
    tag="check-ins",
    response=s.InstrumentList,
    errors=(401, 403),
)
def list_instruments() -> s.InstrumentList:
    rt = runtime()
    registry = rt.instruments
    return s.InstrumentList(
        instruments=[
            serialize.instrument(i, rt.instrument_for(None, i.code))
            for _key, i in sorted(registry.by_key.items())
        ]
    )


@route(
    "GET",
    "/rulesets",
    summary="Red-flag rulesets, their versions, and which is active",
    tag="check-ins",
    response=s.RulesetList,
    errors=(401, 403),
)
def list_rulesets() -> s.RulesetList:
    active = runtime().enrolment_ruleset
    return s.RulesetList(rulesets=[serialize.ruleset(r, r is active) for r in runtime().rulesets.values()])
