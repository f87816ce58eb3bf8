"""Each process is wired for its role (build_runtime): workers publish inline, the web in the background.

Issue 13, defect 3: the Celery entry point built the web's app, so workers published follow-up tasks (pages,
safety texts, sends) from a background thread after their commit. A worker killed in that gap had already
acknowledged its task and committed; the follow-ups waited for the 60-second sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import redis
from sqlalchemy import text

from pro_service.runtime import Role, build_runtime

PROBE = (
    "import json, workers.celery as w; "
    "print(json.dumps({'role': w.runtime.role.value, 'background': w.runtime.tasks.background}))"
)


def test_the_celery_entry_point_wires_a_worker_that_publishes_inline(settings_env: dict[str, str]) -> None:
    env = {**os.environ, **settings_env}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"role": "worker", "background": False}


def test_a_worker_runtime_has_published_when_its_commit_returns(
    settings: Any, unheard_redis_url: str
) -> None:
    isolated = unheard_redis_url  # a Redis db no worker listens to
    rt = build_runtime(settings.model_copy(update={"REDIS_URL": isolated}), Role.WORKER)
    queue_name = f"probe-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(isolated)
    try:
        with rt.unit_of_work() as session:
            session.execute(text("select 1"))
            rt.tasks.after_commit(session, "pro.probe", 1, queue_name=queue_name)
            assert client.llen(queue_name) == 0  # nothing before the commit
        # No wait: the publish happened inside the commit, before a task could be acknowledged.
        assert client.llen(queue_name) == 1
    finally:
        client.delete(queue_name)
        client.close()
        rt.dispose()


def test_the_web_runtime_publishes_off_the_request(settings: Any) -> None:
    rt = build_runtime(settings, Role.WEB)
    try:
        assert rt.role is Role.WEB and rt.tasks.background
    finally:
        rt.dispose()
