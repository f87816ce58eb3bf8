"""Issue 15, item 11: settings that keep a production deployment safe stop start-up when wrong, naming the
variable: the event webhook needs https outside development (the outbox backend); the patient-phone
simulator is for nurses only on the embedded default (`pro-service run`) or when SIMULATOR_FOR_NURSES says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, SettingsError, load_settings

SECRET = "unit-secret-key-" + "x" * 16
EVENT_SECRET = "event-secret-0123456789"
TWILIO = {
    "SMS_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "TWILIO_FROM_NUMBER": "+15550100000",
    "CLINIC_PHONE": "+1 555 0100",
}
POSTGRES = "postgresql+psycopg://pro@127.0.0.1/pro"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"SECRET_KEY": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path / 'pro.sqlite3'}"}
    return load_settings(**{**values, **overrides})


@pytest.mark.parametrize(
    "url",
    [
        "http://events.hospital.example/pro",
        "ftp://events.hospital.example/pro",
        "https://",
        "http://10.0.0.7/x",
    ],
)
def test_an_event_webhook_without_https_stops_start_up_in_production(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="EVENT_WEBHOOK_URL"):
        _settings(tmp_path, EVENT_WEBHOOK_URL=url, EVENT_WEBHOOK_SECRET=EVENT_SECRET, **TWILIO)


@pytest.mark.parametrize(
    "url",
    [
        "https://events.hospital.example/pro",
        "http://127.0.0.1:8080/events",  # this machine: a local relay (nothing leaves the host)
        "http://localhost/events",
        "http://[::1]:9000/events",
    ],
)
def test_https_or_this_machine_is_accepted_in_production(tmp_path: Path, url: str) -> None:
    settings = _settings(tmp_path, EVENT_WEBHOOK_URL=url, EVENT_WEBHOOK_SECRET=EVENT_SECRET, **TWILIO)
    assert url == settings.EVENT_WEBHOOK_URL


def test_development_may_use_http(tmp_path: Path) -> None:
    """The outbox backend texts nobody: a demo or a developer's machine."""
    url = "http://receiver.internal/events"
    settings = _settings(tmp_path, EVENT_WEBHOOK_URL=url, EVENT_WEBHOOK_SECRET=EVENT_SECRET)
    assert settings.development
    assert url == settings.EVENT_WEBHOOK_URL
    assert not _settings(tmp_path, **TWILIO).development


def test_the_simulator_is_for_nurses_only_on_the_embedded_default(tmp_path: Path) -> None:
    assert _settings(tmp_path).simulator_for_nurses  # `pro-service run`: SQLite, outbox, no Redis
    assert not _settings(tmp_path, DATABASE_URL=POSTGRES).simulator_for_nurses
    assert not _settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0").simulator_for_nurses
    assert not _settings(tmp_path, SIMULATOR_FOR_NURSES="false").simulator_for_nurses
    assert _settings(tmp_path, DATABASE_URL=POSTGRES, SIMULATOR_FOR_NURSES="true").simulator_for_nurses
    assert not _settings(tmp_path, SIMULATOR_FOR_NURSES="").SIMULATOR_FOR_NURSES  # empty: unset
    with pytest.raises(SettingsError, match="SIMULATOR_FOR_NURSES"):
        _settings(tmp_path, SIMULATOR_FOR_NURSES="perhaps")
