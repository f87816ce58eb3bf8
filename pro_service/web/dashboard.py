"""Nurse pages: the triage queue (home), an alert with everything needed to act on it, patients.

Views are thin: parse the request, call a query or a life-cycle function, write the audit row, render.
They never commit: the request's unit of work (web/unit_of_work.py) keeps what a success wrote.
Flash messages travel in the (signed, not encrypted) session cookie, so they never carry patient details.

Every list, page and action is kept to the nurse's scope (services/access.py): their care teams, the teams
they are on call for, the alerts they were paged for. Another patient gets the break-glass page: a typed
reason, audited, opens that one patient for a while (the grant's patient id and expiry live in the session);
each view under it is audited with `break_glass: true`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask import session as web_session
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from pro_service.db import ROW_LOCK
from pro_service.models import Alert, AlertStatus, CareTeam, Patient, StaffUser
from pro_service.services import access, clinical_profile
from pro_service.services import dashboard_queries as dq
from pro_service.services.alert_lifecycle import (
    OUTCOMES,
    RAG_OUTCOMES,
    REOPEN_MIN_REASON,
    AlertActionError,
    acknowledge,
    add_note,
    assign,
    eligible_assignees,
    escalate_now,
    manual_escalation_wait,
    reopen,
    resolve,
)
from pro_service.services.check_ins import CheckInError, start_now
from pro_service.web import charts
from pro_service.web.auth import actor, audit, current_staff, privacy_screen
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed
from pro_service.web.ui import category_label

bp = Blueprint("dashboard", __name__)
MAX_ID = 2**31 - 1
BREAK_GLASS_KEY = "break_glass"


def _grants() -> dict[int, float]:
    """This staff member's break-glass grants from the session (patient id → POSIX expiry)."""
    raw = web_session.get(BREAK_GLASS_KEY)
    if not isinstance(raw, dict) or raw.get("staff") != current_staff().id:
        return {}
    until = raw.get("until")
    if not isinstance(until, dict):
        return {}
    return {int(k): float(v) for k, v in until.items() if str(k).isdigit() and isinstance(v, int | float)}


def _scope() -> access.Scope:
    """What the signed-in staff member sees, computed once per request (two small queries for a nurse)."""
    found: access.Scope | None = g.get("access_scope")
    if found is None:
        found = access.scope_for_staff(db(), current_staff(), runtime().now(), _grants())
        g.access_scope = found
    return found


def _audit(action: str, subject: tuple[str, object], patient_id: int, team_id: int, **detail: Any) -> None:
    """The audit row of a patient's record, marked when it was seen only thanks to a break-glass."""
    if _scope().by_break_glass(patient_id, team_id):
        detail["break_glass"] = True
    audit(action, subject, patient_id, **detail)


def _break_glass_until(patient_id: int, team_id: int) -> datetime | None:
    """When the grant that opens this patient ends (for the banner), if only a grant opens it."""
    if not _scope().by_break_glass(patient_id, team_id):
        return None
    return datetime.fromtimestamp(_grants()[patient_id], UTC)


def _refused(
    patient_id: int, team_id: int, alert_id: int | None = None, *, error: str | None = None, reason: str = ""
) -> ResponseReturnValue:
    """The break-glass page instead of a record outside the nurse's scope (no name, MRN or symptom). The
    refusal's audit row is kept although the answer rolls the request back (the service commits it)."""
    session = db()
    access.record_refusal(
        session,
        actor=actor(),
        patient_id=patient_id,
        alert_id=alert_id,
        ip=request.remote_addr,
        now=runtime().now(),
    )
    team = session.get(CareTeam, team_id)
    return (
        render_template(
            "dashboard/break_glass.html",
            patient_id=patient_id,
            alert_id=alert_id,
            team_name=team.name if team else "another care team",
            minutes=access.BREAK_GLASS_MINUTES,
            min_reason=access.BREAK_GLASS_MIN_REASON,
            max_reason=access.BREAK_GLASS_MAX_REASON,
            error=error,
            reason=reason,
        ),
        400 if error else 403,
    )


