"""Builders shared by the dashboard tests (integration and browser): staff, sign-in, alerts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pro_service.models import Alert, AlertEvent, AlertEventKind, AlertStatus, CareTeamMember, StaffRole
from pro_service.services.staff import create_staff
from pro_service.services.triage import new_ref

PASSWORD = "correct horse battery staple"
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
    with rt.unit_of_work() as session:
        staff = create_staff(session, email=email, name=name, role=role, phone=phone, password=PASSWORD)
        if team_id is not None:
            session.add(CareTeamMember(care_team_id=team_id, staff_id=staff.id))
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
    rank = {"urgent": 3, "same_day": 2, "routine": 1}[urgency]
    opened = datetime.now(tz=rt.now().tzinfo) - timedelta(minutes=opened_minutes_ago)
    with rt.unit_of_work() as session:
        alert = Alert(
            ref=ref or new_ref(),
            patient_id=patient_id,
            category=category,
            urgency=urgency,
            urgency_rank=rank,
            status=status,
            ruleset="sre",
            ruleset_version=1,
            rule_ids=["scc-neuro-or-bladder"],
            evidence=[
                {
                    "item_code": "neuro",
                    "question": "6/9 Any NEW weakness, numbness or tingling in arms or legs? Reply YES or NO",
                    "raw_text": "yes my legs are numb",
                    "value": True,
                    "rule_id": "scc-neuro-or-bladder",
                    "ruleset": "sre",
                    "ruleset_version": 1,
                    "check_in_id": None,
                    "message_id": None,
                }
            ],
            opened_at=opened,
            updated_at=opened,
        )
        session.add(alert)
        session.flush()
        session.add(AlertEvent(alert_id=alert.id, kind=AlertEventKind.OPENED, created_at=opened, detail={}))
        return int(alert.id)
