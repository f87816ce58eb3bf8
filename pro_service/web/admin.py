"""Administration pages (role admin): patients, schedules, care teams and rota, staff, configuration, audit.

Every page needs the admin role (a nurse gets a friendly 403). Forms re-render with the message next to the
field on a validation error; success redirects (post/redirect/get). Every change writes the audit log.
Views never commit: the request's unit of work (web/unit_of_work.py) keeps what a success wrote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from pro_service.instruments import LANGUAGES
from pro_service.models import (
    ApiToken,
    CareTeam,
    OnCallShift,
    Patient,
    PatientStatus,
    Schedule,
    StaffRole,
    StaffUser,
    utcnow,
)
from pro_service.rota import Shift, coverage
from pro_service.scheduling import validate_timezone
from pro_service.services import admin as svc
from pro_service.services import admin_removals as removals
from pro_service.services import backtest, clinical_profile, disclosure, protocol, sign_in, tokens
from pro_service.services import dashboard_queries as dq
from pro_service.services import sessions as staff_sessions
from pro_service.services import staff as staff_svc
from pro_service.services.errors import Conflict, Invalid
from pro_service.services.patients import (
    enrol_patient,
    patient_problems,
    set_patient_status,
    update_patient,
)
from pro_service.services.staff import StaffError, create_staff
from pro_service.web.auth import actor, audit, current_staff, limiter, max_age_seconds, require_admin
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed
from pro_service.web.disclosure import window as disclosure_window

bp = Blueprint("admin", __name__, url_prefix="/admin")
MAX_ID = 2**31 - 1
BACKTEST_DAYS = (30, 90, 180, 365)  # window choices on the configuration page
# The page replays in the request: about 3.5 ms a check-in, so this stays well inside gunicorn's 30 s
# timeout; the page says when it was reached, and the CLI has no such bound.
BACKTEST_WEB_LIMIT = 4000
COMMON_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "Europe/London",
    "UTC",
)


@bp.before_request
def _admins_only() -> None:
    require_admin()


def _get(model: type[Any], ident: int) -> Any:
    row = db().get(model, ident) if 0 < ident <= MAX_ID else None
    if row is None:
        abort(404)
    return row


def _form(name: str, limit: int = 200) -> str:
    return (request.form.get(name) or "").strip()[:limit]


def _int_form(name: str) -> int | None:
    raw = _form(name, 12)
    return int(raw) if raw.isdigit() and 0 < int(raw) <= MAX_ID else None


def _date_form(name: str, required: bool) -> date | None:
    raw = _form(name, 20)
    if not raw:
        if required:
            raise svc.AdminError(name, "enter a date")
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise svc.AdminError(name, "enter a date such as 2025-03-01") from None


def _zones(current: str | None = None) -> list[str]:
    zones = list(COMMON_ZONES)
    if current and current not in zones:
        zones.insert(0, current)
    return zones


@bp.get("/")
def index() -> ResponseReturnValue:
    rt = runtime()
    return render_template(
        "admin/index.html",
        settings=rt.settings,
        policy=rt.policy,
        patient_counts=svc.count_patients_by_status(db()),
        teams=dq.care_teams(db()),
    )


# --- patients --------------------------------------------------------------------------------------


PATIENT_FIELD_LABELS = {
    "mrn": "MRN",
    "given_name": "Given name",
    "family_name": "Family name",
    "phone": "Mobile phone",
    "timezone": "Time zone",
    "language": "Language",
    "care_team_id": "Care team",
    **clinical_profile.FIELD_LABELS,
}


def _form_problems(patient: Patient | None) -> dict[str, str]:
    """Every problem with the patient form, by field (empty: the form may be saved)."""
    problems = {
        p.field: p.message
        for p in patient_problems(
            db(), mrn=None if patient else _form("mrn", 64), patient_id=patient.id if patient else None,
            **_patient_fields(),
        )
    }  # fmt: skip
    for exc in clinical_profile.form_problems(request.form):
        problems.setdefault(exc.field, exc.message)
    return problems


def _patient_form(
    patient: Patient | None,
    error: svc.AdminError | None = None,
    status: int = 200,
    field_errors: dict[str, str] | None = None,
) -> Any:
    values = dict(request.form) if request.method == "POST" else {}
    return (
        render_template(
            "admin/patient_form.html",
            patient=patient,
            values=values,
            error=error,
            field_errors=field_errors or {},
            field_labels=PATIENT_FIELD_LABELS,
            teams=dq.care_teams(db()),
            zones=_zones(values.get("timezone") or (patient.timezone if patient else None)),
            languages=LANGUAGES,
            prof=clinical_profile.get_profile(db(), patient.id) if patient else None,
            pv=values,
            continence_labels=clinical_profile.CONTINENCE_LABELS,
        ),
        status,
    )


def _at_field(exc: Invalid | Conflict, field: str) -> svc.AdminError:
    """A refused enrolment or edit as the patient form shows it: at its field (a clash without one at
    `field`), a baseline value named by its label."""
    if isinstance(exc, clinical_profile.ProfileError):
        return svc.AdminError(exc.field, exc.sentence)
    return svc.AdminError(exc.field or field, exc.message)


def _save_profile(patient: Patient) -> list[str]:
    """The form's baseline and call information, through the service that validates and audits them."""
    return clinical_profile.update_profile(
        db(),
        patient.id,
        clinical_profile.form_changes(request.form),
        actor=actor(),
        staff_id=current_staff().id,
        now=runtime().now(),
        ip=request.remote_addr,
    )