def _alert_team(alert: Alert) -> int:
    team_id = db().scalar(select(Patient.care_team_id).where(Patient.id == alert.patient_id))
    assert team_id is not None
    return int(team_id)


def _may_act(alert: Alert) -> int | None:
    """The patient's care team when the nurse may act on `alert`; None when it is outside their scope."""
    team_id = _alert_team(alert)
    if access.can_act_on_alert(db(), current_staff(), _scope(), alert, team_id):
        return team_id
    return None


def _int(value: str | None) -> int | None:
    if value is None or not value.isdigit() or not 0 < int(value) <= MAX_ID:
        return None
    return int(value)


def _filters() -> dq.QueueFilters:
    urgency = request.args.get("urgency")
    status = request.args.get("status")
    sort = request.args.get("sort") or ""
    return dq.QueueFilters(
        team_id=_int(request.args.get("team")),
        urgency=urgency if urgency in dq.URGENCIES else None,
        status=status if status in ("open", "acknowledged") else None,
        # "My alerts" narrows the nurse's scope; it never widens it ("my care teams" is the scope itself).
        assigned_to=current_staff().id if request.args.get("owner") == "me" else None,
        sort=sort if sort.removeprefix("-") in dq.SORTS else None,
    )


def _filter_args(filters: dq.QueueFilters) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if filters.team_id:
        args["team"] = filters.team_id
    if filters.urgency:
        args["urgency"] = filters.urgency
    if filters.status:
        args["status"] = filters.status
    if filters.assigned_to is not None:
        args["owner"] = "me"
    if filters.sort:
        args["sort"] = filters.sort
    return args


@bp.get("/")
def queue() -> ResponseReturnValue:
    filters = _filters()
    session = db()
    version = dq.queue_version(session, runtime().now())  # first: a change meanwhile is fetched again
    result = dq.queue(session, filters, _scope())
    urgent = dq.open_urgent(session, _scope())
    audit("view_queue", ("alert", None), None, shown=len(result.rows))
    disclosed(actor(), "queue", dq.shown_patients(result, urgent))
    return render_template(
        "dashboard/queue.html",
        queue=result,
        urgent=urgent,
        version=version,
        poll_ms=QUEUE_POLL_MS,
        teams=dq.care_teams(session),
        filters=filters,
        filter_args=_filter_args(filters),
    )


# The watch screen asks every second "anything new since version v?"; nearly always the answer is a 204.
# A short poll, not server-sent events: gunicorn's gthread workers would hold a thread per open screen
# for good (docs/benchmarks.md, bench_queue_latency).
QUEUE_POLL_MS = 1000


@bp.get("/queue/poll")
def queue_poll() -> ResponseReturnValue:
    """The queue page's poll. 204 when nothing shown changed since `?v=`; else the rows (HTML, keyed by
    alert id, for the page to patch in place), the counts, and the open urgent alerts of every team (the
    banner ignores the filters). A locked (idle) session, or a page showing its privacy screen
    (`?privacy=1`), gets no rows and no symptoms: counts, and the banner's alert ids and teams. Rows and
    counts are the nurse's scope; another team's urgent alert is announced by its team only."""
    locked = privacy_screen()
    hidden = locked or request.args.get("privacy") == "1"
    session = db()
    version = dq.queue_version(session, runtime().now()) + ("-p" if hidden else "")
    if request.args.get("v") == version:
        return "", 204
    filters = _filters()
    result = dq.queue(session, filters, _scope())
    urgent = dq.open_urgent(session, _scope())
    body: dict[str, Any] = {
        "version": version,
        "locked": locked,
        "counts": result.counts,
        "open_counts": result.open_counts,
        "total": result.total,
        "urgent": [
            {
                "id": u.alert_id,
                "team": u.team_name,
                "url": url_for("dashboard.alert_page", alert_id=u.alert_id),
            }
            for u in urgent
        ],
    }
    if not hidden:
        disclosed(actor(), "queue", dq.shown_patients(result, urgent))
        body["rows"] = render_template(
            "dashboard/_queue_rows.html", queue=result, filters=filters, filter_args=_filter_args(filters)
        )
        body["alerts"] = [
            {
                "id": r.alert_id,
                "urgency": r.urgency,
                "status": r.status,
                "category": category_label(r.category),
                "url": url_for("dashboard.alert_page", alert_id=r.alert_id),
            }
            for r in result.rows
        ]
        body["urgent"] = [
            {
                "id": u.alert_id,
                "team": u.team_name,
                "url": url_for("dashboard.alert_page", alert_id=u.alert_id),
            }
            | ({"ref": u.ref, "category": category_label(u.category)} if u.in_scope else {})
            for u in urgent
        ]
    return jsonify(body)


