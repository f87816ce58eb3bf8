"""pro-service: SMS check-ins for patients with bone metastases, red flags, and nurse alerts.

`create_app(settings)` builds the web; every process is wired by `runtime.build_runtime(settings, role)`
(the Celery worker in workers/celery.py, the CLI in cli.py). Nothing runs at import.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# Flask is imported inside the functions: the workers' `alerts` and services modules import pro_service's
# models without pulling in the web framework.
if TYPE_CHECKING:
    from flask import Flask

    from config.settings import Settings
    from pro_service.runtime import Runtime
    from pro_service.sms.gateway import SmsGateway


def create_app(settings: Settings | None = None, *, gateway: SmsGateway | None = None) -> Flask:
    from flask import g

    from config.settings import load_settings
    from pro_service import observability
    from pro_service.runtime import Role, build_runtime
    from pro_service.web.unit_of_work import UnitOfWorkFlask

    settings = settings or load_settings()

    observability.configure_logging(settings.LOG_LEVEL)
    # Every request is one unit of work: committed on success, rolled back on a refusal or an error.
    app = UnitOfWorkFlask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(SECRET_KEY=settings.SECRET_KEY, MAX_CONTENT_LENGTH=1024 * 1024, JSON_SORT_KEYS=False)
    # The web publishes tasks from a background thread: a request never waits on the broker.
    runtime = build_runtime(settings, Role.WEB, gateway=gateway)
    app.extensions["pro"] = runtime

    from pro_service.ingest.handler import InboundSmsHandler
    from pro_service.web import account, admin, api, auth, dashboard, health, hl7, security, simulator, twilio

    app.register_blueprint(twilio.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(simulator.bp)
    from pro_service.web.fhir import bp as fhir_bp

    app.register_blueprint(fhir_bp)
    app.register_blueprint(hl7.bp)

    _register_error_handlers(app)
    observability.init_app(app)
    # Staff pages: session cookie flags, CSRF (not on /twilio, /api, /hl7), sign-in, security headers.
    security.init_app(app, settings, exempt=(twilio.bp, api.bp, hl7.bp))

    # POST /twilio/sms is answered before Flask (its hot path); every other request goes through Flask.
    app.wsgi_app = InboundSmsHandler(app.wsgi_app, runtime)  # type: ignore[method-assign]
    if settings.TRUSTED_PROXY_HOPS:
        # Outermost, so every layer (the sign-in throttle, the audit, the webhook's handler) sees the client
        # the trusted proxies name, not the proxy; with no proxy trusted X-Forwarded-* is ignored.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.TRUSTED_PROXY_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    return app


def _register_error_handlers(app: Flask) -> None:
    """Under /api every error is JSON; a database outage is a 503 (for staff, a page that says so) so Twilio
    and clients retry."""
    from flask import g, jsonify, render_template, request
    from sqlalchemy.exc import IntegrityError, OperationalError
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            name = (exc.name or "error").lower().replace(" ", "_")
            return jsonify({"error": name, "detail": exc.description}), exc.code or 500
        return exc

    @app.errorhandler(IntegrityError)
    def _changed_meanwhile(_exc: IntegrityError) -> Any:
        # A unique clash found only at the request's commit (two people saving the same MRN or name at
        # once): nothing was saved. The API and FHIR answer their own 409s (their blueprint handlers).
        if request.path.startswith(("/api/", "/twilio/")) or not request.accept_mimetypes.accept_html:
            return jsonify({"error": "conflict", "detail": "a concurrent request changed this; retry"}), 409
        return render_template("error.html", status=409, title="Changed meanwhile", kind="conflict"), 409

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Any:
        # The database down, or not answering within DB_STATEMENT_TIMEOUT_SECONDS: nothing was saved. The
        # driver's error class (QueryCanceled for a timeout) tells the two apart; it holds no PHI.
        log = logging.getLogger(__name__)
        log.error("database unavailable: %s", type(exc.orig).__name__)
        retry = {"Retry-After": "30"}
        if not request.path.startswith(("/api/", "/twilio/")) and request.accept_mimetypes.accept_html:
            # A staff page says so in words. Its header shows who is signed in, but after a failed write
            # the signed-in user's row is expired and cannot be reloaded: then the page goes without it.
            for _ in range(2):
                try:
                    page = render_template(
                        "error.html", status=503, title="Briefly unavailable", kind="unavailable"
                    )
                    return page, 503, retry
                except Exception:
                    log.warning("error page needed the database; rendering it without the header")
                    g.pop("staff", None)
        return jsonify({"error": "service_unavailable", "detail": "the database is unavailable"}), 503, retry


def runtime_of(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["pro"]
    return runtime
