"""Staff pages: sign-in required everywhere, admin-only pages, CSRF, headers, idle expiry, throttling."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import Alert, AlertStatus, AuditLog, StaffRole
from tests.browser.support import PASSWORD, csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]

# Sign-in's own steps: the code after the password, the single sign-on redirect and its return.
SESSIONLESS = ("static", "auth.login", "auth.login_code", "auth.sso_start", "auth.sso_callback", "metrics")
SESSIONLESS_PREFIXES = ("api.", "twilio.", "health.", "fhir.")


def _staff_rules(app: Any, methods: set[str]) -> list[tuple[str, str]]:
    """(endpoint, url) for every route that is not sign-in, static, webhook, API or health."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SESSIONLESS or rule.endpoint.startswith(SESSIONLESS_PREFIXES):
            continue
        if not (rule.methods or set()) & methods:
            continue
        values = {arg: (1 if "id" in arg else "ABC123") for arg in rule.arguments}
        url = rule.build(values, append_unknown=False)[1]
        found.append((rule.endpoint, url))
    return found


def test_every_staff_page_needs_a_session(app: Any, client: Any) -> None:
    pages = _staff_rules(app, {"GET"})
    assert len(pages) >= 20, pages
    for endpoint, url in pages:
        response = client.get(url)
        if endpoint in ("dashboard.queue_poll", "simulator.thread_poll"):
            assert response.status_code == 401, endpoint
            assert response.json["error"] == "signed_out"
        else:
            assert response.status_code == 302, endpoint
            assert response.headers["Location"].startswith("/login"), endpoint


def test_every_staff_form_needs_a_session_even_with_a_csrf_token(app: Any, client: Any) -> None:
    forms = [(e, u) for e, u in _staff_rules(app, {"POST"}) if e != "auth.logout"]
    assert len(forms) >= 15, forms
    for endpoint, url in forms:
        # A fresh token each time: being sent to sign in clears the session (and its CSRF secret).
        response = client.post(url, data={"csrf_token": csrf_token(client)})
        assert response.status_code in (302, 401), endpoint
        if response.status_code == 302:
            assert response.headers["Location"].startswith("/login"), endpoint


def test_public_endpoints_stay_public(client: Any) -> None:
    assert client.get("/login").status_code == 200
    with client.get("/static/css/app.css") as css:
        assert css.status_code == 200
    assert client.get("/healthz").status_code in (200, 503)
    assert client.post("/twilio/sms", data={"Body": "x"}).status_code == 403  # signature, not session
    assert client.get("/api/v1/instruments").status_code == 401  # token, not session


