"""Which red-flag ruleset (and so which questionnaire version) a patient is on, and moving them.

Installing a new ruleset moves nobody: enrolment pins a version (ENROL_RULESET_VERSION) and moving a patient
is an administrator's recorded decision. An open check-in is left alone: it keeps the questionnaire it
started with and is scored by a ruleset written for that questionnaire (Runtime.ruleset_for_check_in); the
next check-in asks the new version.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.ruleset import Ruleset
from pro_service.models import Patient
from pro_service.runtime import Runtime
from pro_service.services.audit import record
from pro_service.services.errors import Invalid

MAX_REASON = 500


class ProtocolError(Invalid):
    """A move that cannot be made; `field` names the form field or API property at fault."""


@dataclass(frozen=True)
class Moved:
    patient_id: int
    from_version: int
    to_version: int


def installed(rt: Runtime) -> list[Ruleset]:
    """Every installed version of the patients' ruleset, oldest first."""
    return sorted(rt.rulesets.values(), key=lambda r: r.version)


def current_version(rt: Runtime, patient: Patient) -> int:
    return rt.ruleset_for(patient.ruleset_version).version


def move_patient(
    session: Session,
    rt: Runtime,
    patient_id: int,
    to_version: int,
    *,
    actor: str,
    reason: str,
    ip: str | None = None,
) -> Moved:
    """Move a patient to another installed ruleset version, with the reason, in one recorded transaction."""
    reason = " ".join(reason.split())
    if not reason:
        raise ProtocolError("reason", "say why the patient is moved (it is kept in the audit log)")
    if len(reason) > MAX_REASON:
        raise ProtocolError("reason", f"at most {MAX_REASON} characters")
    if to_version not in {r.version for r in installed(rt)}:
        raise ProtocolError("version", f"ruleset version {to_version} is not installed")
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
    if patient is None:
        raise ProtocolError("patient", f"no patient {patient_id}")
    before = current_version(rt, patient)
    if before == to_version and patient.ruleset_version is not None:
        raise ProtocolError("version", f"the patient is already on version {to_version}")
    patient.ruleset_version = to_version
    target = rt.ruleset_for(to_version)
    record(
        session,
        actor=actor,
        action="move_ruleset",
        subject=("patient", patient.id),
        patient_id=patient.id,
        detail={
            "from_version": before,
            "to_version": to_version,
            "questionnaire": f"{target.instrument} v{target.instrument_version}",
            "reason": reason,
        },
        ip=ip,
        at=rt.now(),
    )
    session.commit()
    return Moved(patient.id, before, to_version)
