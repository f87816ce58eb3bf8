"""Small builders for integration tests: enrolment through the real services, staff from the row factories."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlencode

from pro_service.models import CareTeam, Patient, StaffUser
from pro_service.services.admin import save_care_team
from pro_service.services.patients import enrol_patient
from testsupport import factories


def make_team(rt: Any, name: str = "Breast oncology", timezone: str = "America/New_York") -> int:
    with rt.unit_of_work() as session:
        team: CareTeam = save_care_team(session, None, name=name, timezone=timezone, phone="+1 555 0100")
        return team.id


def make_patient(
    rt: Any,
    team_id: int,
    *,
    phone: str = "+15551230001",
    mrn: str = "MRN001",
    language: str = "en",
    timezone: str = "America/New_York",
) -> int:
    with rt.unit_of_work() as session:
        patient: Patient = enrol_patient(
            session,
            mrn=mrn,
            given_name="Ana",
            family_name="Lopez",
            phone=phone,
            timezone=timezone,
            language=language,
            care_team_id=team_id,
        )
        return patient.id


def make_nurse(
    rt: Any, team_id: int, *, email: str = "nurse@example.org", phone: str = "+15557770001"
) -> int:
    """A nurse of `team_id` with a pager phone (a factory row; the password is factories.PASSWORD)."""
    with rt.unit_of_work() as session, factories.rows(session):
        staff: StaffUser = factories.StaffFactory.create(email=email, phone=phone, teams=[team_id])
        return staff.id


def signed_sms_environ(signer: Any, params: dict[str, str], *, chunked: bool = False) -> dict[str, Any]:
    """A WSGI environ for a Twilio-signed POST /twilio/sms, as gunicorn passes it (`chunked`: no
    CONTENT_LENGTH, the input marked terminated)."""
    body = urlencode(params).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/twilio/sms",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_X_TWILIO_SIGNATURE": signer.headers("/twilio/sms", params)["X-Twilio-Signature"],
        "wsgi.input": io.BytesIO(body),
    }
    if chunked:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    """The status line and body the app's WSGI callable answers."""
    statuses: list[str] = []
    body = b"".join(app.wsgi_app(environ, lambda status, _headers: statuses.append(status)))
    return statuses[0], body


def make_ward(rt: Any) -> dict[str, int]:
    """Two care teams with a patient each: `team`, `other_team`, `p1` (of team), `p2` (of other_team). The
    dashboard tests add the staff they need."""
    team = make_team(rt)
    other_team = make_team(rt, name="Palliative care", timezone="America/Chicago")
    return {
        "team": team,
        "other_team": other_team,
        "p1": make_patient(rt, team, phone="+15551230001", mrn="MRN001"),
        "p2": make_patient(rt, other_team, phone="+15551230002", mrn="MRN002"),
    }
