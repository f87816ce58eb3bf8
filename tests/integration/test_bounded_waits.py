"""No wait on PostgreSQL is unbounded: a request or task stuck behind a lock (a long transaction, a migration)
or a silent server fails after DB_STATEMENT_TIMEOUT_SECONDS with a clear answer, instead of holding one of
the web's threads (or a worker) for minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from config.settings import Settings
from pro_service.db import bounded_connect_args
from pro_service.models import Patient, StaffRole, StaffUser
from pro_service.services.tokens import create_token
from tests.browser.support import csrf_token, login, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
HELD_FOR = 8.0  # seconds: how long the other transaction holds the row unless the test lets it go sooner


@pytest.fixture(scope="module")
def impatient_app(settings: Any) -> Iterator[Any]:
    from pro_service import create_app, runtime_of

    flask_app = create_app(settings.model_copy(update={"DB_STATEMENT_TIMEOUT_SECONDS": 1.0}))
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


class LockHolder:
    """Another transaction that takes a lock (as a long task or a migration would) and keeps it for
    HELD_FOR seconds, or until released: without a bound the request under test would simply wait for
    it, then succeed, and the test would fail rather than hang."""

    def __init__(self, rt: Any, sql: str, **params: Any) -> None:
        self.rt, self.sql, self.params = rt, text(sql), params
        self.locked, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self.rt.engine.connect() as connection:
            connection.execute(self.sql, self.params)
            self.locked.set()
            self.release.wait(HELD_FOR)
            connection.rollback()

    def __enter__(self) -> LockHolder:
        self.thread.start()
        if not self.locked.wait(10):
            self.release.set()  # let it go as soon as it gets the lock, so the next test can truncate
            raise AssertionError("the other transaction never took the lock")
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.thread.join(HELD_FOR + 5)


def test_an_api_request_behind_a_held_lock_answers_503_within_the_timeout(
    rt: Any, impatient_app: Any
) -> None:
    patient = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        token = create_token(
            session, requested_by="operator", name="admin", client="test-admin", scopes=("read", "enrolment")
        ).token
    client = impatient_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with LockHolder(rt, "SELECT id FROM patients WHERE id = :id FOR UPDATE", id=patient):
        started = time.monotonic()
        response = client.patch(f"/api/v1/patients/{patient}", json={"language": "es"}, headers=headers)
        waited = time.monotonic() - started
    assert response.status_code == 503, response.data
    assert response.json == {"error": "service_unavailable", "detail": "the database is unavailable"}
    assert waited < HELD_FOR / 2  # the statement timeout (1 s) ended the wait, not the other transaction
    # Nothing half-done: the patient is as before, and the same request goes through once the lock is gone.
    with rt.sessions() as session:
        assert session.get(Patient, patient).language == "en"
    again = client.patch(f"/api/v1/patients/{patient}", json={"language": "es"}, headers=headers)
    assert again.status_code == 200 and again.json["language"] == "es"


def test_every_connection_carries_the_bounds(rt: Any, settings: Any) -> None:
    """Sessions (web requests, tasks, beat) get DB_STATEMENT_TIMEOUT_SECONDS; the webhook's own pool the
    shorter WEBHOOK_DB_TIMEOUT_SECONDS; both with TCP keepalives and a user timeout."""
    for engine, seconds in (
        (rt.engine, settings.DB_STATEMENT_TIMEOUT_SECONDS),
        (rt.ingest_engine, settings.WEBHOOK_DB_TIMEOUT_SECONDS),
    ):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == f"{int(seconds)}s"
            parameters = connection.connection.dbapi_connection.info.get_parameters()
            assert parameters["keepalives"] == "1"
            assert parameters["tcp_user_timeout"] == str(int(seconds * 1000))
    assert Settings.model_fields["DB_STATEMENT_TIMEOUT_SECONDS"].default == 30.0


def test_an_operators_own_statement_timeout_in_the_url_wins() -> None:
    url = "postgresql+psycopg://app@db/pro?options=-c%20statement_timeout%3D90s%20-c%20search_path%3Dpro"
    options = bounded_connect_args(url, 30)["options"]
    assert options == "-c statement_timeout=30000 -c statement_timeout=90s -c search_path=pro"  # last wins


def test_a_staff_page_behind_a_held_lock_says_so_in_words(rt: Any, impatient_app: Any) -> None:
    """A nurse gets a page that says nothing was saved and to try again, not a JSON body or a 500."""
    make_staff(rt, email="kim@example.org")
    client = impatient_app.test_client()
    login(client, "kim@example.org")
    with LockHolder(rt, "LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"):  # as a migration would
        started = time.monotonic()
        page = client.get("/", headers={"Accept": "text/html"})
        waited = time.monotonic() - started
    assert page.status_code == 503
    assert page.mimetype == "text/html" and page.headers["Retry-After"] == "30"
    html = page.get_data(as_text=True)
    assert "Briefly unavailable" in html and "nothing was saved" in html and "Nurse Kim" in html
    assert waited < HELD_FOR / 2
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200


def test_a_staff_save_behind_a_held_lock_says_so_in_words(rt: Any, impatient_app: Any) -> None:
    """The usual case: a write that waits on a row another transaction holds. After the failed write the
    signed-in user's row cannot be reloaded, so the page goes without its header, but still in words."""
    make_staff(rt, email="admin@example.org", name="Ada Admin", role=StaffRole.ADMIN)
    other = make_staff(rt, email="kim@example.org")
    client = impatient_app.test_client()
    login(client, "admin@example.org")
    token = csrf_token(client, f"/admin/staff/{other}")
    form = {"csrf_token": token, "name": "Kim Lee", "phone": ""}
    with LockHolder(rt, "SELECT id FROM staff_users WHERE id = :id FOR UPDATE", id=other):
        page = client.post(f"/admin/staff/{other}", data=form, headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "nothing was saved" in page.get_data(as_text=True)
    with rt.sessions() as session:
        assert session.get(StaffUser, other).name == "Nurse Kim"
    assert client.post(f"/admin/staff/{other}", data=form).status_code == 302  # saved once the lock is gone
