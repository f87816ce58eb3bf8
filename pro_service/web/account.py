"""A staff member's own account: change the password (required after a temporary one), the signed-in
devices with "sign out everywhere else", and the second factor (an authenticator app: enrol, replace,
remove). Thin views over services/staff.py, services/sessions.py and services/mfa.py."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from pro_service.models import StaffUser, utcnow
from pro_service.services import mfa, sessions, sign_in
from pro_service.services.staff import StaffError, change_password
from pro_service.web.auth import actor, audit, current_session, current_staff, limiter, max_age_seconds
from pro_service.web.common import db, runtime

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    staff = current_staff()
    if request.method == "GET":
        return render_template("auth/password.html", error=None, field="")
    ip = request.remote_addr or "unknown"
    # The current password is a guess like any other: the sign-in throttle counts wrong ones here too.
    wait = limiter().retry_after(staff.email, ip)
    if wait:
        error = f"Too many wrong passwords. Please wait {max(1, round(wait / 60))} minute(s) and try again."
        return render_template("auth/password.html", error=error, field=""), 429, {"Retry-After": str(wait)}
    try:
        ended = change_password(
            db(),
            staff,
            current=request.form.get("current_password") or "",
            new=request.form.get("password") or "",
            confirm=request.form.get("password_confirm") or "",
            keep_session_id=current_session().id,
            now=utcnow(),
        )
    except StaffError as exc:  # an `errors.Invalid`: its field is marked on the form
        db().rollback()
        if exc.field == "current_password":
            limiter().failed(staff.email, ip)
        return render_template("auth/password.html", error=str(exc), field=exc.field), 400
    limiter().succeeded(staff.email, ip)
    audit("change_password", ("staff", staff.id), None, other_sessions_ended=ended)
    others = f" {ended} other session{'s' * (ended != 1)} signed out." if ended else ""
    flash(f"Password changed.{others}", "success")
    return redirect(url_for("dashboard.queue"))


@bp.get("/sessions")
def devices() -> ResponseReturnValue:
    rows = sessions.live(db(), current_staff().id, utcnow(), timedelta(seconds=max_age_seconds()))
    return render_template("auth/sessions.html", rows=rows, current_id=current_session().id)


@bp.post("/sessions/end-others")
def end_others() -> ResponseReturnValue:
    staff, now = current_staff(), utcnow()
    ended = sessions.end_all(db(), staff.id, "signed_out_elsewhere", now, except_id=current_session().id)
    audit("end_other_sessions", ("staff", staff.id), None, ended=ended)
    flash(f"Signed out everywhere else ({ended} session{'s' * (ended != 1)}).", "success")
    return redirect(url_for("account.devices"))


@bp.post("/sessions/<int:session_id>/end")
def end_one(session_id: int) -> ResponseReturnValue:
    staff = current_staff()
    if session_id != current_session().id and sessions.end_one(
        db(), staff.id, session_id, "signed_out_elsewhere", utcnow()
    ):
        audit("end_session", ("staff", staff.id), None, session=session_id)
        flash("That device is signed out.", "success")
    return redirect(url_for("account.devices"))


# --- second factor ------------------------------------------------------------------------------------


def _mfa_page(staff: StaffUser, *, status: int = 200, **context: object) -> ResponseReturnValue:
    required = mfa.required(staff, runtime().settings.mfa_required_roles)
    page = render_template(
        "auth/mfa.html",
        enrolled=mfa.enrolled(staff),
        pending=staff.totp_pending_secret is not None,
        required=required,
        **{"secret": None, "uri": None, "error": None, **context},
    )
    return page, status, {"Cache-Control": "no-store"}


def _password_refused(staff: StaffUser) -> ResponseReturnValue | None:
    """The current password, asked again before the second factor is replaced or removed (throttled):
    None when it is right, otherwise the page to answer with."""
    ip = request.remote_addr or "unknown"
    wait = limiter().retry_after(staff.email, ip)
    if wait:
        error = f"Too many wrong passwords. Please wait {max(1, round(wait / 60))} minute(s) and try again."
        return _mfa_page(staff, status=429, error=error)
    if not sign_in.password_matches(staff, request.form.get("current_password") or ""):
        limiter().failed(staff.email, ip)
        return _mfa_page(staff, status=400, error="current_password: this is not your current password")
    return None


@bp.get("/mfa", endpoint="mfa")
def mfa_status() -> ResponseReturnValue:
    return _mfa_page(current_staff())


@bp.post("/mfa/start")
def mfa_start() -> ResponseReturnValue:
    """A new secret, shown on this page only (as text and as an otpauth:// link for the app). The password
    is asked first, every time: a copied session cookie alone must not bind someone else's authenticator to
    the account (and lock its owner out)."""
    staff = current_staff()
    refusal = _password_refused(staff)
    if refusal is not None:
        return refusal
    secret = mfa.begin_enrolment(
        db(), staff, secret_key=runtime().settings.SECRET_KEY, actor=actor(), ip=request.remote_addr
    )
    return _mfa_page(staff, secret=secret, uri=mfa.provisioning_uri(secret, staff.email))


@bp.post("/mfa/confirm")
def mfa_confirm() -> ResponseReturnValue:
    staff = current_staff()
    ip = request.remote_addr or "unknown"
    wait = limiter().retry_after(staff.email, ip)
    if wait:
        error = f"Too many wrong codes. Please wait {max(1, round(wait / 60))} minute(s) and try again."
        return _mfa_page(staff, status=429, error=error)
    ended = mfa.finish_enrolment(
        db(),
        staff,
        request.form.get("code") or "",
        secret_key=runtime().settings.SECRET_KEY,
        actor=actor(),
        ip=request.remote_addr,
        now=utcnow(),
        keep_session_id=current_session().id,
    )
    if ended is None:
        limiter().failed(staff.email, ip)
        error = "code: that is not the code the app shows for this set-up. Type the current code."
        return _mfa_page(staff, status=400, error=error)
    limiter().succeeded(staff.email, ip)
    flash("Your authenticator app is set up: sign-in will ask for its code.", "success")
    return redirect(url_for("dashboard.queue"))


@bp.post("/mfa/remove")
def mfa_remove() -> ResponseReturnValue:
    staff = current_staff()
    if mfa.required(staff, runtime().settings.mfa_required_roles):
        return _mfa_page(staff, status=400, error="Your role needs a second factor: replace it instead.")
    refusal = _password_refused(staff)
    if refusal is not None:
        return refusal
    mfa.remove_factor(db(), staff, actor=actor(), ip=request.remote_addr)
    flash("Second factor removed: sign-in asks for your password only.", "success")
    return redirect(url_for("account.mfa"))
