"""Staff sign-in: email and password (argon2), roles nurse and admin, sessions that end after idle time.

The session is a server-side row (`staff_sessions`, services/sessions.py) named by a random token in
Flask's signed cookie (HttpOnly, SameSite=Lax, Secure behind https); the cookie also keeps the sign-in time
and the last activity time for the timers below. Every request checks the row: logout ends it (a copied
cookie is then dead), and a password change or reset, a deactivation or an administrator ends every row of
the account at once. People see and end their own sessions at /account/sessions (web/account.py).

A temporary password (an administrator created the account or reset it: `must_change_password`) allows
nothing but the change-password page and sign-out until it is changed.

Second factor (services/mfa.py): an account with a confirmed authenticator is asked for its code after the
password (/login/code; the half-signed-in state is a short-lived mark in the signed cookie, no session row
yet); wrong codes count towards the sign-in throttle like wrong passwords, and a code is never accepted
twice. A password sign-in of a role in MFA_REQUIRED_ROLES (default: administrators) without a confirmed
authenticator allows nothing but enrolment (/account/mfa) and sign-out until it is confirmed.

Single sign-on (services/sso.py, Authlib's Flask client): "Sign in with your hospital account" when
OIDC_ISSUER is set; the provider is trusted for the second factor.

Equal time (services/sign_in.py): every refusal of the password form costs one argon2 verification, so its
time does not tell an unknown email from a deactivated or throttled account.

Idle expiry: `app.config["SESSION_IDLE_MINUTES"]` (15). Every page view or form post counts as activity;
the queue's poll does not (an unattended screen must not stay signed in forever). The pages' script
reports real activity (keys, pointer, scroll) to POST /session/ping at most once a minute, so a nurse
typing a long note is not signed out under it, and sends an idle screen to the sign-in page so no patient
data stays on it. A hard limit (`SESSION_MAX_HOURS`, 12: a shift) applies whatever the activity.

The triage queue is a watch screen: once idle it is covered by a privacy screen instead of leaving. An idle
session is locked, not ended: it may still call the `WATCH_ENDPOINTS` (the queue's poll, which then answers
without names or MRNs: counts and the urgent banner), and nothing else. Every other request, the activity
ping included, is sent to sign in (the password again), so a locked screen cannot be revived by a mouse
move and no action is taken on a stale session. The cookie is kept on that refusal (the watch goes on);
the sign-in page, sign-out and the hard limit end it.

Default deny: every endpoint needs a session except sign-in, static files, /healthz, the Twilio webhooks
and the API (bearer tokens), so a page added later is protected without anyone remembering to. After the
session check, odd input (NUL, digits other than 0-9, numbers past an id) is refused for every page in one
place (`common.refuse_odd_input`): a 400, never a database error.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError
from sqlalchemy import func, select
from werkzeug.exceptions import Forbidden, NotFound

from pro_service.models import StaffRole, StaffSession, StaffUser, utcnow
from pro_service.services import mfa, sessions, sign_in, sso
from pro_service.services.audit import record
from pro_service.web.common import audit_request, db, refuse_odd_input, runtime
from pro_service.web.login_limit import LoginLimiter

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

# Reachable without a staff session: sign-in, static files, the Prometheus scrape (/metrics, meant to be
# reachable only from the monitoring network), and blueprints that authenticate otherwise: Twilio webhooks
# (signatures), the REST and FHIR APIs (bearer tokens), health probes. Everything else needs a session.
PUBLIC_ENDPOINTS = frozenset(
    {"auth.login", "auth.login_code", "auth.sso_start", "auth.sso_callback", "static", "metrics"}
)
SESSIONLESS_BLUEPRINTS = frozenset({"twilio", "api", "fhir", "health"})
# Requests that do not count as activity (they run on a timer, not because somebody is there).
PASSIVE_ENDPOINTS = frozenset({"dashboard.queue_poll", "simulator.thread_poll", "auth.ping"})
# Answered for an idle (locked) session too, without PHI (`privacy_screen()` tells the view).
WATCH_ENDPOINTS = frozenset({"dashboard.queue_poll"})
# All that a temporary password allows (the ping keeps the change page from idling out under a typist).
PASSWORD_CHANGE_ENDPOINTS = frozenset({"account.password", "auth.logout", "auth.ping"})
# All that a password sign-in allows a role that must use a second factor until one is confirmed.
MFA_ENROL_ENDPOINTS = frozenset(
    {"account.mfa", "account.mfa_start", "account.mfa_confirm", "auth.logout", "auth.ping"}
)
IDLE_REASON = "You were signed out after {} without activity, to protect patient data."
# How long the code step may follow the password step.
CODE_STEP_SECONDS = 300
OIDC_CLIENT = "hospital"


def idle_seconds() -> float:
    return float(current_app.config["SESSION_IDLE_MINUTES"]) * 60


def _idle_words() -> str:
    seconds = round(idle_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"


def current_staff() -> StaffUser:
    staff: StaffUser = g.staff
    return staff


def current_session() -> StaffSession:
    """The server-side row of this request's session (set by the guard)."""
    found: StaffSession = g.session_record
    return found