@bp.post("/queue/alerts/<int:alert_id>/acknowledge")
def queue_acknowledge(alert_id: int) -> ResponseReturnValue:
    """Acknowledge from the queue's row: the same life-cycle call and audit row as the alert page's button,
    answered where the nurse is (JSON for the page's script, which then patches the row in place; without
    script, back to the filtered queue)."""
    session = db()
    alert = _locked_alert(alert_id)
    staff = current_staff()
    done = False
    team_id = _may_act(alert)
    if team_id is None:
        session.rollback()
        if request.accept_mimetypes.best == "application/json":
            message = "This alert is outside your care teams: open it to break the glass."
            return jsonify({"acknowledged": False, "message": message}), 403
        return redirect(url_for("dashboard.alert_page", alert_id=alert_id))
    if alert.status == AlertStatus.RESOLVED:
        session.rollback()
        message, kind = f"Alert {alert.ref} was already resolved.", "warning"
    elif acknowledge(session, alert, staff_id=staff.id, actor=actor(), now=runtime().now(), via="dashboard"):
        _audit("acknowledge_alert", ("alert", alert.id), alert.patient_id, team_id, source="queue")
        done, message, kind = True, f"Alert {alert.ref} acknowledged. Escalation stopped.", "success"
    else:
        who = dq.staff_names(session, [alert.acknowledged_by_id]).get(alert.acknowledged_by_id or 0)
        session.rollback()
        message, kind = f"Alert {alert.ref} was already acknowledged by {who or 'someone else'}.", "info"
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"acknowledged": done, "message": message})
    flash(message, kind)
    return redirect(url_for("dashboard.queue", **_filter_args(_filters())))


@bp.get("/a/<ref>")
def alert_by_ref(ref: str) -> ResponseReturnValue:
    """The link in a page ('Open …/a/K3XM7A'): a short PHI-free reference."""
    alert_id = dq.alert_by_ref(db(), ref)
    if alert_id is None:
        abort(404)
    return redirect(url_for("dashboard.alert_page", alert_id=alert_id))


def _rationales(alert: Alert) -> dict[str, str]:
    ruleset = runtime().rulesets.get((alert.ruleset, alert.ruleset_version))
    if ruleset is None:
        return {}
    found = {rule.id: rule.rationale for rule in ruleset.rules}
    found.setdefault("message", ruleset.message_rationale)
    return found


@bp.get("/alerts/<int:alert_id>")
def alert_page(alert_id: int) -> ResponseReturnValue:
    if alert_id > MAX_ID:
        abort(404)
    session = db()
    view = dq.alert_view(session, alert_id)
    if view is None:
        abort(404)
    if not access.can_act_on_alert(session, current_staff(), _scope(), view.alert, view.team.id):
        return _refused(view.patient.id, view.team.id, view.alert.id)
    now = runtime().now()
    patient = view.patient
    before = _int(request.args.get("before"))
    messages, older = dq.timeline(session, patient.id, before_id=before, limit=30)
    trend = dq.trend(session, patient.id, now)
    # The labs are part of the record this view's audit row covers (one row per view, as for the answers).
    lab_rows = dq.latest_labs(session, patient.id)
    lab_states = dq.evidence_results(session, dq.evidence_result_ids(view.alert.evidence))
    # "For the call" (profile, carer, unanswered red flags, the safety text) is covered by the same row.
    call = clinical_profile.call_info(session, view.alert, runtime().instruments)
    _audit("view_alert", ("alert", view.alert.id), patient.id, view.team.id)
    evidence_messages = {ev.get("message_id") for ev in view.alert.evidence if ev.get("message_id")}
    evidence_check_ins = {ev.get("check_in_id") for ev in view.alert.evidence if ev.get("check_in_id")}
    return render_template(
        "dashboard/alert.html",
        view=view,
        alert=view.alert,
        patient=patient,
        team=view.team,
        check_ins=dq.recent_check_ins(session, patient.id, 4),
        trend=trend,
        chart=charts.build(trend, view.team.timezone),
        flag_items=dq.FLAG_ITEMS,
        messages=messages,
        older=older,
        rationales=_rationales(view.alert),
        evidence_messages=evidence_messages,
        evidence_check_ins=evidence_check_ins,
        instruments=runtime().instruments,
        lab_rows=lab_rows,
        lab_states=lab_states,
        withdrawn_evidence=any(state.withdrawn_at is not None for state in lab_states.values()),
        call=call,
        call_script=runtime().call_scripts.get(view.alert.category),
        continence_labels=clinical_profile.CONTINENCE_LABELS,
        rag_outcomes=RAG_OUTCOMES,
        break_glass_until=_break_glass_until(patient.id, view.team.id),
        assignees=eligible_assignees(session, view.alert, now)
        if view.alert.status != AlertStatus.RESOLVED
        else [],
        reopen_min=REOPEN_MIN_REASON,
    )