@bp.route("/patients/new", methods=["GET", "POST"])
def patient_new() -> ResponseReturnValue:
    if request.method == "GET":
        return _patient_form(None)
    session = db()
    problems = _form_problems(None)
    if problems:  # all of them at once, each at its field (the service would stop at the first)
        return _patient_form(None, status=400, field_errors=problems)
    try:
        patient = enrol_patient(
            session,
            mrn=_form("mrn", 64),
            sms_consent=request.form.get("sms_consent") == "yes",
            ruleset_version=runtime().enrolment_ruleset.version,
            **_patient_fields(),
        )
        if not (patient.mrn and patient.given_name and patient.family_name):
            raise svc.AdminError("name", "MRN, given and family name are required")
        _save_profile(patient)
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _patient_form(None, _at_field(exc, "mrn"), 400)
    audit("create_patient", ("patient", patient.id), patient.id)
    flash("Patient enrolled. Now set when their check-ins go out.", "success")
    return redirect(url_for("admin.schedules", patient_id=patient.id))


def _patient_fields() -> dict[str, Any]:
    """The patient form's fields both enrolment and editing take, bounded as the columns are."""
    return {
        "given_name": _form("given_name", 120),
        "family_name": _form("family_name", 120),
        "phone": _form("phone", 32),
        "timezone": _form("timezone", 64),
        "language": _form("language", 8),
        "care_team_id": _int_form("care_team_id") or 0,
    }


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
def patient_edit(patient_id: int) -> ResponseReturnValue:
    session = db()
    patient: Patient = _get(Patient, patient_id)
    if request.method == "GET":
        audit("view_patient", ("patient", patient.id), patient.id, page="admin_edit")
        return _patient_form(patient)
    problems = _form_problems(patient)
    if problems:
        return _patient_form(patient, status=400, field_errors=problems)
    try:
        changed = update_patient(
            session,
            patient,
            clear_phone_problem=request.form.get("clear_phone_problem") == "yes",
            **_patient_fields(),
        )
        profile_changed = _save_profile(patient)  # audited by the service
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _patient_form(patient, _at_field(exc, "phone"), 400)
    audit("update_patient", ("patient", patient.id), patient.id, fields=changed)
    flash("Patient record saved." if changed or profile_changed else "Nothing changed.", "success")
    return redirect(url_for("dashboard.patient_page", patient_id=patient.id))


@bp.post("/patients/<int:patient_id>/status")
def patient_status(patient_id: int) -> ResponseReturnValue:
    session = db()
    patient: Patient = _get(Patient, patient_id)
    action = request.form.get("action")
    target = {
        "pause": PatientStatus.PAUSED,
        "resume": PatientStatus.ACTIVE,
        "discharge": PatientStatus.DISCHARGED,
    }
    if action not in target:
        abort(400)
    if patient.status == PatientStatus.DISCHARGED and action != "resume":
        flash("The patient is already discharged.", "info")
        return redirect(url_for("admin.patient_edit", patient_id=patient.id))
    cancelled = set_patient_status(session, patient, target[action], runtime().now())
    audit(f"{action}_patient", ("patient", patient.id), patient.id, cancelled_check_ins=cancelled)
    words = {
        "pause": "paused: no check-ins until resumed",
        "resume": "active again",
        "discharge": "discharged",
    }
    flash(f"Patient {words[action]}.", "success")
    return redirect(url_for("dashboard.patient_page", patient_id=patient.id))


