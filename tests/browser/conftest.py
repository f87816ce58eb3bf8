"""Browser tests: Playwright driving Debian's Chromium against the app on a real port (root conftest's
live_server), with the real worker where the page depends on it. A test that takes `site` runs twice: on
that PostgreSQL app and on the embedded SQLite default (outbox, no Redis) that `make run` starts.
No `playwright install`: the system browser is used; `make test` installs it (scripts/ensure-services)
and a missing browser fails loudly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PRO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser: Any, base_url: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context, page = new_page(browser, live_server)
    yield page
    context.close()


def sign_in(page: Any, email: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.fixture(params=["postgresql", "sqlite"])
def site(request: pytest.FixtureRequest, browser: Any) -> Iterator[tuple[Any, Any]]:
    """A browser page and the runtime of the app it talks to, on PostgreSQL (the suite's app) and on SQLite
    with the outbox gateway and no Redis: the embedded default `make run` starts, what users try first."""
    if request.param == "postgresql":
        live_server, rt = request.getfixturevalue("live_server"), request.getfixturevalue("rt")
        context, page = new_page(browser, live_server)
        yield page, rt
        context.close()
        return
    import threading

    from werkzeug.serving import make_server

    from config.settings import Settings
    from pro_service import create_app, runtime_of
    from pro_service.migrate import upgrade
    from testsupport.ports import free_port

    tmp_path: Path = request.getfixturevalue("tmp_path")
    url = f"sqlite:///{tmp_path / 'pro.sqlite3'}"
    upgrade(url)
    port = free_port()
    settings = Settings(
        SECRET_KEY="test-secret-key-" + "s" * 16,  # type: ignore[arg-type]
        DATABASE_URL=url,
        REDIS_URL=None,
        SMS_BACKEND="outbox",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context, page = new_page(browser, f"http://127.0.0.1:{port}")
    try:
        yield page, runtime_of(app)
    finally:
        context.close()
        server.shutdown()
        thread.join(5)
        runtime_of(app).dispose()