def _locked_alert(alert_id: int) -> Alert:
    if alert_id > MAX_ID:
        abort(404)
    alert = db().scalar(select(Alert).where(Alert.id == alert_id).with_for_update(**ROW_LOCK))
    if alert is None:
        abort(404)
    return alert


def _acting_on(alert_id: int) -> tuple[Alert, int, ResponseReturnValue | None]:
    """The locked alert, its patient's team, and the break-glass page to answer instead when the alert is
    outside the nurse's scope (then nothing is locked any more)."""
    alert = _locked_alert(alert_id)
    team_id = _alert_team(alert)
    if access.can_act_on_alert(db(), current_staff(), _scope(), alert, team_id):
        return alert, team_id, None
    patient_id = alert.patient_id
    db().rollback()
    return alert, team_id, _refused(patient_id, team_id, alert_id)


def _back(alert_id: int) -> ResponseReturnValue:
    return redirect(url_for("dashboard.alert_page", alert_id=alert_id))


@bp.post("/alerts/<int:alert_id>/acknowledge")
def acknowledge_alert(alert_id: int) -> ResponseReturnValue:
    session = db()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    staff = current_staff()
    if alert.status == AlertStatus.RESOLVED:
        flash("This alert was already resolved.", "warning")
        return _back(alert_id)
    if acknowledge(session, alert, staff_id=staff.id, actor=actor(), now=runtime().now(), via="dashboard"):
        _audit("acknowledge_alert", ("alert", alert.id), alert.patient_id, team_id)
        flash(f"Alert {alert.ref} acknowledged. Escalation stopped.", "success")
    else:
        names = dq.staff_names(session, [alert.acknowledged_by_id])
        who = names.get(alert.acknowledged_by_id or 0, "someone else")
        session.rollback()
        flash(f"Alert {alert.ref} was already acknowledged by {who}.", "info")
    return _back(alert_id)


@bp.post("/alerts/<int:alert_id>/notes")
def note_alert(alert_id: int) -> ResponseReturnValue:
    session = db()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    note = (request.form.get("note") or "").strip()[:4000]
    staff = current_staff()
    try:
        add_note(session, alert, staff_id=staff.id, actor=actor(), now=runtime().now(), note=note)
    except AlertActionError:
        session.rollback()
        flash("Write something in the note first.", "warning")
        return _back(alert_id)
    _audit("note_alert", ("alert", alert.id), alert.patient_id, team_id)
    flash("Note added.", "success")
    return _back(alert_id)