# --- schedules -------------------------------------------------------------------------------------


def _schedule_page(
    patient: Patient, schedule: Schedule | None, error: svc.AdminError | None, status: int
) -> Any:
    rt = runtime()
    rows = list(db().scalars(select(Schedule).where(Schedule.patient_id == patient.id).order_by(Schedule.id)))
    if request.method == "POST":
        values: dict[str, Any] = {
            "instrument": request.form.get("instrument"),
            "days": request.form.getlist("days"),
            "time": request.form.get("time"),
            "start_date": request.form.get("start_date"),
            "end_date": request.form.get("end_date"),
            "active": request.form.get("active") == "yes",
        }
    elif schedule is not None:
        pick = svc.parse_weekly(schedule.rrule)
        values = {
            "instrument": schedule.instrument_code,
            "days": list(pick.days) if pick else [],
            "time": f"{pick.hour:02d}:{pick.minute:02d}" if pick else "",
            "start_date": schedule.start_date.isoformat(),
            "end_date": schedule.end_date.isoformat() if schedule.end_date else "",
            "active": schedule.active,
        }
    else:
        today = rt.now().astimezone(validate_timezone(patient.timezone)).date()
        values = {
            "instrument": "sre-weekly",
            "days": ["MO"],
            "time": "10:00",
            "start_date": today.isoformat(),
            "end_date": "",
            "active": True,
        }
    return (
        render_template(
            "admin/schedules.html",
            patient=patient,
            schedules=rows,
            editing=schedule,
            values=values,
            error=error,
            weekdays=svc.WEEKDAYS,
            instruments=rt.instruments.all_latest(),
            quiet_start=rt.settings.QUIET_HOURS_START,
            quiet_end=rt.settings.QUIET_HOURS_END,
            describe=svc.describe_rrule,
        ),
        status,
    )


def _save_schedule(patient: Patient, schedule: Schedule | None) -> ResponseReturnValue:
    session = db()
    rt = runtime()
    try:
        instrument = _form("instrument", 64)
        if rt.instruments.latest(instrument) is None:
            raise svc.AdminError("instrument", "choose a questionnaire")
        rrule = svc.weekly_rrule(request.form.getlist("days"), _form("time", 8))
        start = _date_form("start_date", required=True)
        assert start is not None
        saved = svc.save_schedule(
            session,
            patient,
            schedule=schedule,
            instrument_code=instrument,
            rrule=rrule,
            start_date=start,
            end_date=_date_form("end_date", required=False),
            active=request.form.get("active") == "yes",
            now=rt.now(),
        )
    except svc.AdminError as exc:
        session.rollback()
        return _schedule_page(patient, schedule, exc, 400)
    audit(
        "update_schedule" if schedule else "create_schedule",
        ("schedule", saved.id),
        patient.id,
        rrule=saved.rrule,
    )
    flash(f"Schedule saved: {svc.describe_rrule(saved.rrule)}, patient's time.", "success")
    return redirect(url_for("admin.schedules", patient_id=patient.id))


@bp.route("/patients/<int:patient_id>/schedules", methods=["GET", "POST"])
def schedules(patient_id: int) -> ResponseReturnValue:
    patient: Patient = _get(Patient, patient_id)
    if request.method == "POST":
        return _save_schedule(patient, None)
    audit("view_patient", ("patient", patient.id), patient.id, page="admin_schedules")
    return _schedule_page(patient, None, None, 200)


def _schedule_of(patient: Patient, schedule_id: int) -> Schedule:
    schedule: Schedule = _get(Schedule, schedule_id)
    if schedule.patient_id != patient.id:
        abort(404)
    return schedule


@bp.route("/patients/<int:patient_id>/schedules/<int:schedule_id>", methods=["GET", "POST"])
def schedule_edit(patient_id: int, schedule_id: int) -> ResponseReturnValue:
    patient: Patient = _get(Patient, patient_id)
    schedule = _schedule_of(patient, schedule_id)
    if request.method == "POST":
        return _save_schedule(patient, schedule)
    audit("view_patient", ("patient", patient.id), patient.id, page="admin_schedules", schedule=schedule.id)
    return _schedule_page(patient, schedule, None, 200)


