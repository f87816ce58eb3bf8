"""The second factor for password accounts (issue 15): enrolment on /account/mfa, the code after the
password, no code accepted twice, administrators sent to enrolment until it is confirmed, wrong codes
throttled like passwords, secrets encrypted at rest; and equal-time sign-in: one argon2 verification on
every path, whatever the account's state."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from config.settings import SettingsError, load_settings
from pro_service.models import AuditLog, StaffRole, StaffUser
from pro_service.services import mfa
from pro_service.services.staff import create_staff
from tests.browser.support import PASSWORD, csrf_token, make_staff

pytestmark = pytest.mark.integration

SECRET = re.compile(r'<code id="mfa-secret">([A-Z2-7]+)</code>')
URI = re.compile(r'href="(otpauth://totp/[^"]+)"')


@pytest.fixture(scope="module")
def mfa_app(settings: Any, rt: Any) -> Iterator[Any]:
    """The suite's app with the second factor required of administrators (the production default)."""
    from pro_service import create_app, runtime_of

    flask_app = create_app(settings.model_copy(update={"MFA_REQUIRED_ROLES": "admin"}))
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


@pytest.fixture(autouse=True)
def _no_throttle(app: Any, mfa_app: Any) -> None:
    for flask_app in (app, mfa_app):
        flask_app.extensions["pro_login_limiter"].clear()


def _password_step(client: Any, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


def _code_step(client: Any, code: str) -> Any:
    return client.post("/login/code", data={"csrf_token": csrf_token(client, "/login/code"), "code": code})


def _signed_in(client: Any) -> bool:
    page = client.get("/account/sessions")
    return page.status_code == 200


def _enrol(client: Any) -> tuple[str, Any]:
    """Start an enrolment and confirm it with the current code: (secret, the confirm response)."""
    page = client.post(
        "/account/mfa/start",
        data={"csrf_token": csrf_token(client, "/account/mfa"), "current_password": PASSWORD},
    )
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    secret = SECRET.search(html)
    uri = URI.search(html)
    assert secret and uri, html[:2000]
    assert pyotp.parse_uri(uri.group(1).replace("&amp;", "&")).secret == secret.group(1)
    code = pyotp.TOTP(secret.group(1)).now()
    done = client.post(
        "/account/mfa/confirm", data={"csrf_token": csrf_token(client, "/account/mfa"), "code": code}
    )
    return secret.group(1), done


def _staff(rt: Any, staff_id: int) -> StaffUser:
    with rt.sessions() as session:
        found = session.get(StaffUser, staff_id)
        assert found is not None
        return found


def _actions(rt: Any, staff_id: int) -> list[tuple[str, dict[str, Any]]]:
    with rt.sessions() as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.subject_id == str(staff_id)).order_by(AuditLog.id)
        ).all()
        return [(row.action, row.detail) for row in rows]