@bp.post("/alerts/<int:alert_id>/resolve")
def resolve_alert(alert_id: int) -> ResponseReturnValue:
    session = db()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    outcome = request.form.get("outcome") or ""
    rag = request.form.get("rag") or ""
    note = (request.form.get("note") or "").strip()[:4000] or None
    if outcome not in OUTCOMES or rag not in RAG_OUTCOMES:
        session.rollback()
        flash("Choose an outcome and a RAG grade (red, amber or green) to resolve the alert.", "warning")
        return _back(alert_id)
    staff = current_staff()
    try:
        resolve(
            session,
            alert,
            staff_id=staff.id,
            actor=actor(),
            now=runtime().now(),
            outcome=outcome,
            note=note,
            rag=rag,
        )
    except AlertActionError as exc:
        session.rollback()
        flash(f"Not resolved: {exc}.", "warning")
        return _back(alert_id)
    _audit("resolve_alert", ("alert", alert.id), alert.patient_id, team_id, outcome=outcome, rag=rag)
    flash(f"Alert {alert.ref} resolved: {OUTCOMES[outcome]} ({rag}).", "success")
    return redirect(url_for("dashboard.queue"))


@bp.post("/alerts/<int:alert_id>/assign")
def assign_alert(alert_id: int) -> ResponseReturnValue:
    """ "Assign to me" (`staff=me`) or to a colleague (`staff=<id>`): the service checks the new owner may
    act on the patient; the nurse assigning must be able to act on the alert (as for every action)."""
    session = db()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    staff = current_staff()
    wanted = request.form.get("staff") or ""
    to_id = staff.id if wanted == "me" else _int(wanted)
    to_staff = session.get(StaffUser, to_id) if to_id is not None else None
    if to_staff is None:
        session.rollback()
        flash("Choose who to assign the alert to.", "warning")
        return _back(alert_id)
    try:
        changed = assign(session, alert, to_staff, by_staff_id=staff.id, actor=actor(), now=runtime().now())
    except AlertActionError as exc:
        session.rollback()
        flash(f"Not assigned: {exc}.", "warning")
        return _back(alert_id)
    if not changed:
        session.rollback()
        flash(f"Alert {alert.ref} is already assigned to {to_staff.name}.", "info")
        return _back(alert_id)
    _audit("assign_alert", ("alert", alert.id), alert.patient_id, team_id, to_staff_id=to_staff.id)
    who = "you" if to_staff.id == staff.id else to_staff.name
    flash(f"Alert {alert.ref} assigned to {who}.", "success")
    return _back(alert_id)


@bp.post("/alerts/<int:alert_id>/reopen")
def reopen_alert(alert_id: int) -> ResponseReturnValue:
    session = db()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    reason = (request.form.get("reason") or "").strip()[:1000]
    staff = current_staff()
    try:
        reopen(session, alert, staff_id=staff.id, actor=actor(), now=runtime().now(), reason=reason)
    except AlertActionError as exc:
        session.rollback()
        flash(f"Not reopened: {exc}.", "warning")
        return _back(alert_id)
    _audit("reopen_alert", ("alert", alert.id), alert.patient_id, team_id, reason=" ".join(reason.split()))
    flash(f"Alert {alert.ref} reopened and acknowledged by you.", "success")
    return _back(alert_id)


@bp.get("/handover")
def handover() -> ResponseReturnValue:
    """Open and acknowledged alerts per care team with their last note, to hand over a shift (printable).
    Shows names, so it is audited: one row listing the patients disclosed (as the queue writes one row)."""
    session = db()
    teams, truncated = dq.handover(session, _scope())
    patient_ids = sorted({h.row.patient_id for t in teams for h in t.rows})
    audit(
        "view_handover", ("alert", None), None, shown=sum(len(t.rows) for t in teams), patient_ids=patient_ids
    )
    disclosed(actor(), "handover", patient_ids)
    return render_template("dashboard/handover.html", teams=teams, truncated=truncated)


