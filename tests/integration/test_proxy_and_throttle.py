"""Issue 15, item 6: behind the documented reverse proxy, the sign-in throttle and the audit see the client,
not the proxy (TRUSTED_PROXY_HOPS, werkzeug's ProxyFix), so five wrong passwords from one address cannot lock
a named nurse out for everyone; and X-Forwarded-For is believed only from as many proxies as are trusted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import SettingsError, load_settings
from pro_service.models import AuditLog
from tests.browser.support import PASSWORD, csrf_token, make_staff

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]
PROXY = "10.0.0.2"  # the reverse proxy: every request reaches the web from here
ATTACKER = "203.0.113.9"
NURSE_AT_WORK = "198.51.100.7"


def _client(app: Any, forwarded_for: str | None) -> Any:
    """A browser whose requests come through the proxy, which appends the browser's address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = PROXY
    if forwarded_for is not None:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def _sign_in(client: Any, email: str, password: str) -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


@pytest.fixture
def proxied_app(settings: Any) -> Iterator[Any]:
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"TRUSTED_PROXY_HOPS": 1}))
    app.testing = True
    app.extensions["pro_login_limiter"].clear()
    yield app
    app.extensions["pro_login_limiter"].clear()
    runtime_of(app).dispose()


@pytest.mark.commits("a second app (behind a proxy), with its own connections")
def test_wrong_passwords_from_one_address_do_not_lock_the_nurse_out_elsewhere(
    proxied_app: Any, rt: Any
) -> None:
    make_staff(rt, email="kim@example.org")
    attacker = _client(proxied_app, ATTACKER)
    for _ in range(5):
        assert _sign_in(attacker, "kim@example.org", "guess-guess-guess").status_code == 401
    assert _sign_in(attacker, "kim@example.org", PASSWORD).status_code == 429  # the attacker is held

    nurse = _client(proxied_app, NURSE_AT_WORK)
    assert _sign_in(nurse, "kim@example.org", PASSWORD).status_code == 302  # the nurse is not

    with rt.sessions() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    failed = [r.ip for r in rows if r.action == "sign_in_failed"]
    assert failed == [ATTACKER] * 5  # the audit names the client, not the proxy
    assert NURSE_AT_WORK in {r.ip for r in rows if r.action != "sign_in_failed"}


def test_a_forged_forwarded_for_does_not_escape_the_throttle(proxied_app: Any, rt: Any) -> None:
    """One proxy is trusted: only the address it appended (the last) counts; what the client wrote before
    it is ignored, so a new made-up address per attempt changes nothing."""
    make_staff(rt, email="kim@example.org")
    for attempt in range(5):
        forged = _client(proxied_app, f"192.0.2.{attempt}, {ATTACKER}")
        assert _sign_in(forged, "kim@example.org", "guess-guess-guess").status_code == 401
    again = _client(proxied_app, f"192.0.2.99, {ATTACKER}")
    assert _sign_in(again, "kim@example.org", PASSWORD).status_code == 429


def test_without_trusted_proxies_forwarded_for_is_ignored(app: Any, rt: Any) -> None:
    """The default (TRUSTED_PROXY_HOPS=0): the header is anyone's to write, so it is not believed."""
    app.extensions["pro_login_limiter"].clear()
    make_staff(rt, email="kim@example.org")
    try:
        for attempt in range(5):
            forged = _client(app, f"192.0.2.{attempt}")
            assert _sign_in(forged, "kim@example.org", "guess-guess-guess").status_code == 401
        assert _sign_in(_client(app, "192.0.2.77"), "kim@example.org", PASSWORD).status_code == 429
        with rt.sessions() as session:
            ips = set(session.scalars(select(AuditLog.ip).where(AuditLog.action == "sign_in_failed")))
        assert ips == {PROXY}
    finally:
        app.extensions["pro_login_limiter"].clear()


def test_the_throttle_never_counts_an_account_alone() -> None:
    """Failures are counted per (account, address) and per address, never per account: however many
    addresses fail for an account, another address may still sign in to it."""
    from pro_service.web.login_limit import Limits, LoginLimiter

    limiter = LoginLimiter(None, Limits(per_account=2, per_ip=50, window_seconds=60))
    for n in range(40):
        limiter.failed("kim@example.org", f"203.0.113.{n}")
        limiter.failed("kim@example.org", f"203.0.113.{n}")
    assert limiter.retry_after("kim@example.org", "203.0.113.1") > 0
    assert limiter.retry_after("kim@example.org", NURSE_AT_WORK) == 0


@pytest.mark.parametrize("value", ["-1", "two", "6"])
def test_a_bad_trusted_proxy_hops_stops_start_up_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXY_HOPS"):
        load_settings(
            SECRET_KEY="unit-secret-key-" + "x" * 16,
            DATABASE_URL=f"sqlite:///{tmp_path / 'pro.sqlite3'}",
            TRUSTED_PROXY_HOPS=value,
        )


def test_trusted_proxy_hops_defaults_to_none(tmp_path: Path) -> None:
    settings = load_settings(
        SECRET_KEY="unit-secret-key-" + "x" * 16, DATABASE_URL=f"sqlite:///{tmp_path / 'pro.sqlite3'}"
    )
    assert settings.TRUSTED_PROXY_HOPS == 0
