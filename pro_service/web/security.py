"""Web security for the staff pages, wired in one place by `init_app`.

- Session cookie: HttpOnly, SameSite=Lax, Secure when PUBLIC_BASE_URL is https; idle expiry in `auth`.
- CSRF: Flask-WTF's token on every POST/PUT/PATCH/DELETE, checked by our own hook so that it is on by
  default, except for blueprints that authenticate without a session: the Twilio webhooks (signed), the
  REST and FHIR APIs (bearer tokens), health (`auth.SESSIONLESS_BLUEPRINTS`).
  `Referrer-Policy: no-referrer` means browsers send no Referer (and `Origin: null`) on our own form
  posts, so Flask-WTF's https Referer check is off: the per-session token is the protection (OWASP's
  synchronizer-token pattern), with SameSite=Lax as a second line.
- Headers on every response: a CSP with no inline script or style, no framing, nosniff, no referrer;
  staff pages are never cached (a shared ward computer's back button must not show a patient).
- Friendly 403/404/CSRF pages for people; JSON stays JSON under /api.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from pro_service.web import auth, ui

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
csrf = CSRFProtect()


def init_app(app: Flask, settings: Settings, *, exempt: Iterable[Blueprint]) -> None:
    https = settings.PUBLIC_BASE_URL.startswith("https://")
    app.config.update(
        SESSION_COOKIE_NAME="pro_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        # The token lives as long as the session (which idles out after 15 minutes); a form left open
        # over a long call is not refused because of the token's own clock.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        # Checked by our own hook below, so that every blueprint is protected unless it authenticates
        # without a session (a blueprint registered later is covered without anyone remembering to).
        WTF_CSRF_CHECK_DEFAULT=False,
        AUTH_SESSIONLESS_BLUEPRINTS=sorted(
            set(app.config.get("AUTH_SESSIONLESS_BLUEPRINTS", ())) | {bp.name for bp in exempt}
        ),
    )
    csrf.init_app(app)

    @app.before_request
    def _csrf() -> None:
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and not auth.is_sessionless():
            csrf.protect()

    auth.install(app)
    ui.install(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static" and response.mimetype in ("text/html", "application/json"):
            headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        return _page(400, "This form has expired", exc, "csrf")

    @app.errorhandler(403)
    def _forbidden(exc: HTTPException) -> Any:
        return _page(403, "Not available to your account", exc, "forbidden")

    @app.errorhandler(404)
    def _not_found(exc: HTTPException) -> Any:
        return _page(404, "Page not found", exc, "not_found")


def _page(status: int, title: str, exc: HTTPException, kind: str) -> Any:
    if request.path.startswith("/api/"):
        name = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": name, "detail": exc.description}), status
    if request.path.startswith("/twilio/"):
        return Response(exc.description or "", status=status, mimetype="text/plain")
    return render_template("error.html", status=status, title=title, kind=kind, exc=exc), status
