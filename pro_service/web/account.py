"""A staff member's own account: change the password (required after a temporary one) and the signed-in
devices, with "sign out everywhere else". Thin views over services/staff.py and services/sessions.py."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from pro_service.models import utcnow
from pro_service.services import sessions
from pro_service.services.staff import StaffError, change_password
from pro_service.web.auth import audit, current_session, current_staff, limiter, max_age_seconds
from pro_service.web.common import db

bp = Blueprint("account", __name__, url_prefix="/account")


def _field(message: str) -> str:
    """The field a service error names ("password: …" → "password"), to mark it on the form."""
    name, sep, _ = message.partition(": ")
    return name if sep and name.replace("_", "").isalpha() else ""


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
    except StaffError as exc:
        db().rollback()
        message = str(exc)
        if message.startswith("current_password:"):
            limiter().failed(staff.email, ip)
        return render_template("auth/password.html", error=message, field=_field(message)), 400
    limiter().succeeded(staff.email, ip)
    audit("change_password", ("staff", staff.id), None, other_sessions_ended=ended)
    db().commit()
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
    db().commit()
    flash(f"Signed out everywhere else ({ended} session{'s' * (ended != 1)}).", "success")
    return redirect(url_for("account.devices"))


@bp.post("/sessions/<int:session_id>/end")
def end_one(session_id: int) -> ResponseReturnValue:
    staff = current_staff()
    if session_id != current_session().id and sessions.end_one(
        db(), staff.id, session_id, "signed_out_elsewhere", utcnow()
    ):
        audit("end_session", ("staff", staff.id), None, session=session_id)
        db().commit()
        flash("That device is signed out.", "success")
    return redirect(url_for("account.devices"))
