"""Row factories (factory_boy) for the setting of a test: the rows it needs but does not test.

A use case under test goes through its service (enrolment validates, create_staff hashes with the product's
argon2 cost); the rows around it come from here, fast and with only what a test names:

    with rt.unit_of_work() as session, factories.rows(session):
        nurse = factories.StaffFactory(email="kim@example.org", teams=[team_id])
        alert = factories.AlertFactory(patient_id=patient_id, urgency="same_day")

Factories flush (ids are set) and never commit: the unit of work that wraps them does, or the rolled-back
transaction of a test throws them away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from functools import cache
from typing import Any

import factory
from argon2 import PasswordHasher
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from alerts.rules import Urgency
from pro_service.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    CheckIn,
    CheckInStatus,
    Patient,
    StaffRole,
    StaffUser,
    utcnow,
)
from pro_service.services.triage import new_ref

PASSWORD = "correct horse battery staple"  # noqa: S105  (every factory-made staff member's, in tests)

_session: ContextVar[Session | None] = ContextVar("factory_session", default=None)


@contextmanager
def rows(session: Session) -> Iterator[Session]:
    """Factories called inside this block add their rows to `session`."""
    token = _session.set(session)
    try:
        yield session
    finally:
        _session.reset(token)


def _current_session() -> Session:
    session = _session.get()
    if session is None:
        raise RuntimeError("a factory was called outside `with factories.rows(session):`")
    return session


@cache
def password_hash(password: str = PASSWORD) -> str:
    """A real argon2id hash at the lowest cost argon2 allows: sign-in verifies it as it verifies any hash
    (the cost is read from the hash), in about a millisecond instead of a quarter of a second. The product's
    own cost is tested where passwords are the subject (create_staff, change_password, sign-in)."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


class _RowFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _current_session
        sqlalchemy_session_persistence = "flush"


class CareTeamFactory(_RowFactory):
    class Meta:
        model = CareTeam

    name = factory.Sequence(lambda n: f"Care team {n}")
    timezone = "America/New_York"
    phone = "+12025550100"


class StaffFactory(_RowFactory):
    """A staff member who can sign in with PASSWORD; `teams=[id, ...]` makes them a member of those teams."""

    class Meta:
        model = StaffUser

    email = factory.Sequence(lambda n: f"staff{n}@example.org")
    name = "Nurse Kim"
    role = StaffRole.NURSE
    phone = None
    password_hash = factory.LazyFunction(password_hash)
    teams = factory.PostGeneration(lambda staff, create, team_ids, **_: _join(staff, create, team_ids))


def _join(staff: StaffUser, create: bool, team_ids: list[int] | None) -> None:
    if create and team_ids:
        for team_id in team_ids:
            CareTeamMemberFactory.create(care_team_id=team_id, staff_id=staff.id)


class CareTeamMemberFactory(_RowFactory):
    class Meta:
        model = CareTeamMember

    care_team_id = factory.LazyFunction(lambda: CareTeamFactory.create().id)
    staff_id = factory.LazyFunction(lambda: StaffFactory.create().id)


class PatientFactory(_RowFactory):
    """An enrolled, consenting patient as enrol_patient leaves one (without its validation)."""

    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:05d}")
    given_name = "Ana"
    family_name = "Lopez"
    phone = factory.Sequence(lambda n: f"+1202555{n % 10_000:04d}")
    timezone = "America/New_York"
    language = "en"
    care_team_id = factory.LazyFunction(lambda: CareTeamFactory.create().id)
    sms_consent = True
    consent_at = factory.LazyFunction(utcnow)


class CheckInFactory(_RowFactory):
    """A check-in of the weekly SRE questionnaire, pending unless told otherwise."""

    class Meta:
        model = CheckIn

    patient_id = factory.LazyFunction(lambda: PatientFactory.create().id)
    instrument_code = "sre-weekly"
    instrument_version = 1
    status = CheckInStatus.PENDING
    scheduled_for = factory.LazyFunction(utcnow)


def _evidence(alert: Any) -> list[dict[str, Any]]:
    return [
        {
            "item_code": "neuro",
            "question": "6/9 Any NEW weakness, numbness or tingling in arms or legs? Reply YES or NO",
            "raw_text": "yes my legs are numb",
            "value": True,
            "rule_id": "scc-neuro-or-bladder",
            "ruleset": alert.ruleset,
            "ruleset_version": alert.ruleset_version,
            "check_in_id": None,
            "message_id": None,
        }
    ]


class AlertFactory(_RowFactory):
    """An alert as triage writes it (rank derived from the urgency, one piece of the patient's own words, its
    `opened` event), without paging: no task is published. `opened_minutes_ago` dates it."""

    class Meta:
        model = Alert
        exclude = ("opened_minutes_ago",)

    opened_minutes_ago = 5
    ref = factory.LazyFunction(new_ref)
    patient_id = factory.LazyFunction(lambda: PatientFactory.create().id)
    category = "spinal_cord_compression"
    urgency = Urgency.URGENT.value
    urgency_rank = factory.LazyAttribute(lambda alert: Urgency(alert.urgency).rank)
    status = AlertStatus.OPEN
    ruleset = "sre"
    ruleset_version = 1
    rule_ids = factory.LazyAttribute(lambda alert: ["scc-neuro-or-bladder"])
    evidence = factory.LazyAttribute(_evidence)
    opened_at = factory.LazyAttribute(lambda alert: utcnow() - timedelta(minutes=alert.opened_minutes_ago))
    updated_at = factory.SelfAttribute("opened_at")
    opened_event = factory.PostGeneration(lambda alert, create, *_, **__: _opened(alert, create))


def _opened(alert: Alert, create: bool) -> None:
    if create:
        AlertEventFactory.create(alert_id=alert.id, kind=AlertEventKind.OPENED, created_at=alert.opened_at)


class AlertEventFactory(_RowFactory):
    class Meta:
        model = AlertEvent

    alert_id = factory.LazyFunction(lambda: AlertFactory.create().id)
    kind = AlertEventKind.NOTE
    actor = "system"
    detail = factory.LazyFunction(dict)
    created_at = factory.LazyFunction(utcnow)
