"""Builders shared by the dashboard tests (integration and browser): staff, sign-in, alerts."""

from __future__ import annotations

import re
from typing import Any

from pro_service.models import AlertStatus, StaffRole
from testsupport import factories
from testsupport.factories import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_staff(
    rt: Any,
    *,
    email: str,
    role: StaffRole = StaffRole.NURSE,
    name: str = "Nurse Kim",
    phone: str | None = None,
    team_id: int | None = None,
) -> int:
    """A staff member who signs in with PASSWORD (a factory row: the argon2 cost is not what these tests
    are about), in `team_id` if given."""
    with rt.unit_of_work() as session, factories.rows(session):
        teams = [team_id] if team_id is not None else []
        staff = factories.StaffFactory.create(
            email=email.strip().lower(), role=role, name=name, phone=phone, teams=teams
        )
        return int(staff.id)


def csrf_token(client: Any, path: str = "/login") -> str:
    page = client.get(path)
    found = CSRF.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    response = client.post("/login", data={"csrf_token": token, "email": email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def insert_alert(
    rt: Any,
    patient_id: int,
    *,
    category: str = "spinal_cord_compression",
    urgency: str = "urgent",
    status: AlertStatus = AlertStatus.OPEN,
    opened_minutes_ago: int = 5,
    ref: str | None = None,
) -> int:
    """An alert row as triage would write it, without paging (no task is published)."""
    with rt.unit_of_work() as session, factories.rows(session):
        alert = factories.AlertFactory.create(
            patient_id=patient_id,
            category=category,
            urgency=urgency,
            status=status,
            opened_minutes_ago=opened_minutes_ago,
            **({"ref": ref} if ref else {}),
        )
        return int(alert.id)
