"""Issue 15, item 7: /metrics needs no staff session, so it answers only Prometheus' bearer token
(METRICS_TOKEN) and is off (404) without one; a bad METRICS_TOKEN stops start-up naming it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from config.settings import SettingsError, load_settings
from tests.conftest import METRICS_TOKEN

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-0123456789abc",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        "Basic " + base64.b64encode(f"prometheus:{METRICS_TOKEN}".encode()).decode(),
        METRICS_TOKEN,
    ],
)
def test_a_scrape_without_the_token_is_refused(client: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "pro_" not in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_token_scrapes(client: Any) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "pro_http_request_seconds" in response.get_data(as_text=True)


def test_without_a_metrics_token_the_endpoint_is_off(settings: Any) -> None:
    from pro_service import create_app, runtime_of

    app = create_app(settings.model_copy(update={"METRICS_TOKEN": None}))
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 404
    finally:
        runtime_of(app).dispose()


def _settings(tmp_path: Path, **overrides: Any) -> Any:
    return load_settings(
        SECRET_KEY="unit-secret-key-" + "x" * 16, DATABASE_URL=f"sqlite:///{tmp_path / 'p'}", **overrides
    )


@pytest.mark.parametrize("value", ["short", "has a space in it 0123", "ünïcödé-0123456789"])
def test_a_bad_metrics_token_stops_start_up_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        _settings(tmp_path, METRICS_TOKEN=value)


def test_an_empty_metrics_token_is_unset(tmp_path: Path) -> None:
    assert _settings(tmp_path, METRICS_TOKEN="").METRICS_TOKEN is None
    assert _settings(tmp_path).METRICS_TOKEN is None
    assert _settings(tmp_path, METRICS_TOKEN="a" * 64).METRICS_TOKEN == "a" * 64