@bp.post("/patients/<int:patient_id>/schedules/<int:schedule_id>/delete")
def schedule_delete(patient_id: int, schedule_id: int) -> ResponseReturnValue:
    patient: Patient = _get(Patient, patient_id)
    schedule = _schedule_of(patient, schedule_id)
    removals.delete_schedule(db(), schedule)
    audit("delete_schedule", ("schedule", schedule_id), patient.id)
    flash("Schedule deleted.", "success")
    return redirect(url_for("admin.schedules", patient_id=patient.id))


# --- care teams, members, rota ---------------------------------------------------------------------


@bp.route("/teams", methods=["GET", "POST"])
def teams() -> ResponseReturnValue:
    session = db()
    error = None
    if request.method == "POST":
        try:
            team = svc.save_care_team(
                session,
                None,
                name=_form("name", 120),
                timezone=_form("timezone", 64),
                phone=_form("phone", 32),
                acute_oncology_phone=_form("acute_oncology_phone", 32),
            )
        except (Invalid, Conflict) as exc:
            session.rollback()
            error = exc
        else:
            audit("create_care_team", ("care_team", team.id), None)
            flash("Care team created.", "success")
            return redirect(url_for("admin.team", team_id=team.id))
    return (
        render_template(
            "admin/teams.html",
            teams=dq.care_teams(session),
            error=error,
            values=dict(request.form),
            zones=_zones(),
        ),
        400 if error else 200,
    )


COVERAGE_AHEAD = timedelta(days=14)  # the rota page shows gaps and overlaps this far ahead


def _team_page(
    team: CareTeam,
    error: Exception | None = None,
    status: int = 200,
    *,
    confirm_shift: bool = False,
    confirm_remove: int | None = None,
) -> Any:
    session = db()
    now = runtime().now()
    shifts = svc.shifts(session, team.id, now)
    ahead = coverage(
        [Shift(s.level, name, s.starts_at, s.ends_at) for s, name in shifts], now, now + COVERAGE_AHEAD
    )
    return (
        render_template(
            "admin/team.html",
            team=team,
            members=svc.team_members(session, team.id),
            all_staff=[s for s in svc.staff_list(session) if s.active],
            shifts=shifts,
            coverage=ahead,
            coverage_days=COVERAGE_AHEAD.days,
            error=error,
            confirm_shift=confirm_shift,
            confirm_remove=confirm_remove,
            values=dict(request.form) if request.method == "POST" else {},
            zones=_zones(team.timezone),
        ),
        status,
    )


@bp.route("/teams/<int:team_id>", methods=["GET", "POST"])
def team(team_id: int) -> ResponseReturnValue:
    session = db()
    care_team: CareTeam = _get(CareTeam, team_id)
    if request.method == "GET":
        return _team_page(care_team)
    try:
        svc.save_care_team(
            session,
            care_team,
            name=_form("name", 120),
            timezone=_form("timezone", 64),
            phone=_form("phone", 32),
            acute_oncology_phone=_form("acute_oncology_phone", 32),
        )
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _team_page(care_team, exc, 400)
    audit("update_care_team", ("care_team", care_team.id), None)
    flash("Care team saved.", "success")
    return redirect(url_for("admin.team", team_id=care_team.id))


@bp.post("/teams/<int:team_id>/members")
def team_member_add(team_id: int) -> ResponseReturnValue:
    session = db()
    care_team: CareTeam = _get(CareTeam, team_id)
    try:
        added = svc.add_member(session, care_team.id, _int_form("staff_id") or 0)
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _team_page(care_team, exc, 400)
    audit("add_team_member", ("care_team", care_team.id), None, staff_id=_int_form("staff_id"))
    flash("Member added." if added else "Already a member.", "success")
    return redirect(url_for("admin.team", team_id=care_team.id))


@bp.post("/teams/<int:team_id>/members/<int:staff_id>/remove")
def team_member_remove(team_id: int, staff_id: int) -> ResponseReturnValue:
    session = db()
    care_team: CareTeam = _get(CareTeam, team_id)
    try:
        removed = svc.remove_member(
            session,
            care_team.id,
            staff_id,
            now=runtime().now(),
            confirmed=request.form.get("confirm") == "yes",
        )
    except svc.NeedsConfirmation as exc:
        session.rollback()
        return _team_page(care_team, exc, 409, confirm_remove=staff_id)
    audit(
        "remove_team_member",
        ("care_team", care_team.id),
        None,
        staff_id=staff_id,
        shifts_removed=removed.shifts_removed,
        shifts_ended=removed.shifts_ended,
    )
    off_rota = removed.shifts_removed + removed.shifts_ended
    flash(f"Member removed{f' and taken off {off_rota} on-call shift(s)' if off_rota else ''}.", "success")
    return redirect(url_for("admin.team", team_id=care_team.id))


