"""INBOUND_GROUP_COMMIT and SEND_RATE_LIMITER: their defaults, a bad value stops start-up naming the variable,
and build_runtime holds the send-rate limiter the settings choose."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings
from pro_service.runtime import Role, build_runtime
from pro_service.sms.ratelimit import LocalRateLimiter, RedisRateLimiter

SECRET = "unit-secret-key-" + "x" * 16
REDIS = "redis://127.0.0.1:6379/0"  # never connected to: building the runtime opens no connection


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings also read os.environ: the tests must see only what they pass."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    return load_settings(SECRET_KEY=SECRET, DATABASE_URL=f"sqlite:///{tmp_path / 'pro.sqlite3'}", **overrides)


def test_group_commit_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    assert make_settings(tmp_path).INBOUND_GROUP_COMMIT is True
    assert make_settings(tmp_path, INBOUND_GROUP_COMMIT="false").INBOUND_GROUP_COMMIT is False


def test_a_bad_group_commit_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="INBOUND_GROUP_COMMIT"):
        make_settings(tmp_path, INBOUND_GROUP_COMMIT="sometimes")


def test_the_send_rate_limiter_defaults_to_redis_only_when_there_is_one(tmp_path: Path) -> None:
    assert make_settings(tmp_path).send_rate_limiter == "local"
    assert make_settings(tmp_path, REDIS_URL=REDIS).send_rate_limiter == "redis"
    assert make_settings(tmp_path, REDIS_URL=REDIS, SEND_RATE_LIMITER="local").send_rate_limiter == "local"


@pytest.mark.parametrize("value", ["memcached", "Redis", ""])
def test_a_bad_send_rate_limiter_names_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="SEND_RATE_LIMITER"):
        make_settings(tmp_path, REDIS_URL=REDIS, SEND_RATE_LIMITER=value)


def test_a_redis_limiter_without_redis_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SEND_RATE_LIMITER=redis needs REDIS_URL"):
        make_settings(tmp_path, SEND_RATE_LIMITER="redis")


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({}, LocalRateLimiter),
        ({"REDIS_URL": REDIS}, RedisRateLimiter),
        ({"SEND_RATE_LIMITER": "local"}, LocalRateLimiter),
    ],
)
def test_the_runtime_holds_the_chosen_limiter(tmp_path: Path, overrides: dict[str, str], kind: type) -> None:
    rt = build_runtime(make_settings(tmp_path, **overrides), Role.CLI)
    try:
        assert isinstance(rt.rate_limiter, kind)
    finally:
        rt.dispose()