def max_age_seconds() -> float:
    return float(current_app.config["SESSION_MAX_HOURS"]) * 3600


def actor() -> str:
    return f"staff:{current_staff().id}"


def is_admin() -> bool:
    staff = g.get("staff")
    return staff is not None and staff.role == StaffRole.ADMIN


def audit(action: str, subject: tuple[str, object], patient_id: int | None = None, **detail: Any) -> None:
    """Write an audit row for the signed-in staff member (kept when the request's answer is a success)."""
    audit_request(actor(), action, subject, patient_id, detail)


def limiter() -> LoginLimiter:
    found: LoginLimiter = current_app.extensions["pro_login_limiter"]
    return found


def require_admin() -> None:
    if not is_admin():
        raise Forbidden("This page is for administrators.")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil.example): no open redirect."""
    if not target:
        return url_for("dashboard.queue")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.queue")
    if "\\" in target or any(ord(c) < 32 for c in target):
        return url_for("dashboard.queue")
    return target


def _wants_json() -> bool:
    return request.endpoint in PASSIVE_ENDPOINTS or request.accept_mimetypes.best == "application/json"


def privacy_screen() -> bool:
    """This request comes from a locked (idle) session: answer it without names, MRNs or symptoms."""
    return bool(g.get("privacy_screen"))


def _signed_out(reason: str, *, keep_watch: bool = False) -> ResponseReturnValue:
    if not keep_watch:
        session.clear()
    if _wants_json():
        return jsonify({"error": "signed_out", "detail": reason}), 401
    flash(reason, "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target))


def is_idle(now: float) -> bool:
    return now - float(session.get("seen", 0)) > idle_seconds()


def _end_record(found: StaffSession, reason: str) -> None:
    # Its own transaction: the guard may answer 401 next, and the request's unit of work rolls that back.
    sessions.end_now(db(), found, reason, utcnow())


def _session_problem(now: float, *, allow_idle: bool = False) -> tuple[StaffUser | None, str | None]:
    """(staff, None) for a live session; (None, reason) otherwise. Reason None with no staff: no session.
    `allow_idle`: an idle session is acceptable (a watch endpoint; the caller answers without PHI).
    The cookie's token must name a session row that has not ended (one indexed read with the account)."""
    token = session.get("sid")
    if not isinstance(token, str):
        return None, None
    found = sessions.find(db(), token)
    if found is None:
        return None, "Please sign in to continue."
    live, staff = found
    if live.ended_at is not None:
        return None, sessions.REASONS.get(live.ended_reason or "", "Your session ended. Please sign in.")
    if is_idle(now) and not allow_idle:
        return None, IDLE_REASON.format(_idle_words())
    age = (utcnow() - live.created_at).total_seconds()
    if max(now - float(session.get("at", 0)), age) > max_age_seconds():
        _end_record(live, "time_limit")
        return None, sessions.REASONS["time_limit"]
    if not staff.active:
        _end_record(live, "deactivated")
        return None, sessions.REASONS["deactivated"]
    if not sessions.is_current(live, staff):
        _end_record(live, "password_changed")
        return None, sessions.REASONS["password_changed"]
    g.session_record = live
    return staff, None