@bp.post("/teams/<int:team_id>/shifts")
def shift_add(team_id: int) -> ResponseReturnValue:
    session = db()
    care_team: CareTeam = _get(CareTeam, team_id)
    try:
        shift = svc.add_shift(
            session,
            care_team,
            staff_id=_int_form("staff_id") or 0,
            level=_int_form("level") or 0,
            starts=_form("starts_at", 32),
            ends=_form("ends_at", 32),
            now=runtime().now(),
            confirmed=request.form.get("confirm") == "yes",
        )
    except svc.NeedsConfirmation as exc:
        session.rollback()
        return _team_page(care_team, exc, 409, confirm_shift=True)
    except (Invalid, Conflict) as exc:
        session.rollback()
        return _team_page(care_team, exc, 400)
    audit("add_on_call_shift", ("on_call_shift", shift.id), None, care_team_id=care_team.id)
    flash("On-call shift added.", "success")
    return redirect(url_for("admin.team", team_id=care_team.id) + "#rota")


@bp.post("/teams/<int:team_id>/shifts/<int:shift_id>/delete")
def shift_delete(team_id: int, shift_id: int) -> ResponseReturnValue:
    care_team: CareTeam = _get(CareTeam, team_id)
    shift: OnCallShift = _get(OnCallShift, shift_id)
    if shift.care_team_id != care_team.id:
        abort(404)
    removals.delete_shift(db(), shift)
    audit("delete_on_call_shift", ("on_call_shift", shift_id), None, care_team_id=care_team.id)
    flash("On-call shift removed.", "success")
    return redirect(url_for("admin.team", team_id=care_team.id) + "#rota")


@bp.get("/escalation")
def escalation() -> ResponseReturnValue:
    return render_template("admin/escalation.html", policy=runtime().policy)


# --- staff -----------------------------------------------------------------------------------------


@bp.route("/staff", methods=["GET", "POST"])
def staff() -> ResponseReturnValue:
    session = db()
    error: Exception | None = None
    if request.method == "POST":
        role = request.form.get("role")
        try:
            if role not in (StaffRole.NURSE.value, StaffRole.ADMIN.value):
                raise StaffError("role: choose nurse or admin")
            created = create_staff(
                session,
                email=_form("email", 254),
                name=_form("name", 120) or _form("email", 254),
                role=StaffRole(role),
                phone=_form("phone", 32) or None,
                password=request.form.get("password") or None,
                must_change_password=True,  # the administrator knows it: a temporary password
            )
        except (Invalid, Conflict) as exc:
            session.rollback()
            error = _named(exc)
        else:
            audit("create_staff", ("staff", created.id), None, role=created.role.value)
            flash(f"Account created for {created.email}.", "success")
            return redirect(url_for("admin.staff"))
    return (
        render_template(
            "admin/staff.html",
            staff_rows=svc.staff_list(session),
            error=error,
            values=dict(request.form) if request.method == "POST" else {},
        ),
        400 if error else 200,
    )


@bp.route("/staff/<int:staff_id>", methods=["GET", "POST"])
def staff_edit(staff_id: int) -> ResponseReturnValue:
    session = db()
    person: StaffUser = _get(StaffUser, staff_id)
    error = None
    if request.method == "POST":
        try:
            svc.update_staff(session, person, name=_form("name", 120), phone=_form("phone", 32) or None)
        except svc.AdminError as exc:
            session.rollback()
            error = exc
        else:
            audit("update_staff", ("staff", person.id), None)
            flash("Account saved.", "success")
            return redirect(url_for("admin.staff_edit", staff_id=person.id))
    return _staff_page(person, error=error, status=400 if error else 200)


def _named(exc: Invalid | Conflict) -> svc.AdminError:
    """The new-account form's message names its field first ("password: this is one of ...")."""
    text = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return svc.AdminError(exc.field or "", text)


def _staff_page(
    person: StaffUser, *, error: Exception | None = None, new_password: str | None = None, status: int = 200
) -> ResponseReturnValue:
    live = staff_sessions.live(db(), person.id, utcnow(), timedelta(seconds=max_age_seconds()))
    return (
        render_template(
            "admin/staff_edit.html", person=person, error=error, new_password=new_password, live_sessions=live
        ),
        status,
    )


