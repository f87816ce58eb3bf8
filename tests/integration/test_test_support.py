"""The test support the suite relies on: a rolled-back test commits nothing, factories build what triage and
the services would, and parallel test processes never share a Redis db."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import Alert, AlertEventKind, CareTeam, CareTeamMember, Patient, StaffUser
from pro_service.services import triage
from pro_service.services.patients import enrol_patient, normalise_phone
from tests.browser.support import csrf_token, login
from testsupport import factories, redis_dbs
from testsupport.database import rolled_back
from testsupport.waiting import wait_for

pytestmark = pytest.mark.integration


def _committed(rt: Any, model: Any) -> int:
    """Rows another connection sees: what was committed."""
    with rt.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def test_nothing_written_inside_rolled_back_is_committed_and_the_runtime_is_restored(rt: Any) -> None:
    sessions = rt.sessions
    with rolled_back(rt):
        with rt.unit_of_work() as session, factories.rows(session):
            team = factories.CareTeamFactory.create()
            factories.PatientFactory.create(care_team_id=team.id)
        with rt.unit_of_work() as session:  # the unit of work's commit released a savepoint: still visible
            assert session.scalar(select(func.count()).select_from(Patient)) == 1
        assert _committed(rt, Patient) == 0
    assert rt.sessions is sessions
    with rt.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_a_unit_of_work_that_fails_inside_rolled_back_returns_to_its_savepoint(rt: Any) -> None:
    with rolled_back(rt):
        with rt.unit_of_work() as session, factories.rows(session):
            team_id = factories.CareTeamFactory.create().id
        with pytest.raises(RuntimeError, match="the use case failed"):
            _enrol_then_fail(rt, team_id)
        with rt.unit_of_work() as session:
            assert session.scalar(select(func.count()).select_from(Patient)) == 0
            assert session.get(CareTeam, team_id) is not None  # the earlier unit of work's rows stay


def _enrol_then_fail(rt: Any, team_id: int) -> None:
    with rt.unit_of_work() as session, factories.rows(session):
        factories.PatientFactory.create(care_team_id=team_id)
        raise RuntimeError("the use case failed")


@pytest.mark.rolled_back
def test_a_rolled_back_test_sees_its_requests_and_commits_nothing(rt: Any, client: Any) -> None:
    staff_id = factories_staff(rt)
    login(client, "rolled@example.org")  # the request's unit of work commits: a savepoint here
    with rt.unit_of_work() as session:
        assert session.get(StaffUser, staff_id) is not None
    assert _committed(rt, StaffUser) == 0


def factories_staff(rt: Any) -> int:
    with rt.unit_of_work() as session, factories.rows(session):
        return int(factories.StaffFactory.create(email="rolled@example.org").id)


def test_factory_rows_are_what_the_services_write(unheard_rt: Any) -> None:
    rt = unheard_rt  # triage publishes the page after commit: to a Redis db no worker listens to
    finding = Finding(
        category="spinal_cord_compression",
        urgency=Urgency.SAME_DAY,
        rule_id="scc-neuro-or-bladder",
        rationale="r",
        ruleset="sre",
        ruleset_version=1,
        evidence=(Evidence(item_code="neuro", question="q", raw_text="my legs are numb", value=True),),
    )
    with rolled_back(rt), rt.unit_of_work() as session, factories.rows(session):
        team = factories.CareTeamFactory.create()
        nurse = factories.StaffFactory.create(teams=[team.id])
        assert session.get(CareTeamMember, (team.id, nurse.id)) is not None
        made = factories.PatientFactory.create(care_team_id=team.id)
        enrolled = enrol_patient(
            session,
            mrn="MRN-SERVICE",
            given_name="Ana",
            family_name="Lopez",
            phone="+12025550199",
            timezone="America/New_York",
            language="en",
            care_team_id=team.id,
        )
        for column in ("status", "sms_consent", "language", "timezone", "care_team_id", "ruleset_version"):
            assert getattr(made, column) == getattr(enrolled, column), column
        assert made.phone == normalise_phone(made.phone) and made.consent_at is not None

        triaged = triage.upsert_alert(session, rt, enrolled.id, finding)
        built = factories.AlertFactory.create(patient_id=made.id, urgency=Urgency.SAME_DAY.value)
        session.flush()
        session.expire_all()
        assert triaged is not None
        triaged, built = session.get_one(Alert, triaged.id), session.get_one(Alert, built.id)
        for column in ("urgency", "urgency_rank", "status", "category", "notice"):  # before paging
            assert getattr(built, column) == getattr(triaged, column), column
        assert set(built.evidence[0]) == set(triaged.evidence[0])  # the same keys the pages read
        assert (
            [e.kind for e in built.events] == [e.kind for e in triaged.events][:1] == [AlertEventKind.OPENED]
        )


@pytest.mark.rolled_back
def test_tasks_published_after_a_rolled_back_unit_of_work_commits_reach_the_broker(
    unheard_rt: Any, unheard_redis_url: str
) -> None:
    queue_name = f"probe-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(unheard_redis_url)
    try:
        with unheard_rt.unit_of_work() as session:
            session.execute(select(1))
            unheard_rt.tasks.after_commit(session, "pro.probe", 1, queue_name=queue_name)
        wait_for(lambda: client.llen(queue_name) == 1, timeout=5, message="the task to be published")
    finally:
        client.delete(queue_name)
        client.close()


def test_factories_refuse_to_run_without_a_session() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        factories.CareTeamFactory.create()


def test_a_factory_made_nurse_signs_in_with_the_real_password_check(app: Any, rt: Any, client: Any) -> None:
    with rt.unit_of_work() as session, factories.rows(session):
        factories.StaffFactory.create(email="kim@example.org")
    login(client, "kim@example.org")  # the argon2 verification the product runs, on a cheap hash
    fresh = app.test_client()
    bad = fresh.post(
        "/login", data={"csrf_token": csrf_token(fresh), "email": "kim@example.org", "password": "wrong"}
    )
    assert bad.status_code == 401


def test_two_test_processes_never_share_a_redis_db(redis_url: str, unheard_redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    with redis_dbs.claimed(base, 2) as others:
        assert not {redis_url, unheard_redis_url} & set(others)
    for url in others:  # given back
        assert _claim_of(url) is None
    assert _claim_of(redis_url) is not None  # ours still held


def test_a_claim_whose_holder_died_is_taken_over_and_a_live_one_is_not(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    host = socket.gethostname()
    with redis_dbs.claimed(base, 1) as [url]:
        client = redis.Redis.from_url(url)
        namespace = os.readlink("/proc/self/ns/pid")
        ours = redis_dbs._holder()
        try:
            client.set(redis_dbs.CLAIM_KEY, f"{host}|{namespace}|1", ex=60)  # pid 1 is alive
            assert not redis_dbs._try_claim(client, ours)
            client.set(redis_dbs.CLAIM_KEY, f"{host}|other-namespace|{2**22 + 1}", ex=60)  # not ours to judge
            assert not redis_dbs._try_claim(client, ours)
            client.set(redis_dbs.CLAIM_KEY, f"{host}|{namespace}|{2**22 + 1}", ex=60)  # above any pid: dead
            assert redis_dbs._try_claim(client, ours)
            assert client.get(redis_dbs.CLAIM_KEY) == ours.encode()
        finally:
            client.set(redis_dbs.CLAIM_KEY, ours, ex=redis_dbs.CLAIM_SECONDS)  # ours again, released on exit
            client.close()


def _claim_of(url: str) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        return client.get(redis_dbs.CLAIM_KEY)  # type: ignore[return-value]
    finally:
        client.close()
