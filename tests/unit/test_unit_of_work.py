"""The request's unit of work (web/unit_of_work.py): what a request wrote is kept exactly when its answer is a
success, whichever way the answer came (a view, a before-request hook, an error handler), and a failed
commit reaches the blueprint's error handler. Run on the embedded default's engine (SQLite, a real file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Blueprint, Flask, abort, flash, g, request, session
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pro_service.db import make_engine, make_session_factory, unit_of_work
from pro_service.web.unit_of_work import UnitOfWorkFlask


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'uow.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT)"))
        connection.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        # Checked only at COMMIT: a write that fails there, not at its statement.
        connection.execute(
            text(
                "CREATE TABLE children (parent_id INTEGER REFERENCES parents (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield engine
    engine.dispose()


def _app(engine: Engine) -> Flask:
    factory: sessionmaker[Session] = make_session_factory(engine)
    app = UnitOfWorkFlask(__name__)
    app.config["SECRET_KEY"] = "unit-of-work-test-key"
    bp = Blueprint("notes", __name__)

    def db() -> Session:
        if "db_session" not in g:
            g.db_session = factory()
        session: Session = g.db_session
        return session

    def write(body: str) -> None:
        db().execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    @bp.before_request
    def _hook() -> tuple[str, int] | None:
        if request.args.get("hook"):
            write("hook-" + request.args["hook"])
            return "hook answered", int(request.args["hook"])
        return None

    @bp.get("/answer/<int:status>")
    def answer(status: int) -> tuple[str, int]:
        write(f"view-{status}")
        return "answered", status

    @bp.get("/raise")
    def raises() -> str:
        write("raised")
        abort(403)

    @bp.get("/cookie")
    def cookie() -> dict[str, object]:
        return dict(session)

    @bp.get("/earlier-flash")
    def earlier_flash() -> str:
        flash("Earlier message.")  # not shown yet: it waits in the cookie for the next page
        return "ok"

    @bp.get("/grant-then-refuse")
    def grant_then_refuse() -> tuple[str, int]:
        session["cleared"] = True  # a deliberate refusal keeps what its view put in the cookie
        return "signed out", 401

    @bp.get("/orphan")
    def orphan() -> str:
        write("orphan")
        session["break_glass"] = 42  # what the page grants once the row is saved
        flash("Alert acknowledged.")
        db().execute(text("INSERT INTO children (parent_id) VALUES (42)"))
        return "fails at commit"

    @bp.errorhandler(IntegrityError)
    def _conflict(_exc: IntegrityError) -> tuple[str, int]:
        return "conflict", 409

    app.register_blueprint(bp)
    return app


def _notes(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(text("SELECT body FROM notes")).scalars())


def test_a_success_is_committed_and_a_refusal_rolled_back(engine: Engine) -> None:
    client = _app(engine).test_client()
    for status in (200, 201, 204, 302, 400, 404, 409, 500):
        assert client.get(f"/answer/{status}").status_code == status
    assert _notes(engine) == ["view-200", "view-201", "view-204", "view-302"]


def test_a_before_request_answer_is_the_requests_answer(engine: Engine) -> None:
    client = _app(engine).test_client()
    assert client.get("/answer/200?hook=302").status_code == 302
    assert client.get("/answer/200?hook=401").status_code == 401
    assert _notes(engine) == ["hook-302"]  # the view never ran; the hook's 401 kept nothing


def test_a_raised_error_keeps_nothing(engine: Engine) -> None:
    assert _app(engine).test_client().get("/raise").status_code == 403
    assert _notes(engine) == []


def test_a_failed_commit_reaches_the_blueprints_error_handler(engine: Engine) -> None:
    # The deferred foreign key fails at COMMIT, after the view returned: the blueprint's handler answers
    # (409), not Flask's generic 500, and nothing is kept.
    assert _app(engine).test_client().get("/orphan").status_code == 409
    assert _notes(engine) == []


def test_a_failed_commit_takes_back_what_the_request_put_in_the_cookie(engine: Engine) -> None:
    """A break-glass grant (or a flash saying "acknowledged") must not outlive its rolled-back row."""
    client = _app(engine).test_client()
    assert client.get("/orphan").status_code == 409
    assert client.get("/cookie").json == {}
    # A message already waiting in the cookie stays, alone: `flash` appends to that same list.
    assert client.get("/earlier-flash").status_code == 200
    assert client.get("/orphan").status_code == 409
    assert client.get("/cookie").json == {"_flashes": [["message", "Earlier message."]]}
    client.delete_cookie("session")
    assert client.get("/grant-then-refuse").status_code == 401
    assert client.get("/cookie").json == {"cleared": True}


def test_a_tasks_unit_of_work_commits_at_the_end_and_rolls_back_on_error(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('task')"))

    def failing_task() -> None:
        with unit_of_work(factory) as session:
            session.execute(text("INSERT INTO notes (body) VALUES ('failed task')"))
            raise RuntimeError("the task failed after writing")

    with pytest.raises(RuntimeError):
        failing_task()
    assert _notes(engine) == ["task"]