@bp.post("/staff/<int:staff_id>/active")
def staff_active(staff_id: int) -> ResponseReturnValue:
    session = db()
    person: StaffUser = _get(StaffUser, staff_id)
    active = request.form.get("active") == "yes"
    if not active and person.id == current_staff().id:
        flash("You cannot deactivate your own account.", "warning")
        return redirect(url_for("admin.staff_edit", staff_id=person.id))
    gone = staff_svc.set_active(session, person, active, now=utcnow())
    audit(
        "activate_staff" if active else "deactivate_staff",
        ("staff", person.id),
        None,
        ended=gone.sessions_ended,
        shifts_off_rota=gone.shifts_off_rota,
    )
    flash(
        "Account reactivated." if active else "Account deactivated: signed out everywhere, no more pages.",
        "success",
    )
    if gone.shifts_off_rota:
        flash(
            f"They were on call: {gone.shifts_off_rota} current or future shift(s) taken off the rota. "
            "Check that each level has someone.",
            "warning",
        )
    return redirect(url_for("admin.staff_edit", staff_id=person.id))


@bp.post("/staff/<int:staff_id>/password")
def staff_password(staff_id: int) -> ResponseReturnValue:
    """A new temporary password, shown once on this response (never stored in clear, never redirected)."""
    session = db()
    person: StaffUser = _get(StaffUser, staff_id)
    password = svc.new_password()
    ended = staff_svc.reset_password(session, person, password, now=utcnow())
    audit("reset_password", ("staff", person.id), None, sessions_ended=ended)
    return _staff_page(person, new_password=password)


@bp.post("/staff/<int:staff_id>/second-factor/off")
def staff_second_factor_off(staff_id: int) -> ResponseReturnValue:
    """A lost phone: the colleague's second factor is turned off and they are signed out everywhere. The
    administrator's own password is asked again: a copied session cookie alone must not strip a factor."""
    me = current_staff()
    ip = request.remote_addr or "unknown"
    target: StaffUser = _get(StaffUser, staff_id)
    if limiter().retry_after(me.email, ip) or not sign_in.password_matches(
        me, request.form.get("current_password") or ""
    ):
        limiter().failed(me.email, ip)
        flash(
            "Your own password was not right (or too many tries): the second factor is unchanged.", "warning"
        )
        return redirect(url_for("admin.staff_edit", staff_id=target.id))
    person, ended = staff_svc.turn_off_second_factor(
        db(), target.id, actor=actor(), ip=request.remote_addr, now=utcnow()
    )
    flash(
        f"Second factor turned off for {person.name}; signed out everywhere ({ended} session"
        f"{'s' * (ended != 1)} ended). They set up a new one at their next sign-in.",
        "success",
    )
    return redirect(url_for("admin.staff_edit", staff_id=person.id))


@bp.post("/staff/<int:staff_id>/sessions/end")
def staff_end_sessions(staff_id: int) -> ResponseReturnValue:
    """Sign a colleague out everywhere (a lost phone, a ward computer left signed in); ending one's own
    sessions signs this browser out too."""
    session = db()
    person: StaffUser = _get(StaffUser, staff_id)
    ended = staff_svc.end_sessions(session, person, now=utcnow())
    audit("end_staff_sessions", ("staff", person.id), None, ended=ended)
    flash(f"Signed {person.name} out everywhere ({ended} session{'s' * (ended != 1)} ended).", "success")
    return redirect(url_for("admin.staff_edit", staff_id=person.id))


# --- API tokens (issue 15: each belongs to a person or a named integration client) ----------------------


@bp.route("/tokens", methods=["GET", "POST"])
def api_tokens() -> ResponseReturnValue:
    """The tokens and their owners; a new one's secret is shown on this response only (never redirected)."""
    session = db()
    error: tokens.TokenError | None = None
    created: tokens.NewToken | None = None
    if request.method == "POST":
        kind = request.form.get("owner")
        try:
            created = tokens.issue(
                session,
                name=_form("name", 120),
                staff=(_form("staff", 254) or None) if kind == "staff" else None,
                client=(_form("client", 120) or None) if kind == "client" else None,
                scopes=request.form.getlist("scopes")[:8] if kind == "client" else (),
                requested_by=current_staff().id,
                actor=actor(),
                ip=request.remote_addr,
            )
        except tokens.TokenError as exc:
            error = exc
    return (
        render_template(
            "admin/tokens.html",
            token_rows=tokens.list_tokens(session),
            staff_rows=[current_staff()],  # a person's token only for oneself (services/tokens.create_token)
            scopes=tokens.SCOPES,
            owner_label=tokens.owner_label,
            created=created,
            error=error,
            values=request.form if request.method == "POST" and error else None,
        ),
        400 if error else 200,
    )


