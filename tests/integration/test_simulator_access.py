"""Issue 15, item 11: the patient-phone simulator lets its user read a patient's thread and text as them.
Administrators may (every patient); nurses only with SIMULATOR_FOR_NURSES (on by default only for the embedded
default), and then only for the patients of their own care teams: another team's patient is neither listed
nor readable nor spoken for (the same scoping as the dashboard, services/access.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import AuditLog, Direction, Message, StaffRole
from tests.browser.support import csrf_token, login, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration


@pytest.fixture
def nurses_app(settings: Any) -> Iterator[Any]:
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox", "SIMULATOR_FOR_NURSES": True}))
    app.testing = True
    yield app
    runtime_of(app).dispose()


def _inbound_bodies(rt: Any) -> list[str]:
    with rt.sessions() as session:
        query = select(Message.body).where(Message.direction == Direction.INBOUND).order_by(Message.id)
        return [str(body) for body in session.scalars(query)]


def test_a_nurse_speaks_only_for_the_patients_of_her_own_teams(nurses_app: Any, rt: Any) -> None:
    ward_a = make_team(rt, "Ward A")
    mine = make_patient(rt, ward_a, phone="+15551230001", mrn="MRN-OURS")
    theirs = make_patient(rt, make_team(rt, "Ward B"), phone="+15551230002", mrn="MRN-THEIRS")
    make_staff(rt, email="kim@example.org", team_id=ward_a)
    nurse = nurses_app.test_client()
    login(nurse, "kim@example.org")

    page = nurse.get("/simulator/").get_data(as_text=True)
    assert "MRN-OURS" in page and "MRN-THEIRS" not in page
    asked = nurse.get(f"/simulator/?patient={theirs}").get_data(as_text=True)
    assert "MRN-THEIRS" not in asked and "+15551230002" not in asked  # falls back to her own patient
    assert nurse.get(f"/simulator/{theirs}/thread").status_code == 404
    token = csrf_token(nurse, "/simulator/")
    refused = nurse.post(f"/simulator/{theirs}/reply", data={"csrf_token": token, "body": "STOP"})
    assert refused.status_code == 404
    assert _inbound_bodies(rt) == []  # nobody spoke in the other team's patient's name

    assert nurse.get(f"/simulator/{mine}/thread").status_code == 200
    spoken = nurse.post(f"/simulator/{mine}/reply", data={"csrf_token": token, "body": "7"})
    assert spoken.status_code == 302
    assert _inbound_bodies(rt) == ["7"]


def test_an_administrator_speaks_for_every_patient(nurses_app: Any, rt: Any) -> None:
    make_patient(rt, make_team(rt, "Ward A"), phone="+15551230001", mrn="MRN-A")
    other = make_patient(rt, make_team(rt, "Ward B"), phone="+15551230002", mrn="MRN-B")
    make_staff(rt, email="admin@example.org", role=StaffRole.ADMIN)
    admin = nurses_app.test_client()
    login(admin, "admin@example.org")
    page = admin.get("/simulator/").get_data(as_text=True)
    assert "MRN-A" in page and "MRN-B" in page
    token = csrf_token(admin, "/simulator/")
    assert admin.post(f"/simulator/{other}/reply", data={"csrf_token": token, "body": "3"}).status_code == 302
    assert _inbound_bodies(rt) == ["3"]


def _audit_rows(rt: Any) -> int:
    with rt.sessions() as session:
        return len(session.scalars(select(AuditLog.id)).all())


def test_a_refused_reply_writes_nothing(nurses_app: Any, rt: Any) -> None:
    """Issue 13: a reply refused (another team's patient: 404) is rolled back with its request: no message,
    no audit row of the attempt."""
    ward_a = make_team(rt, "Ward A")
    make_patient(rt, ward_a, phone="+15551230001", mrn="MRN-OURS")
    theirs = make_patient(rt, make_team(rt, "Ward B"), phone="+15551230002", mrn="MRN-THEIRS")
    make_staff(rt, email="kim@example.org", team_id=ward_a)
    nurse = nurses_app.test_client()
    login(nurse, "kim@example.org")
    token = csrf_token(nurse, "/simulator/")
    before = _audit_rows(rt)
    refused = nurse.post(f"/simulator/{theirs}/reply", data={"csrf_token": token, "body": "NURSE"})
    assert refused.status_code == 404
    assert _inbound_bodies(rt) == [] and _audit_rows(rt) == before