def test_enrolment_then_sign_in_asks_for_the_code_and_refuses_a_replay(mfa_app: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    desk = mfa_app.test_client()
    assert _password_step(desk, "kim@example.org").headers["Location"] == "/"  # a nurse: no code yet

    # A wrong code does not turn it on; the right one does.
    # The password is asked again before any set-up: a copied session cookie alone binds no authenticator.
    no_password = desk.post("/account/mfa/start", data={"csrf_token": csrf_token(desk, "/account/mfa")})
    assert no_password.status_code == 400 and "current_password" in no_password.get_data(as_text=True)
    page = desk.post(
        "/account/mfa/start",
        data={"csrf_token": csrf_token(desk, "/account/mfa"), "current_password": PASSWORD},
    )
    secret = SECRET.search(page.get_data(as_text=True))
    assert secret
    wrong = desk.post(
        "/account/mfa/confirm", data={"csrf_token": csrf_token(desk, "/account/mfa"), "code": "000000"}
    )
    assert wrong.status_code == 400 and _staff(rt, staff_id).totp_confirmed_at is None
    elsewhere = mfa_app.test_client()  # signed in before the factor existed, with the password alone
    _password_step(elsewhere, "kim@example.org")
    assert _signed_in(elsewhere)
    secret_text, done = _enrol(desk)
    assert done.status_code == 302
    assert not _signed_in(elsewhere) and _signed_in(desk)  # only the browser that set it up stays in
    row = _staff(rt, staff_id)
    assert row.totp_confirmed_at is not None and row.totp_pending_secret is None
    # Encrypted at rest, never shown again.
    assert row.totp_secret and secret_text not in row.totp_secret
    assert mfa.decrypt(row.totp_secret, mfa_app.extensions["pro"].settings.SECRET_KEY) == secret_text
    assert secret_text not in desk.get("/account/mfa").get_data(as_text=True)
    assert [a for a, _ in _actions(rt, staff_id) if a.startswith("mfa_")] == [
        "mfa_enrolment_started",
        "mfa_enrolment_started",
        "mfa_enrolled",
    ]
    assert secret_text not in str(_actions(rt, staff_id))

    # Sign-in on another browser: the password alone signs nobody in.
    desk_session = signed_session(rt, staff_id)
    phone = mfa_app.test_client()
    step = _password_step(phone, "kim@example.org")
    assert step.status_code == 302 and step.headers["Location"] == "/login/code"
    assert signed_session(rt, staff_id) == desk_session  # no session row yet
    # The code of the next time step (the enrolment used the current one) signs in ...
    code = pyotp.TOTP(secret_text).at(time.time() + 30)
    signed = _code_step(phone, code)
    assert signed.status_code == 302 and signed.headers["Location"] == "/"
    assert _signed_in(phone)
    assert ("sign_in", {"session": signed_session(rt, staff_id), "via": "password", "factor": "totp"}) in (
        _actions(rt, staff_id)
    )

    # ... once: the same code on a third browser, with the right password, is refused.
    thief = mfa_app.test_client()
    assert _password_step(thief, "kim@example.org").headers["Location"] == "/login/code"
    replay = _code_step(thief, code)
    assert replay.status_code == 401
    assert "already used" in replay.get_data(as_text=True)
    assert not _signed_in(thief)


def signed_session(rt: Any, staff_id: int) -> int:
    from pro_service.models import StaffSession

    with rt.sessions() as session:
        return int(
            session.scalars(
                select(StaffSession.id)
                .where(StaffSession.staff_id == staff_id)
                .order_by(StaffSession.id.desc())
            ).first()
            or 0
        )


def test_an_administrator_without_a_second_factor_can_only_enrol(mfa_app: Any, app: Any, rt: Any) -> None:
    make_staff(rt, email="ada@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    client = mfa_app.test_client()
    step = _password_step(client, "ada@example.org")
    assert step.status_code == 302 and step.headers["Location"] == "/account/mfa"
    for path in ("/", "/admin/", "/account/sessions", "/patients"):
        page = client.get(path)
        assert page.status_code == 302 and page.headers["Location"] == "/account/mfa", path
    poll = client.get("/queue/poll", headers={"Accept": "application/json"})
    assert poll.status_code == 403 and poll.json["error"] == "mfa_enrolment_required"
    assert client.get("/account/mfa").status_code == 200

    _secret, done = _enrol(client)
    assert done.status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 200

    # Where MFA_REQUIRED_ROLES is empty (the suite's app), an administrator signs in with a password only.
    make_staff(rt, email="bo@example.org", role=StaffRole.ADMIN, name="Bo Admin")
    plain = app.test_client()
    assert _password_step(plain, "bo@example.org").headers["Location"] == "/"
    assert plain.get("/admin/").status_code == 200


def test_wrong_codes_are_throttled_like_passwords(mfa_app: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    client = mfa_app.test_client()
    _password_step(client, "kim@example.org")
    secret, _done = _enrol(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account/mfa")})

    attacker = mfa_app.test_client()
    assert _password_step(attacker, "kim@example.org").headers["Location"] == "/login/code"
    for _ in range(5):
        assert _code_step(attacker, "123456").status_code == 401
    right = pyotp.TOTP(secret).at(time.time() + 30)
    locked = _code_step(attacker, right)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert not _signed_in(attacker)
    failures = [d for a, d in _actions(rt, staff_id) if a == "sign_in_failed"]
    assert failures == [{"factor": "totp"}] * 5
    # The password form counts the same failures: the account is throttled there too.
    assert _password_step(mfa_app.test_client(), "kim@example.org").status_code == 429


def test_a_code_step_needs_the_password_step_first(mfa_app: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    client = mfa_app.test_client()
    page = client.get("/login/code")
    assert page.status_code == 302 and page.headers["Location"] == "/login"


def test_mfa_required_roles_is_validated_and_defaults_to_administrators(tmp_path: Any) -> None:
    base = {"SECRET_KEY": "unit-secret-key-" + "x" * 16}
    with pytest.raises(SettingsError, match="MFA_REQUIRED_ROLES"):
        load_settings(**base, MFA_REQUIRED_ROLES="admin,root")
    postgres = {**base, "DATABASE_URL": "postgresql://db/pro", "REDIS_URL": "redis://r"}
    assert load_settings(**postgres).mfa_required_roles == {"admin"}
    assert load_settings(**postgres, MFA_REQUIRED_ROLES="").mfa_required_roles == set()
    assert load_settings(**postgres, MFA_REQUIRED_ROLES=" Admin , nurse").mfa_required_roles == {
        "admin",
        "nurse",
    }
    # The embedded demo (`pro-service run`) prints its logins: no authenticator app needed there.
    embedded = load_settings(**base, DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}")
    assert embedded.embedded_default and embedded.mfa_required_roles == set()


# --- equal-time sign-in ---------------------------------------------------------------------------


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification made from now on (the work that takes the time of a sign-in)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        calls.append(hash[:10])
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


def test_every_refusal_costs_one_password_verification(app: Any, rt: Any, verifications: list[str]) -> None:
    with rt.unit_of_work() as session:  # through create_staff: hashes at the product's cost, like the dummy's
        create_staff(
            session, email="kim@example.org", name="Kim", role=StaffRole.NURSE, phone=None, password=PASSWORD
        )
        gone = create_staff(
            session,
            email="gone@example.org",
            name="Left Ward",
            role=StaffRole.NURSE,
            phone=None,
            password=PASSWORD,
        ).id
    with rt.unit_of_work() as session:
        session.execute(update(StaffUser).where(StaffUser.id == gone).values(active=False))
        session.add(StaffUser(email="sso@example.org", name="Single Sign-On", role=StaffRole.NURSE))
    cases = {
        "unknown email": ("nobody@example.org", PASSWORD),
        "wrong password": ("kim@example.org", "wrong password for kim"),
        "deactivated, right password": ("gone@example.org", PASSWORD),
        "no password (single sign-on)": ("sso@example.org", PASSWORD),
        "empty email": ("", PASSWORD),
    }
    counts = {}
    for name, (email, password) in cases.items():
        client = app.test_client()
        token = csrf_token(client)
        verifications.clear()
        answer = client.post("/login", data={"csrf_token": token, "email": email, "password": password})
        assert answer.status_code == 401, name
        counts[name] = len(verifications)

    # Throttled: refused before any account is looked at, with the same work.
    limiter = app.extensions["pro_login_limiter"]
    for _ in range(5):
        limiter.failed("kim@example.org", "127.0.0.1")
    client = app.test_client()
    token = csrf_token(client)
    verifications.clear()
    locked = client.post(
        "/login", data={"csrf_token": token, "email": "kim@example.org", "password": PASSWORD}
    )
    assert locked.status_code == 429
    counts["throttled"] = len(verifications)
    limiter.clear()

    client = app.test_client()
    token = csrf_token(client)
    verifications.clear()
    ok = client.post("/login", data={"csrf_token": token, "email": "kim@example.org", "password": PASSWORD})
    assert ok.status_code == 302
    counts["signed in"] = len(verifications)

    assert counts == dict.fromkeys(counts, 1), counts


def test_an_administrator_turns_off_a_lost_second_factor_and_the_person_enrols_again(
    mfa_app: Any, rt: Any, settings_env: dict[str, str]
) -> None:
    """A lost phone: an administrator (page) or an operator (CLI) turns the second factor off; every session
    of the person ends, the act is audited, and their next sign-in asks them to set up a new one."""
    from click.testing import CliRunner

    from pro_service.cli import main

    lost = make_staff(rt, email="lou@example.org", role=StaffRole.ADMIN, name="Lou Admin")
    admin_id = make_staff(rt, email="max@example.org", role=StaffRole.ADMIN, name="Max Admin")
    for email in ("lou@example.org", "max@example.org"):
        browser = mfa_app.test_client()
        _password_step(browser, email)
        _enrol(browser)
    lou_desk = mfa_app.test_client()  # Lou signed in (password and code) on another computer
    _password_step(lou_desk, "lou@example.org")
    lou_secret = _staff(rt, lost).totp_secret
    assert lou_secret
    code = pyotp.TOTP(mfa.decrypt(lou_secret, mfa_app.extensions["pro"].settings.SECRET_KEY) or "").at(
        time.time() + 30
    )
    assert _code_step(lou_desk, code).status_code == 302 and _signed_in(lou_desk)

    max_browser = mfa_app.test_client()
    _password_step(max_browser, "max@example.org")
    max_secret = mfa.decrypt(
        _staff(rt, admin_id).totp_secret or "", mfa_app.extensions["pro"].settings.SECRET_KEY
    )
    assert _code_step(max_browser, pyotp.TOTP(max_secret or "").at(time.time() + 30)).status_code == 302
    page = max_browser.get(f"/admin/staff/{lost}")
    assert "Turn off second factor" in page.get_data(as_text=True)
    form = {"csrf_token": csrf_token(max_browser, f"/admin/staff/{lost}")}
    # The administrator's own password is asked again: a copied cookie alone strips no factor.
    refused = max_browser.post(
        f"/admin/staff/{lost}/second-factor/off", data={**form, "current_password": "x"}
    )
    assert refused.status_code == 302 and _staff(rt, lost).totp_secret is not None
    done = max_browser.post(
        f"/admin/staff/{lost}/second-factor/off", data={**form, "current_password": PASSWORD}
    )
    assert done.status_code == 302
    row = _staff(rt, lost)
    assert row.totp_secret is None and row.totp_confirmed_at is None
    assert not _signed_in(lou_desk)  # signed out everywhere: the enrolment browser and this one
    assert ("reset_second_factor", {"had_second_factor": True, "sessions_ended": 2}) in _actions(rt, lost)
    # Lou's next sign-in: straight to setting up a new authenticator.
    again = mfa_app.test_client()
    assert _password_step(again, "lou@example.org").headers["Location"] == "/account/mfa"

    # The operator's way, when no administrator can sign in: the CLI does the same, audited as "cli".
    _enrol(again)
    assert _staff(rt, lost).totp_confirmed_at is not None
    out = CliRunner().invoke(main, ["turn-off-second-factor", "--email", "LOU@example.org"], env=settings_env)
    assert out.exit_code == 0, out.output
    assert _staff(rt, lost).totp_secret is None
    missing = CliRunner().invoke(
        main, ["turn-off-second-factor", "--email", "nobody@example.org"], env=settings_env
    )
    assert missing.exit_code == 1 and "no staff member" in missing.output