@bp.post("/tokens/<int:token_id>/revoke")
def api_token_revoke(token_id: int) -> ResponseReturnValue:
    row: ApiToken = _get(ApiToken, token_id)
    if tokens.withdraw(db(), row.id, actor=actor(), ip=request.remote_addr):
        flash(f"Token {row.id} ({row.name}) revoked: it stops working at once.", "success")
    return redirect(url_for("admin.api_tokens"))


# --- configuration and audit -----------------------------------------------------------------------


@bp.get("/config")
def config() -> ResponseReturnValue:
    return _config_page()


def _config_page(
    report: backtest.Report | None = None, error: backtest.BacktestError | None = None, status: int = 200
) -> ResponseReturnValue:
    rt = runtime()
    instruments = sorted(rt.instruments.by_key.values(), key=lambda i: (i.code, -i.version))
    rulesets = sorted(rt.rulesets.values(), key=lambda r: (r.name, -r.version))
    # The version new patients are asked (their enrolment ruleset's); enrolled patients keep their own.
    latest = {i.code: i.version for i in rt.instruments.all_latest()}
    latest[rt.enrolment_ruleset.instrument] = rt.enrolment_ruleset.instrument_version
    return (
        render_template(
            "admin/config.html",
            instruments=instruments,
            latest=latest,
            rulesets=rulesets,
            active_ruleset=rt.enrolment_ruleset,
            settings=rt.settings,
            backtest=report,
            backtest_error=error,
            backtest_form=dict(request.form) if request.method == "POST" else {},
            backtest_days=BACKTEST_DAYS,
            backtest_limit=BACKTEST_WEB_LIMIT,
        ),
        status,
    )


@bp.post("/config/backtest")
def config_backtest() -> ResponseReturnValue:
    """Run the rules backtest (same service as `pro-service rules backtest`) and show its aggregate summary:
    counts per rule and category, no patient. Audited, as it reads every patient's answers."""
    rt = runtime()
    days = _form("days", 4)
    try:
        candidate = backtest.installed_ruleset(rt, _form("candidate", 80), option="candidate")
        if not days.isdigit():
            raise backtest.BacktestError("days", "enter the window as a number of days")
        window = backtest.parse_window(f"{days}d")
        report = backtest.run_backtest(rt, candidate, window=window, limit=BACKTEST_WEB_LIMIT)
    except backtest.BacktestError as exc:
        return _config_page(error=exc, status=400)
    audit(
        "run_rules_backtest",
        ("ruleset", report.candidate),
        None,
        days=int(days),
        check_ins=report.check_ins,
        lab_results=report.lab_results,
    )
    return _config_page(report)


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    session = db()
    audit_filter, form = _audit_filter()
    before = request.args.get("before", "")
    before_id = int(before) if before.isascii() and before.isdigit() and int(before) <= MAX_ID else None
    page = svc.audit_page(session, audit_filter, before_id=before_id)
    # "Who saw this patient": every person or token who saw the patients searched for, over the dates.
    since, until = audit_filter.since, audit_filter.until
    who = disclosure.who_saw(session, audit_filter.patient_ids or (), since=since, until=until)
    actors = [r.actor for r in page.rows] + [w.actor for w in who]
    by_actor = {a: tokens.actor_staff_id(a) for a in actors}  # "staff:3" and "staff:3 (token 7)" name Kim
    shown = [r.patient_id for r in page.rows] + [w.patient_id for w in who]
    names = dq.staff_names(session, [i for i in by_actor.values() if i is not None])
    patients = svc.patient_labels(session, shown)
    actor_names = {a: names[i] for a, i in by_actor.items() if i is not None and i in names}
    # Reading the audit log discloses who saw whom: it is audited too, with the filter used, and the
    # patients it showed get their disclosure rows.
    audit("view_audit_log", ("audit_log", None), None, filters=_audited_filters(audit_filter, form))
    disclosed(actor(), "audit_log", shown)
    return render_template(
        "admin/audit.html",
        page=page,
        who=who,
        window_minutes=runtime().settings.AUDIT_DISCLOSURE_WINDOW_MINUTES,
        names=names,
        actor_names=actor_names,
        patients=patients,
        form=form,
        filtered=audit_filter.active,
        actions=svc.audit_actions(session),
        before=before_id,
    )