@bp.post("/alerts/<int:alert_id>/escalate")
def escalate_alert(alert_id: int) -> ResponseReturnValue:
    """Page the next level of the on-call rota now (the same paging as the automatic escalation)."""
    session = db()
    rt = runtime()
    alert, team_id, refused = _acting_on(alert_id)
    if refused is not None:
        return refused
    if alert.status == AlertStatus.RESOLVED:
        flash("This alert is resolved; nothing to escalate.", "warning")
        return _back(alert_id)
    staff = current_staff()
    now = rt.now()
    wait = manual_escalation_wait(session, alert, now)
    if wait is not None:
        flash(
            f"The next level was paged moments ago; you can page again in {int(wait.total_seconds()) + 1} s.",
            "warning",
        )
        return _back(alert_id)
    paged = escalate_now(session, rt, alert, staff_id=staff.id, actor=actor(), now=now)
    _audit("escalate_alert", ("alert", alert.id), alert.patient_id, team_id, step=alert.escalation_level)
    if paged:
        names = ", ".join(sorted(dq.staff_names(session, paged).values()))
        flash(f"Paged escalation step {alert.escalation_level}: {names}.", "success")
    else:
        flash("Nobody could be paged (no one on call with a phone). Call the team directly.", "danger")
    return _back(alert_id)


# --- patients --------------------------------------------------------------------------------------


@bp.get("/patients")
def patients() -> ResponseReturnValue:
    query = (request.args.get("q") or "").strip()[:100]
    found = dq.search_patients(db(), query, _scope()) if query else []
    outside = dq.outside_scope_by_mrn(db(), query, _scope()) if query else None
    if query:
        audit("search_patients", ("patient", None), None, results=len(found))
        disclosed(actor(), "patient_search", (p.id for p in found))
    return render_template("dashboard/patients.html", query=query, patients=found, outside_id=outside)


@bp.get("/patients/<int:patient_id>")
def patient_page(patient_id: int) -> ResponseReturnValue:
    if patient_id > MAX_ID:
        abort(404)
    session = db()
    view = dq.patient_view(session, patient_id)
    if view is None:
        abort(404)
    patient = view.patient
    if not access.can_see_patient(db(), current_staff(), _scope(), patient):
        return _refused(patient.id, patient.care_team_id)
    now = runtime().now()
    before = _int(request.args.get("before"))
    messages, older = dq.timeline(session, patient.id, before_id=before, limit=60)
    trend = dq.trend(session, patient.id, now)
    lab_rows = dq.latest_labs(session, patient.id)
    calcium = dq.calcium_trend(session, patient.id, now)
    profile = clinical_profile.get_profile(session, patient.id)
    _audit("view_patient", ("patient", patient.id), patient.id, patient.care_team_id)
    return render_template(
        "dashboard/patient.html",
        view=view,
        patient=patient,
        team=patient.care_team,
        adherence=dq.adherence(session, patient.id, now),
        trend=trend,
        chart=charts.build(trend, patient.care_team.timezone),
        flag_items=dq.FLAG_ITEMS,
        messages=messages,
        older=older,
        check_ins=dq.recent_check_ins(session, patient.id, 4),
        next_due=_next_due(view, now),
        instruments=runtime().instruments,
        lab_rows=lab_rows,
        calcium_trend=calcium,
        calcium_chart=charts.build_calcium(calcium, patient.care_team.timezone),
        profile=profile,
        continence_labels=clinical_profile.CONTINENCE_LABELS,
        break_glass_until=_break_glass_until(patient.id, patient.care_team_id),
    )