def _end_cookie_session(reason: str) -> None:
    """End the row the cookie names (if it is still live) and forget the cookie."""
    token = session.get("sid")
    if isinstance(token, str):
        found = sessions.find(db(), token)
        if found is not None:
            _end_record(found[0], reason)
    session.clear()


def touch() -> None:
    """Activity: the cookie's idle clock restarts; the row's `last_seen_at` moves at most once a minute."""
    session["seen"] = time.time()
    live = g.get("session_record")
    if live is not None:
        sessions.touch_now(db(), live, utcnow())


def is_sessionless() -> bool:
    """A request to a blueprint that authenticates without a session (and so needs no CSRF token)."""
    names = SESSIONLESS_BLUEPRINTS | set(current_app.config.get("AUTH_SESSIONLESS_BLUEPRINTS", ()))
    return request.blueprint in names


def _guard() -> ResponseReturnValue | None:
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS or is_sessionless():
        return None  # unknown URL (404), sign-in, static, webhooks, APIs, health
    now = time.time()
    watch = endpoint in WATCH_ENDPOINTS
    staff, reason = _session_problem(now, allow_idle=watch)
    if staff is None:
        # Idle is a lock: keep the cookie for the PHI-free watch; any other reason ends the session.
        idle_lock = reason is not None and not watch and is_idle(now)
        return _signed_out(reason or "Please sign in to continue.", keep_watch=idle_lock)
    g.staff = staff
    g.privacy_screen = watch and is_idle(now)
    if staff.must_change_password and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return _change_password_first()
    if needs_mfa_enrolment(staff) and endpoint not in MFA_ENROL_ENDPOINTS:
        return _enrol_first()
    if endpoint not in PASSIVE_ENDPOINTS:
        touch()
    return None


def _change_password_first() -> ResponseReturnValue:
    reason = "Choose a new password to continue: yours is a temporary one."
    if _wants_json():
        return jsonify({"error": "password_change_required", "detail": reason}), 403
    flash(reason, "warning")
    return redirect(url_for("account.password"))


def needs_mfa_enrolment(staff: StaffUser) -> bool:
    """A password sign-in of a role that must use a second factor, without one confirmed yet."""
    roles = runtime().settings.mfa_required_roles
    return session.get("via") != "sso" and mfa.required(staff, roles) and not mfa.enrolled(staff)


def _enrol_first() -> ResponseReturnValue:
    reason = "Set up your authenticator app to continue: your role needs a second factor."
    if _wants_json():
        return jsonify({"error": "mfa_enrolment_required", "detail": reason}), 403
    flash(reason, "warning")
    return redirect(url_for("account.mfa"))