@bp.get("/audit.csv")
def audit_export() -> ResponseReturnValue:
    """The filtered audit log as CSV (newest first, at most AUDIT_EXPORT_LIMIT rows), itself audited."""
    session = db()
    audit_filter, form = _audit_filter()
    # The export's own row is committed by the request's unit of work before the body streams.
    audit("export_audit_log", ("audit_log", None), None, filters=_audited_filters(audit_filter, form))
    who = actor()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["id", "at_utc", "actor", "action", "subject_type", "subject_id", "patient_id", "ip", "detail"]
        )
        shown: set[int] = set()
        try:
            for row in svc.audit_rows(session, audit_filter):
                detail = json.dumps(row.detail, sort_keys=True, default=str)
                cells = [row.id, row.at.isoformat(), row.actor, row.action, row.subject_type,
                         row.subject_id or "", row.patient_id or "", row.ip or "", detail]  # fmt: skip
                writer.writerow([_csv_safe(cell) for cell in cells])
                if row.patient_id is not None:
                    shown.add(row.patient_id)
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        finally:  # the patients the file named (as far as it was sent), even if the download stopped
            session.rollback()  # a query that failed mid-file leaves nothing pending to record beside
            disclosure.record_streamed(
                session,
                actor=who,
                view="audit_export",
                patient_ids=shown,
                now=runtime().now(),
                window=disclosure_window(),
                ip=request.remote_addr,
            )

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit-log.csv", "Cache-Control": "no-store"},
    )


def _audited_filters(audit_filter: svc.AuditFilter, form: dict[str, str]) -> dict[str, object]:
    """The filter as the audit row keeps it: the patients a search matched by id, never the typed name."""
    kept: dict[str, object] = {k: v for k, v in form.items() if v and k != "patient"}
    if audit_filter.patient_ids is not None:
        kept["patient_ids"] = list(audit_filter.patient_ids)
    return kept


def _csv_safe(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula ("=HYPERLINK(…)", "@SUM") gets a leading quote."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def _audit_filter() -> tuple[svc.AuditFilter, dict[str, str]]:
    """The audit browser's filter from the query string; bad dates are ignored, never a 500."""
    args = request.args
    form = {key: (args.get(key) or "").strip()[:160] for key in ("patient", "actor", "action", "from", "to")}
    session = db()
    since, until = _day(form["from"]), _day(form["to"])
    return (
        svc.AuditFilter(
            patient_ids=svc.find_patients(session, form["patient"]) if form["patient"] else None,
            actors=svc.resolve_actors(session, form["actor"]) if form["actor"] else None,
            action=form["action"] or None,
            since=since,
            until=until + timedelta(days=1) if until is not None else None,
        ),
        form,
    )


def _day(value: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC) if value else None
    except ValueError:
        return None


@bp.route("/patients/<int:patient_id>/ruleset", methods=["GET", "POST"])
def patient_ruleset(patient_id: int) -> ResponseReturnValue:
    """Move a patient to another ruleset (and questionnaire) version: an administrator's recorded decision."""
    session = db()
    patient: Patient = _get(Patient, patient_id)
    rt = runtime()
    error: protocol.ProtocolError | None = None
    if request.method == "POST":
        raw = request.form.get("version", "")
        try:
            if not raw.isdigit() or len(raw) > 4:
                raise protocol.ProtocolError("version", "choose a version")
            moved = protocol.move_patient(
                session,
                rt,
                patient.id,
                int(raw),
                actor=actor(),
                reason=request.form.get("reason", ""),
                ip=request.remote_addr,
            )
        except protocol.ProtocolError as exc:
            session.rollback()
            error = exc
        else:
            flash(f"Moved from ruleset version {moved.from_version} to {moved.to_version}.")
            return redirect(url_for("admin.patient_ruleset", patient_id=patient.id))
    else:
        audit("view_patient", ("patient", patient.id), patient.id, page="admin_ruleset")
    return (
        render_template(
            "admin/patient_ruleset.html",
            patient=patient,
            current=protocol.current_version(rt, patient),
            rulesets=protocol.installed(rt),
            enrolment=rt.enrolment_ruleset.version,
            error=error,
        ),
        400 if error else 200,
    )