@bp.route("/patients/<int:patient_id>/profile", methods=["GET", "POST"])
def patient_profile(patient_id: int) -> ResponseReturnValue:
    """The patient's baseline and call information, edited by a nurse or an administrator (the service
    validates and audits each field changed)."""
    session = db()
    patient = session.get(Patient, patient_id) if patient_id <= MAX_ID else None
    if patient is None:
        abort(404)
    if not access.can_see_patient(db(), current_staff(), _scope(), patient):
        return _refused(patient.id, patient.care_team_id)
    # Being paged for a patient opens the record to read; changing the baseline (which decides what pages
    # later) needs the patient's team or a break-glass.
    if request.method == "POST" and not _scope().allows(patient.id, patient.care_team_id):
        return _refused(patient.id, patient.care_team_id)
    error: clinical_profile.ProfileError | None = None
    if request.method == "POST":
        staff = current_staff()
        try:
            changed = clinical_profile.update_profile(
                session,
                patient.id,
                clinical_profile.form_changes(request.form),
                actor=actor(),
                staff_id=staff.id,
                now=runtime().now(),
                ip=request.remote_addr,
            )
        except clinical_profile.ProfileError as exc:
            session.rollback()
            error = exc
        else:
            flash("Clinical profile saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("dashboard.patient_page", patient_id=patient.id))
    else:
        _audit("view_patient", ("patient", patient.id), patient.id, patient.care_team_id, page="profile")
    prof = clinical_profile.get_profile(session, patient.id)
    names = dq.staff_names(session, [prof.updated_by_id] if prof else [])
    return (
        render_template(
            "dashboard/patient_profile.html",
            patient=patient,
            prof=prof,
            pv=dict(request.form) if error else {},
            error={"message": error.sentence} if error else None,
            continence_labels=clinical_profile.CONTINENCE_LABELS,
            updated_by=names.get(prof.updated_by_id or 0) if prof else None,
            break_glass_until=_break_glass_until(patient.id, patient.care_team_id),
        ),
        400 if error else 200,
    )


def _next_due(view: dq.PatientView, now: Any) -> dict[int, Any]:
    from pro_service.scheduling import ScheduleError, next_occurrence

    out = {}
    for schedule in view.schedules:
        try:
            out[schedule.id] = (
                next_occurrence(
                    schedule.rrule, view.patient.timezone, schedule.start_date, schedule.end_date, now
                )
                if schedule.active
                else None
            )
        except ScheduleError:
            out[schedule.id] = None
    return out


@bp.post("/patients/<int:patient_id>/check-ins")
def start_check_in(patient_id: int) -> ResponseReturnValue:
    """Send the weekly check-in now (a staff request: quiet hours do not apply)."""
    session = db()
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update(**ROW_LOCK))
    if patient is None:
        abort(404)
    if not _scope().allows(patient.id, patient.care_team_id):  # acting needs the team or a break-glass
        team_id = patient.care_team_id
        session.rollback()
        return _refused(patient_id, team_id)
    instrument = request.form.get("instrument") or "sre-weekly"
    try:
        check_in = start_now(session, runtime(), patient, instrument)
    except CheckInError as exc:
        session.rollback()
        flash(f"Check-in not sent: {exc}.", "warning")
        return redirect(url_for("dashboard.patient_page", patient_id=patient_id))
    _audit("start_check_in", ("check_in", check_in.id), patient.id, patient.care_team_id)
    flash("Check-in sent: the first question is on its way.", "success")
    return redirect(url_for("dashboard.patient_page", patient_id=patient_id))


@bp.post("/patients/<int:patient_id>/break-glass")
def break_glass(patient_id: int) -> ResponseReturnValue:
    """Open one patient outside the nurse's scope for `BREAK_GLASS_MINUTES`, with a reason (audited)."""
    session = db()
    patient = session.get(Patient, patient_id) if patient_id <= MAX_ID else None
    if patient is None:
        abort(404)
    alert_id = _int(request.form.get("alert"))
    alert = session.get(Alert, alert_id) if alert_id is not None else None
    if alert is None or alert.patient_id != patient.id:
        alert_id = None  # only back to an alert of this patient
    target = (
        url_for("dashboard.alert_page", alert_id=alert_id)
        if alert_id is not None
        else url_for("dashboard.patient_page", patient_id=patient.id)
    )
    if _scope().in_scope(patient.id, patient.care_team_id):
        return redirect(target)  # nothing to break: their own patient (or an administrator)
    reason = " ".join((request.form.get("reason") or "").split())
    problem = access.reason_problem(reason)
    if problem is not None:
        return _refused(patient.id, patient.care_team_id, alert_id, error=problem, reason=reason[:500])
    now = runtime().now()
    audit(
        "break_glass",
        ("patient", patient.id),
        patient.id,
        reason=reason,
        minutes=access.BREAK_GLASS_MINUTES,
        alert_id=alert_id,
    )
    grants = access.grant(_grants(), patient.id, now)
    web_session[BREAK_GLASS_KEY] = {
        "staff": current_staff().id,
        "until": {str(pid): until for pid, until in grants.items()},
    }
    g.pop("access_scope", None)
    flash(f"Break-glass: this patient is open to you for {access.BREAK_GLASS_MINUTES} minutes.", "warning")
    return redirect(target)