def install(app: Flask) -> None:
    app.config.setdefault("SESSION_IDLE_MINUTES", 15)
    app.config.setdefault("SESSION_MAX_HOURS", 12)
    settings = app.extensions["pro"].settings
    app.extensions["pro_login_limiter"] = LoginLimiter(settings.REDIS_URL)
    if settings.oidc_enabled:
        # Discovery is lazy (the first sign-in reads the provider's metadata, then it is cached): a provider
        # that is down does not stop the web starting, and password sign-in goes on working.
        oauth = OAuth(app)
        oauth.register(
            OIDC_CLIENT,
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET,
            server_metadata_url=f"{settings.OIDC_ISSUER}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "default_timeout": 10},
        )
        app.extensions["pro_oidc"] = oauth
    app.context_processor(lambda: {"sso_enabled": settings.oidc_enabled})
    app.before_request(_guard)
    app.before_request(refuse_odd_input)  # after the session check: who is asking comes first


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        staff, reason = _session_problem(time.time())
        if staff is not None:
            return redirect(target)
        if reason:
            _end_cookie_session("idle")  # a locked screen's session ends here (other reasons already did)
            flash(reason, "info")
        elif request.args.get("idle"):
            flash(IDLE_REASON.format(_idle_words()), "info")
        return render_template("auth/login.html", next=request.args.get("next", ""), email="")

    email = (request.form.get("email") or "").strip().lower()[:254]
    password = request.form.get("password") or ""
    ip = request.remote_addr or "unknown"
    wait = limiter().retry_after(email, ip)
    if wait:
        sign_in.spend_equal_time()  # a throttled answer takes as long as any other refusal
        log.warning("sign-in throttled")
        return _throttled("auth/login.html", wait, next=request.form.get("next", ""), email=email)
    staff = db().scalar(select(StaffUser).where(func.lower(StaffUser.email) == email)) if email else None
    if not sign_in.password_matches(staff, password) or staff is None:
        limiter().failed(email, ip)
        sign_in.record_refusal(db(), staff.id if staff else None, ip=ip, now=runtime().now())
        return (
            render_template(
                "auth/login.html",
                next=request.form.get("next", ""),
                email=email,
                error="That email and password do not match an active account.",
            ),
            401,
        )
    if mfa.enrolled(staff):
        # The password was right; the session starts only after the code. The throttle is not cleared
        # yet: wrong codes go on counting with the wrong passwords.
        session["mfa_pending"] = {
            "staff": staff.id,
            "stamp": sessions.password_stamp(staff),
            "until": time.time() + CODE_STEP_SECONDS,
            "next": target,
        }
        return redirect(url_for("auth.login_code"))
    limiter().succeeded(email, ip)
    _start_session(staff, ip, via="password")
    if staff.must_change_password:
        flash("Your password is a temporary one: choose your own to continue.", "warning")
        return redirect(url_for("account.password"))
    if needs_mfa_enrolment(staff):
        flash("Your role needs a second factor: set up your authenticator app to continue.", "warning")
        return redirect(url_for("account.mfa"))
    return redirect(target)


def _throttled(template: str, wait: int, **context: Any) -> ResponseReturnValue:
    minutes = max(1, round(wait / 60))
    error = (
        f"Too many sign-in attempts. Please wait {minutes} minute{'s' * (minutes != 1)} "
        "and try again, or ask an administrator to reset your password."
    )
    return render_template(template, error=error, **context), 429, {"Retry-After": str(wait)}


def _start_session(staff: StaffUser, ip: str, *, via: str, **detail: Any) -> None:
    """A fresh session (and CSRF secret) for the signed-in person; audited (the caller redirects)."""
    _end_cookie_session("replaced")
    now = time.time()
    _live, token = sign_in.begin_session(
        db(), staff, user_agent=request.user_agent.string, ip=ip, via=via, now=utcnow(), **detail
    )
    session.update(sid=token, at=now, seen=now, via=via)
    g.staff = staff


def _pending_code_step() -> tuple[StaffUser, dict[str, Any]] | None:
    """The account whose password was right and whose code is awaited (still valid), or None."""
    pending = session.get("mfa_pending")
    if not isinstance(pending, dict) or float(pending.get("until", 0)) < time.time():
        return None
    staff = db().get(StaffUser, int(pending.get("staff", 0)))
    if staff is None or not staff.active or pending.get("stamp") != sessions.password_stamp(staff):
        return None
    return staff, pending


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> ResponseReturnValue:
    """The second step of a password sign-in for an account with an authenticator app."""
    found = _pending_code_step()
    if found is None:
        session.pop("mfa_pending", None)
        flash("Please sign in again.", "info")
        return redirect(url_for("auth.login"))
    staff, pending = found
    if request.method == "GET":
        return render_template("auth/code.html", error=None)
    ip = request.remote_addr or "unknown"
    wait = limiter().retry_after(staff.email, ip)
    if wait:
        log.warning("sign-in code throttled")
        return _throttled("auth/code.html", wait)
    code = request.form.get("code") or ""
    if not sign_in.second_step(
        db(), staff, code, secret_key=runtime().settings.SECRET_KEY, ip=ip, now=runtime().now()
    ):
        limiter().failed(staff.email, ip)
        error = "That code is not right, or was already used. Type the code your app shows now."
        return render_template("auth/code.html", error=error), 401
    limiter().succeeded(staff.email, ip)
    session.pop("mfa_pending", None)
    _start_session(staff, ip, via="password", factor="totp")
    if staff.must_change_password:
        flash("Your password is a temporary one: choose your own to continue.", "warning")
        return redirect(url_for("account.password"))
    return redirect(_safe_next(str(pending.get("next") or "")))


