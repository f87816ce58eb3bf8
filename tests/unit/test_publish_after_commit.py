"""Tasks are published when the outermost transaction commits, never when a SAVEPOINT is released.

A savepoint (upsert_alert's begin_nested) released mid-transaction fires SQLAlchemy's after_commit; a task
published then races rows the worker cannot see yet. Found by the own-words tests: a safety text queued
for one alert was published when the next alert's savepoint was released, and was skipped as "not queued".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from pro_service.queue import Job, TaskQueue


class RecordingQueue(TaskQueue):
    """The real hook; only the broker call is replaced by a record of what would be published."""

    def __init__(self) -> None:
        super().__init__(celery=None)  # type: ignore[arg-type]
        self.published: list[Job] = []

    def _submit(self, job: Job) -> None:
        self.published.append(job)


def _factory() -> tuple[Any, RecordingQueue]:
    sessions = sessionmaker(create_engine("sqlite://"))
    tasks = RecordingQueue()
    tasks.install(sessions)
    return sessions, tasks


def test_a_released_savepoint_publishes_nothing_until_the_outer_commit() -> None:
    sessions, tasks = _factory()
    with sessions() as session, session.begin():
        session.execute(text("select 1"))
        tasks.after_commit(session, "pro.send_message", 1)
        with session.begin_nested():
            session.execute(text("select 1"))
        assert tasks.published == []  # still inside the outer transaction
        tasks.after_commit(session, "pro.send_message", 2)
    assert [job[1] for job in tasks.published] == [(1,), (2,)]


def test_a_rolled_back_savepoint_keeps_the_outer_transactions_tasks() -> None:
    sessions, tasks = _factory()
    with sessions() as session, session.begin():
        tasks.after_commit(session, "pro.send_message", 1)
        nested = session.begin_nested()
        session.execute(text("select 1"))
        nested.rollback()
    assert [job[1] for job in tasks.published] == [(1,)]


def test_an_outer_rollback_publishes_nothing() -> None:
    sessions, tasks = _factory()
    with sessions() as session:
        session.begin()
        tasks.after_commit(session, "pro.send_message", 1)
        session.rollback()
        session.begin()
        session.commit()
    assert tasks.published == []
