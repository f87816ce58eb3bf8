"""Single sign-on against a real OpenID Connect provider (oidc-provider-mock, started here on a free port):
the whole redirect dance (our app → the provider's authorize page → our callback → the provider's token
endpoint), groups mapped to role and care teams, just-in-time accounts, unmapped groups and deactivated
accounts refused, state checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select, update

from config.settings import SettingsError, load_settings
from pro_service.models import AuditLog, CareTeam, CareTeamMember, StaffRole, StaffSession, StaffUser
from pro_service.services.sso import mapped_access
from tests.browser.support import make_staff
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration

GROUP_MAP = {
    "onc-nurses": {"role": "nurse", "teams": ["Oncology A"]},
    "breast-nurses": {"role": "nurse", "teams": ["Breast B", "Oncology A"]},
    "pro-admins": {"role": "admin"},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The provider's issuer URL, its own process on a free port (its library's deprecation warnings stay
    out of this suite, which makes warnings errors), serving until the module's tests end. It requires
    a nonce, as a careful provider would."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    dies_with_us = ["setpriv", "--pdeathsig", "SIGTERM", "--"] if shutil.which("setpriv") else []
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--require-nonce"]
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen([*dies_with_us, *command], stdout=log_file, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError("the OIDC provider exited: " + log_path.read_text(errors="replace")[-2000:])
        try:
            return requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_for(answers, timeout=30, message="the OIDC provider to answer")
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log_file.close()


@pytest.fixture(scope="module")
def sso_app(settings: Any, rt: Any, provider: str) -> Iterator[Any]:
    from pro_service import create_app, runtime_of

    flask_app = create_app(
        settings.model_copy(
            update={
                "OIDC_ISSUER": provider,
                "OIDC_CLIENT_ID": "pro-service-test",
                "OIDC_CLIENT_SECRET": "client-secret-for-tests",
                "OIDC_GROUP_MAP": json.dumps(GROUP_MAP),
                "MFA_REQUIRED_ROLES": "admin",  # the provider is trusted for the second factor
            }
        )
    )
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


def _user_at_provider(issuer: str, sub: str, **claims: Any) -> None:
    answer = requests.put(f"{issuer}/users/{sub}", json={"sub": sub, **claims}, timeout=10)
    assert answer.status_code == 204, answer.text


def _through_provider(client: Any, issuer: str, sub: str) -> str:
    """Start at our sign-in, let the provider authorise `sub`: the callback path our app is sent back to."""
    start = client.get("/login/sso")
    assert start.status_code == 302, start.get_data(as_text=True)[:500]
    authorize = start.headers["Location"]
    assert authorize.startswith(f"{issuer}/oauth2/authorize?")
    assert "nonce=" in authorize and "state=" in authorize
    consent = requests.post(authorize, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert consent.status_code == 302, consent.text[:500]
    back = urlsplit(consent.headers["Location"])
    assert back.path == "/login/sso/callback"
    return f"{back.path}?{back.query}"


def _sign_in(client: Any, issuer: str, sub: str) -> Any:
    return client.get(_through_provider(client, issuer, sub))


def _signed_in(client: Any) -> bool:
    return bool(client.get("/account/sessions").status_code == 200)


def _teams(rt: Any, staff_id: int) -> set[str]:
    with rt.sessions() as session:
        return set(
            session.scalars(
                select(CareTeam.name)
                .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
                .where(CareTeamMember.staff_id == staff_id)
            )
        )


def _by_email(rt: Any, email: str) -> StaffUser | None:
    with rt.sessions() as session:
        return session.scalar(select(StaffUser).where(StaffUser.email == email))


def _audit(rt: Any, action: str) -> list[AuditLog]:
    with rt.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


@pytest.fixture
def teams(rt: Any) -> dict[str, int]:
    with rt.unit_of_work() as session:
        made = [CareTeam(name=name) for name in ("Oncology A", "Breast B", "Haematology")]
        session.add_all(made)
        session.flush()
        return {team.name: team.id for team in made}


def test_the_sign_in_page_offers_the_hospital_account_only_when_configured(sso_app: Any, app: Any) -> None:
    assert "Sign in with your hospital account" in sso_app.test_client().get("/login").get_data(as_text=True)
    assert "hospital account" not in app.test_client().get("/login").get_data(as_text=True)
    assert app.test_client().get("/login/sso").status_code == 404


def test_first_sign_in_creates_the_account_from_its_groups_and_later_ones_follow_them(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    _user_at_provider(
        provider,
        "u-1001",
        email="Kim.Lee@Hospital.example",
        name="Kim Lee",
        groups=["onc-nurses", "staff-all"],
    )
    client = sso_app.test_client()
    done = _sign_in(client, provider, "u-1001")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert _signed_in(client)

    kim = _by_email(rt, "kim.lee@hospital.example")
    assert kim is not None
    assert (kim.role, kim.name, kim.password_hash) == (StaffRole.NURSE, "Kim Lee", None)
    assert (kim.oidc_issuer, kim.oidc_subject) == (provider, "u-1001")
    assert _teams(rt, kim.id) == {"Oncology A"}
    [created] = _audit(rt, "staff_provisioned")
    assert created.subject_id == str(kim.id) and created.detail["created"] is True
    assert created.detail["role"] == "nurse"
    [signed] = _audit(rt, "sign_in")
    assert signed.detail["via"] == "sso"
    with rt.sessions() as session:
        assert session.scalar(select(StaffSession.staff_id).where(StaffSession.ended_at.is_(None))) == kim.id

    # The provider moves Kim: another nurse group adds a team; then an admin group makes Kim an admin.
    _user_at_provider(
        provider, "u-1001", email="kim.lee@hospital.example", name="Kim Lee", groups=["breast-nurses"]
    )
    assert _sign_in(sso_app.test_client(), provider, "u-1001").status_code == 302
    assert _teams(rt, kim.id) == {"Oncology A", "Breast B"}
    _user_at_provider(
        provider,
        "u-1001",
        email="kim.lee@hospital.example",
        name="Kim Lee",
        groups=["pro-admins", "onc-nurses"],
    )
    admin_client = sso_app.test_client()
    assert _sign_in(admin_client, provider, "u-1001").status_code == 302
    promoted = _by_email(rt, "kim.lee@hospital.example")
    assert promoted is not None and promoted.role == StaffRole.ADMIN
    assert _teams(rt, kim.id) == {"Oncology A"}  # the highest role, the union of the groups' teams
    updates = _audit(rt, "staff_updated_by_sso")
    assert updates[-1].detail["role"] == ["nurse", "admin"]
    # An administrator by single sign-on is not sent to enrol an app: the provider did the second factor.
    assert admin_client.get("/admin/").status_code == 200
    assert len(_audit(rt, "staff_provisioned")) == 1  # one account, however many sign-ins


def test_a_user_in_no_mapped_group_is_refused(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    _user_at_provider(
        provider, "u-2002", email="visitor@hospital.example", name="Vi Sitor", groups=["finance"]
    )
    client = sso_app.test_client()
    refused = _sign_in(client, provider, "u-2002")
    assert refused.status_code == 403
    assert "not in a group that may use this service" in refused.get_data(as_text=True)
    assert not _signed_in(client)
    assert _by_email(rt, "visitor@hospital.example") is None
    [failed] = _audit(rt, "sign_in_failed")
    assert failed.detail == {"via": "sso", "reason": "no_mapped_group"}


def test_a_deactivated_local_account_stays_out(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    staff_id = make_staff(rt, email="gone@hospital.example", name="Gone Nurse")
    with rt.unit_of_work() as session:
        session.execute(update(StaffUser).where(StaffUser.id == staff_id).values(active=False))
    _user_at_provider(
        provider,
        "u-3003",
        email="gone@hospital.example",
        email_verified=True,
        name="Gone Nurse",
        groups=["onc-nurses"],
    )
    client = sso_app.test_client()
    refused = _sign_in(client, provider, "u-3003")
    assert refused.status_code == 403 and "deactivated" in refused.get_data(as_text=True)
    assert not _signed_in(client)
    gone = _by_email(rt, "gone@hospital.example")
    assert gone is not None and gone.oidc_subject is None and _teams(rt, staff_id) == set()


def test_an_existing_local_account_is_linked_by_email(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    staff_id = make_staff(rt, email="ana@hospital.example", name="Ana Local", team_id=teams["Haematology"])
    # Without the provider's word that the address is theirs, nothing is handed over (many providers
    # leave email_verified out): whoever holds that address at the provider could take the account.
    _user_at_provider(provider, "u-4004", email="ana@hospital.example", name="Ana", groups=["onc-nurses"])
    refused = _sign_in(sso_app.test_client(), provider, "u-4004")
    assert refused.status_code == 403 and "Ask an administrator to link" in refused.get_data(as_text=True)
    left = _by_email(rt, "ana@hospital.example")
    assert left is not None and left.oidc_subject is None
    assert _audit(rt, "sign_in_failed")[-1].detail == {"via": "sso", "reason": "email_unverified"}

    _user_at_provider(
        provider,
        "u-4004",
        email="ana@hospital.example",
        email_verified=True,
        name="Ana",
        groups=["onc-nurses"],
    )
    client = sso_app.test_client()
    assert _sign_in(client, provider, "u-4004").status_code == 302
    ana = _by_email(rt, "ana@hospital.example")
    assert ana is not None and ana.id == staff_id and ana.oidc_subject == "u-4004"
    assert _teams(rt, staff_id) == {"Oncology A"}  # the provider's groups decide the teams
    assert _audit(rt, "staff_updated_by_sso")[-1].detail["linked"] is True


def test_a_callback_without_this_browsers_state_is_refused(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    """Login CSRF: a callback URL made in the attacker's browser does not sign in the victim's."""
    _user_at_provider(
        provider, "u-5005", email="mallory@hospital.example", name="Mallory", groups=["onc-nurses"]
    )
    attacker = sso_app.test_client()
    callback = _through_provider(attacker, provider, "u-5005")
    victim = sso_app.test_client()
    victim.get("/login")
    refused = victim.get(callback)
    assert refused.status_code == 400
    assert not _signed_in(victim)
    assert _by_email(rt, "mallory@hospital.example") is None


def test_groups_map_to_the_highest_role_and_the_union_of_teams() -> None:
    parsed = {g: (v["role"], tuple(v.get("teams", []))) for g, v in GROUP_MAP.items()}
    assert mapped_access(["x", "onc-nurses"], parsed) == (StaffRole.NURSE, ("Oncology A",))
    assert mapped_access(["breast-nurses", "pro-admins"], parsed) == (
        StaffRole.ADMIN,
        ("Breast B", "Oncology A"),
    )
    assert mapped_access(["finance"], parsed) is None
    assert mapped_access([], parsed) is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"OIDC_ISSUER": "https://idp.example"}, "OIDC_CLIENT_ID"),
        (
            {
                "OIDC_ISSUER": "https://idp.example",
                "OIDC_CLIENT_ID": "c",
                "OIDC_CLIENT_SECRET": "s",
                "OIDC_GROUP_MAP": '{"g": {"role": "root"}}',
            },
            "OIDC_GROUP_MAP",
        ),
        (
            {
                "OIDC_ISSUER": "http://idp.example",
                "OIDC_CLIENT_ID": "c",
                "OIDC_CLIENT_SECRET": "s",
                "OIDC_GROUP_MAP": '{"g": {"role": "nurse"}}',
                "SMS_BACKEND": "twilio",
                "TWILIO_ACCOUNT_SID": "AC1",
                "TWILIO_AUTH_TOKEN": "t",
                "TWILIO_FROM_NUMBER": "+15005550006",
                "CLINIC_PHONE": "+1 555 0100",
            },
            "OIDC_ISSUER",
        ),
    ],
)
def test_single_sign_on_settings_are_checked_at_start_up(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(SECRET_KEY="unit-secret-key-" + "x" * 16, **overrides)


def test_a_linked_account_taken_out_of_every_mapped_group_loses_access(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int]
) -> None:
    """The provider is the source of truth: out of every group, the account is deactivated, so its open
    sessions and its API tokens stop working too, not only the next sign-in."""
    _user_at_provider(provider, "u-6006", email="leo@hospital.example", name="Leo", groups=["onc-nurses"])
    desk = sso_app.test_client()
    assert _sign_in(desk, provider, "u-6006").status_code == 302 and _signed_in(desk)
    _user_at_provider(provider, "u-6006", email="leo@hospital.example", name="Leo", groups=["finance"])
    refused = _sign_in(sso_app.test_client(), provider, "u-6006")
    assert refused.status_code == 403 and "access here has ended" in refused.get_data(as_text=True)
    leo = _by_email(rt, "leo@hospital.example")
    assert leo is not None and not leo.active
    assert not _signed_in(desk)  # the session on the ward computer ended with it
    [gone] = [r for r in _audit(rt, "deactivate_staff") if r.subject_id == str(leo.id)]
    assert gone.detail["reason"] == "no_mapped_group" and gone.detail["sessions_ended"] == 1


def test_a_bad_id_token_is_a_refusal_page_not_a_server_error(
    sso_app: Any, rt: Any, provider: str, teams: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authlib reports a bad signature, an expired token or a wrong nonce with joserfc's errors."""
    from authlib.integrations.flask_client import FlaskOAuth2App
    from joserfc.errors import BadSignatureError

    _user_at_provider(provider, "u-7007", email="eve@hospital.example", name="Eve", groups=["onc-nurses"])
    client = sso_app.test_client()
    callback = _through_provider(client, provider, "u-7007")

    def forged(*args: Any, **kwargs: Any) -> Any:
        raise BadSignatureError()

    monkeypatch.setattr(FlaskOAuth2App, "authorize_access_token", forged)
    refused = client.get(callback)
    assert refused.status_code == 400 and "did not complete" in refused.get_data(as_text=True)
    assert not _signed_in(client) and _by_email(rt, "eve@hospital.example") is None
