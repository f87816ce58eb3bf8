"""Demo data for the embedded default: a care team, staff, patients with a few weeks of history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from sqlalchemy import select

from pro_service.models import CareTeam, CareTeamMember, Patient, Schedule, StaffRole, StaffUser
from pro_service.runtime import Runtime
from pro_service.services.patients import create_care_team, enrol_patient
from pro_service.services.staff import create_staff
from pro_service.services.tokens import create_token

DEMO_PASSWORD = "demo-password-123"  # noqa: S105  (printed for the local demo; never a real account)
DEMO_PATIENTS = (
    ("DEMO-001", "Maria", "Garcia", "+15550101001", "America/New_York", "es"),
    ("DEMO-002", "Linda", "Smith", "+15550101002", "America/Chicago", "en"),
    ("DEMO-003", "Grace", "Okafor", "+15550101003", "America/Los_Angeles", "en"),
)


def seed(rt: Runtime) -> Iterator[str]:
    """Idempotent: a second run adds nothing and prints the same logins."""
    with rt.sessions() as session, session.begin():
        team = session.scalar(select(CareTeam).where(CareTeam.name == "Demo breast oncology"))
        if team is None:
            team = create_care_team(
                session, name="Demo breast oncology", timezone="America/New_York", phone="+15550100000"
            )
        for email, name, role, phone in (
            ("nurse@demo.local", "Demo Nurse", StaffRole.NURSE, "+15550109001"),
            ("admin@demo.local", "Demo Admin", StaffRole.ADMIN, None),
        ):
            if session.scalar(select(StaffUser).where(StaffUser.email == email)) is None:
                staff = create_staff(
                    session, email=email, name=name, role=role, phone=phone, password=DEMO_PASSWORD
                )
                session.add(CareTeamMember(care_team_id=team.id, staff_id=staff.id))
        for mrn, given, family, phone, tz, lang in DEMO_PATIENTS:
            if session.scalar(select(Patient).where(Patient.mrn == mrn)) is None:
                patient = enrol_patient(
                    session,
                    mrn=mrn,
                    given_name=given,
                    family_name=family,
                    phone=phone,
                    timezone=tz,
                    language=lang,
                    care_team_id=team.id,
                )
                session.add(
                    Schedule(
                        patient_id=patient.id,
                        instrument_code="sre-weekly",
                        rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0",
                        start_date=date.today() - timedelta(days=28),
                    )
                )
        token = create_token(session, name="demo", role=StaffRole.ADMIN)
    yield "demo data ready:"
    yield f"  nurse: nurse@demo.local / {DEMO_PASSWORD}"
    yield f"  admin: admin@demo.local / {DEMO_PASSWORD}"
    yield f"  demo API token (admin): {token.token}"