def test_admin_pages_are_forbidden_to_a_nurse(app: Any, client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    admin_rules = [(e, u) for e, u in _staff_rules(app, {"GET", "POST"}) if e.startswith("admin.")]
    assert len(admin_rules) >= 15
    for endpoint, url in admin_rules:
        rule_methods = next(r.methods for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        if "GET" in rule_methods:
            page = client.get(url)
            assert page.status_code == 403, endpoint
            assert "Not available to your account" in page.get_data(as_text=True)
        if "POST" in rule_methods:
            assert client.post(url, data={"csrf_token": token}).status_code == 403, endpoint
    # …while the nurse pages work, and the menu does not offer Administration.
    home = client.get("/")
    assert home.status_code == 200
    assert "Administration" not in home.get_data(as_text=True)


def test_admin_can_open_the_admin_pages(client: Any, rt: Any) -> None:
    team = make_team(rt)
    make_patient(rt, team)
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    for url in ("/admin/", "/admin/teams", f"/admin/teams/{team}", "/admin/staff", "/admin/config",
                "/admin/audit", "/admin/escalation", "/admin/patients/new"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 200, url
        # Issue 14: no page shows where the server keeps its files.
        assert str(rt.settings.CONFIG_DIR) not in response.get_data(as_text=True), url


def test_a_form_post_without_the_csrf_token_is_refused(client: Any, rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    staff_id = make_staff(rt, email="kim@example.org", team_id=team)
    alert_id = insert_alert(rt, patient)
    login(client, "kim@example.org")

    refused = client.post(f"/alerts/{alert_id}/acknowledge")
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    forged = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    with rt.sessions() as session:
        assert session.get(Alert, alert_id).status == AlertStatus.OPEN  # type: ignore[union-attr]

    accepted = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf_token(client, "/")})
    assert accepted.status_code == 302
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.ACKNOWLEDGED
        assert alert.acknowledged_by_id == staff_id
        event = alert.events[-1]
        assert (event.kind, event.actor, event.actor_staff_id) == (
            "acknowledged",
            f"staff:{staff_id}",
            staff_id,
        )


def test_sign_in_itself_needs_the_csrf_token(client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    client.get("/login")
    response = client.post("/login", data={"email": "kim@example.org", "password": PASSWORD})
    assert response.status_code == 400


def test_viewing_an_alert_or_a_patient_is_audited(client: Any, rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    staff_id = make_staff(rt, email="kim@example.org", team_id=team)
    alert_id = insert_alert(rt, patient)
    login(client, "kim@example.org")
    assert client.get(f"/alerts/{alert_id}").status_code == 200
    assert client.get(f"/patients/{patient}").status_code == 200
    with rt.sessions() as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.patient_id == patient).order_by(AuditLog.id)
        ).all()
    assert [(r.action, r.actor, r.subject_type, r.subject_id) for r in rows] == [
        ("view_alert", f"staff:{staff_id}", "alert", str(alert_id)),
        ("view_patient", f"staff:{staff_id}", "patient", str(patient)),
    ]
    assert all(r.ip == "127.0.0.1" for r in rows)


def test_security_headers_and_cookie_flags(client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    signed_in = login(client, "kim@example.org")
    cookie = signed_in.headers["Set-Cookie"]
    assert "pro_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # PUBLIC_BASE_URL is http in the tests
    home = client.get("/")
    assert home.headers["Cache-Control"] == "no-store"
    assert "<script>" not in home.get_data(as_text=True)  # no inline script anywhere
    api = client.get("/api/v1/instruments")
    assert api.headers["X-Content-Type-Options"] == "nosniff"


def test_cookie_is_secure_behind_https(settings: Any) -> None:
    from pro_service import create_app, runtime_of

    https_app = create_app(settings.model_copy(update={"PUBLIC_BASE_URL": "https://pro.example.org"}))
    try:
        assert https_app.config["SESSION_COOKIE_SECURE"] is True
        response = https_app.test_client().get("/login")
        assert "Secure" in response.headers["Set-Cookie"]
        assert "max-age" in response.headers["Strict-Transport-Security"]
    finally:
        runtime_of(https_app).dispose()


def test_idle_session_expires_and_polling_does_not_keep_it_alive(app: Any, client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    assert client.get("/").status_code == 200

    ten_minutes_ago = time.time() - 10 * 60
    with client.session_transaction() as session:
        session["seen"] = ten_minutes_ago
    assert client.get("/queue/poll").status_code == 200  # a timer, not a person: no activity
    with client.session_transaction() as session:
        assert session["seen"] == ten_minutes_ago

    with client.session_transaction() as session:
        session["seen"] = time.time() - app.config["SESSION_IDLE_MINUTES"] * 60 - 1
    expired = client.get("/patients")
    assert expired.status_code == 302 and expired.headers["Location"] == "/login?next=/patients"
    page = client.get(expired.headers["Location"])
    assert "signed out after 15 minutes without activity" in page.get_data(as_text=True)
    assert client.get("/queue/poll").status_code == 401


def test_activity_ping_restarts_the_idle_timer(client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    with client.session_transaction() as session:
        session["seen"] = time.time() - 14 * 60
    assert client.post("/session/ping", headers={"X-CSRFToken": token}).status_code == 200
    with client.session_transaction() as session:
        assert time.time() - session["seen"] < 5
    assert client.post("/session/ping").status_code == 400  # CSRF applies to the ping too


def test_a_password_reset_or_deactivation_ends_sessions(client: Any, rt: Any) -> None:
    from argon2 import PasswordHasher

    from pro_service.models import StaffUser

    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    assert client.get("/").status_code == 200
    with rt.unit_of_work() as session:
        staff = session.get(StaffUser, staff_id)
        assert staff is not None
        # Set behind the services' back: the session's password fingerprint still ends it.
        staff.password_hash = PasswordHasher().hash("a brand new password!")
    assert client.get("/").status_code == 302
    login(client, "kim@example.org", "a brand new password!")
    with rt.unit_of_work() as session:
        staff = session.get(StaffUser, staff_id)
        assert staff is not None
        staff.active = False
    assert client.get("/").status_code == 302


def test_sign_in_redirects_only_within_the_site(app: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    for target, expected in (("/patients", "/patients"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/"), ("/\\evil.example", "/")):  # fmt: skip
        client = app.test_client()
        token = csrf_token(client)
        response = client.post(
            "/login",
            data={"csrf_token": token, "email": "kim@example.org", "password": PASSWORD, "next": target},
        )
        assert response.headers["Location"] == expected, target


def test_wrong_passwords_are_throttled_per_email_and_address(app: Any, client: Any, rt: Any) -> None:
    app.extensions["pro_login_limiter"].clear()
    make_staff(rt, email="target@example.org")
    make_staff(rt, email="other@example.org", name="Other")
    for _ in range(5):
        token = csrf_token(client)
        wrong = client.post(
            "/login", data={"csrf_token": token, "email": "target@example.org", "password": "nope"}
        )
        assert wrong.status_code == 401
        assert "do not match an active account" in wrong.get_data(as_text=True)
    token = csrf_token(client)
    blocked = client.post(
        "/login", data={"csrf_token": token, "email": "Target@Example.org", "password": PASSWORD}
    )
    assert blocked.status_code == 429  # even the right password waits: the window has 5 failures
    assert int(blocked.headers["Retry-After"]) > 800
    assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
    login(client, "other@example.org")  # another account from the same address is not locked out
    with rt.sessions() as session:
        failures = session.scalars(select(AuditLog).where(AuditLog.action == "sign_in_failed")).all()
    assert len(failures) == 5 and all(r.actor == "anonymous" for r in failures)
    app.extensions["pro_login_limiter"].clear()


def test_the_throttle_works_without_redis() -> None:
    from pro_service.web.login_limit import Limits, LoginLimiter

    limiter = LoginLimiter(None, Limits(per_account=2, per_ip=3, window_seconds=60))
    assert limiter.retry_after("a@x", "1.2.3.4") == 0
    limiter.failed("a@x", "1.2.3.4")
    limiter.failed("a@x", "1.2.3.4")
    assert 0 < limiter.retry_after("a@x", "1.2.3.4") <= 61
    assert limiter.retry_after("b@x", "1.2.3.4") == 0
    limiter.failed("b@x", "1.2.3.4")
    assert limiter.retry_after("c@x", "1.2.3.4") > 0  # the address reached its own limit
    limiter.succeeded("a@x", "1.2.3.4")
    assert limiter.retry_after("a@x", "5.6.7.8") == 0