def _oidc_client() -> Any:
    oauth = current_app.extensions.get("pro_oidc")
    if oauth is None:
        raise NotFound()
    return oauth.create_client(OIDC_CLIENT)


@bp.get("/login/sso")
def sso_start() -> ResponseReturnValue:
    """Off to the hospital's identity provider; it comes back to /login/sso/callback."""
    client = _oidc_client()
    session["sso_next"] = _safe_next(request.args.get("next"))
    callback = runtime().settings.PUBLIC_BASE_URL + url_for("auth.sso_callback")
    try:
        return client.authorize_redirect(callback)
    except (OAuthError, OSError, ValueError) as exc:
        log.warning("identity provider unavailable: %s", type(exc).__name__)
        return _sso_refused("provider_unavailable", "The hospital sign-in is not reachable. Try again.", 503)


def _sso_refused(
    reason: str, message: str, status: int = 403, staff_id: int | None = None
) -> ResponseReturnValue:
    sign_in.record_refusal(db(), None, ip=request.remote_addr, now=runtime().now(), via="sso", reason=reason)
    return render_template("auth/sso_refused.html", message=message), status


@bp.get("/login/sso/callback")
def sso_callback() -> ResponseReturnValue:
    """The provider sent the person back: Authlib checks state, nonce and the ID token; services/sso.py
    maps the groups to a role and care teams and finds, links or creates the account."""
    client = _oidc_client()
    settings = runtime().settings
    try:
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if "groups" not in claims:
            claims.update({k: v for k, v in client.userinfo(token=token).items() if k != "sub"})
        issuer = client.load_server_metadata().get("issuer")
    except (OAuthError, JoseError, OSError, ValueError, KeyError) as exc:
        # JoseError: a bad ID token (signature, expiry, audience, nonce) as Authlib's joserfc reports it
        log.warning("single sign-on failed: %s", type(exc).__name__)
        return _sso_refused("provider_error", "The hospital sign-in did not complete. Please try again.", 400)
    if issuer != settings.OIDC_ISSUER:
        log.error("OIDC_ISSUER does not match the provider's metadata issuer")
        return _sso_refused(
            "issuer_mismatch", "The hospital sign-in is misconfigured. Tell an administrator.", 502
        )
    try:
        identity = sso.identity_from_claims(issuer, claims)
        staff, changes = sso.sign_in(db(), identity, settings.oidc_group_map)
    except sso.LostAccess as exc:
        db().rollback()
        sso.end_access(db(), exc.staff, ip=request.remote_addr, now=runtime().now())
        return _sso_refused(exc.reason, str(exc))
    except sso.SsoRefused as exc:
        db().rollback()
        return _sso_refused(exc.reason, str(exc))
    ip = request.remote_addr or "unknown"
    if changes:
        action = "staff_provisioned" if changes.get("created") else "staff_updated_by_sso"
        record(
            db(),
            actor=f"sso:{identity.subject}"[:64],
            action=action,
            subject=("staff", staff.id),
            ip=ip,
            at=runtime().now(),
            detail={"groups": list(identity.groups)[:20], "role": str(staff.role), **changes},
        )
    target = _safe_next(session.pop("sso_next", None))
    _start_session(staff, ip, via="sso")
    if staff.must_change_password:
        flash("Your password is a temporary one: choose your own to continue.", "warning")
        return redirect(url_for("account.password"))
    return redirect(target)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    staff = g.get("staff")
    if staff is not None:
        record(db(), actor=f"staff:{staff.id}", action="sign_out", subject=("staff", staff.id))
    _end_cookie_session("signed_out")  # the row ends: a copy of this cookie signs nobody in
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/session/ping")
def ping() -> ResponseReturnValue:
    """The page saw keys, pointer or scroll: count it as activity (the idle timer restarts)."""
    touch()
    return jsonify({"idle_seconds": idle_seconds()})
