"""`make run` end to end: `pro-service run` (the embedded default) started as a subprocess of the venv's entry
point, on a SQLite file in a temporary folder and a free port. The demo seed, the web, the Celery worker with
beat on the SQLite-backed broker and the outbox SMS gateway have to work together: a check-in started through
the API reaches the patient's phone (the outbox), the patient's signed reply is stored by POST /twilio/sms and
the worker answers it with the next question.

Needs no PostgreSQL or Redis, so it is not marked `integration` (that marker brings the shared database in).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import Settings
from tests.conftest import Signer, free_port, wait_for

ENTRY_POINT = Path(sys.executable).with_name("pro-service")  # what `make run` runs: $(BIN)/pro-service run
SECRET_KEY = "dev-only-insecure-secret-key-do-not-deploy"  # the Makefile's development value
STOP_TIMEOUT = 20.0  # the runner waits up to 15 s for its worker after SIGTERM


def _group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    if not Path("/proc/self/stat").exists():  # not Linux: ask the kernel about the group as a whole
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@dataclass
class EmbeddedRun:
    proc: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    log_path: Path
    settings: Settings

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"`pro-service run` exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> int:
        """SIGTERM to the whole process group (web, worker, beat), as Ctrl-C would; SIGKILL only if it does
        not stop in time, and then it fails. Returns the runner's exit status. Safe to call twice."""
        pgid = self.proc.pid  # started in a new session: the runner leads its own process group
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
            wait_for(
                lambda: not _group_members(pgid), timeout=STOP_TIMEOUT, interval=0.1, message="the group"
            )
        except (subprocess.TimeoutExpired, AssertionError):
            left = _group_members(pgid)
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(10)
            wait_for(lambda: not _group_members(pgid), timeout=10, interval=0.1, message="the killed group")
            raise AssertionError(
                f"`pro-service run` did not stop on SIGTERM (processes {left} killed):\n{self.log()[-4000:]}"
            ) from None
        return self.proc.returncode


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRun]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "var"  # does not exist yet: the runner creates it
    # Nothing from the caller's environment that would change what `make run` does (a REDIS_URL, say).
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.model_fields
        and not name.startswith("CELERY_")
        and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=f"sqlite:///{data_dir / 'pro-service.sqlite3'}",
        PUBLIC_BASE_URL=base_url,  # the URL Twilio would call: the signature is checked against it
        PYTHONUNBUFFERED="1",
    )
    settings = Settings(**{k: v for k, v in env.items() if k in Settings.model_fields})  # type: ignore[arg-type]
    assert ENTRY_POINT.exists(), f"{ENTRY_POINT} is missing: install the project (make install)"
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(ENTRY_POINT), "run", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = EmbeddedRun(proc, base_url, data_dir, log_path, settings)
    try:
        wait_for(run.healthy, timeout=60, interval=0.2, message="/healthz of `pro-service run`")
        yield run
    finally:
        run.stop()
        assert not _group_members(proc.pid), "a process of `pro-service run` was left behind"


def test_make_run_seeds_serves_and_processes_a_signed_reply_in_its_worker(embedded: EmbeddedRun) -> None:
    found = re.search(r"demo API token \(admin\): (pro_\S+)", embedded.log())
    assert found, f"the demo seed printed no API token:\n{embedded.log()[-4000:]}"
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {found.group(1)}"

    def get(path: str, **params: Any) -> Any:
        response = api.get(f"{embedded.base_url}/api/v1{path}", params=params, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    # The demo seed: staff, eight patients, alerts raised from their history.
    emails = {member["email"] for member in get("/staff")["staff"]}
    assert {"nurse@demo.local", "charge@demo.local", "admin@demo.local"} <= emails
    patients = {p["mrn"]: p for p in get("/patients", page_size=200)["patients"]}
    assert sorted(patients) == [f"DEMO-00{n}" for n in range(1, 9)]
    assert get("/alerts", status="open")["alerts"], "the seed raised no open alert"

    patient = patients["DEMO-003"]  # English, no open check-in in the seed
    started = api.post(
        f"{embedded.base_url}/api/v1/patients/{patient['id']}/check-ins",
        json={"instrument": "sre-weekly"},
        timeout=10,
    )
    if started.status_code == 409:
        # Beat opened this week's scheduled check-in first (the demo's are due Mondays): answer that one.
        open_now = [
            c
            for status in ("in_progress", "pending")
            for c in get("/check-ins", patient_id=patient["id"], status=status)["check_ins"]
        ]
        assert open_now, started.text
        check_in = open_now[0]
    else:
        assert started.status_code == 201, started.text
        check_in = started.json()
    first_item = check_in["current_item"]

    def question(item: str) -> Any:
        """The check-in's question for `item`, once the worker has sent it through the outbox."""
        for message in get("/messages", patient_id=patient["id"])["messages"]:
            if message["check_in_id"] == check_in["id"] and message["item_code"] == item:
                return message if message["status"] == "delivered" else None
        return None

    # Published by the web after commit, sent by the worker: the first question reaches the phone.
    wait_for(lambda: question(first_item), timeout=20, interval=0.2, message=f"question {first_item} sent")

    # The patient answers from her phone: signed as Twilio signs, posted to the webhook.
    sid = "SM" + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": patient["phone"],
        "To": "+15550100000",
        "Body": "no",
        "NumMedia": "0",
    }
    signer = Signer(embedded.settings.PUBLIC_BASE_URL, embedded.settings.webhook_auth_token)
    headers = signer.headers("/twilio/sms", params)
    reply = requests.post(f"{embedded.base_url}/twilio/sms", data=params, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text

    def reply_status() -> str | None:
        for message in get("/messages", patient_id=patient["id"])["messages"]:
            if message["twilio_sid"] == sid:
                return str(message["status"])
        return None

    assert reply_status() is not None, "the webhook answered 200 but stored nothing"
    # The worker finds the stored reply, records the answer and sends the next question.
    wait_for(lambda: reply_status() == "processed", timeout=20, interval=0.2, message="the reply processed")
    after = get(f"/check-ins/{check_in['id']}")
    assert after["answers"][first_item]["raw_text"] == "no", after
    assert after["answers"][first_item]["status"] == "answered", after
    next_item = after["current_item"]
    assert next_item not in (None, first_item), after
    wait_for(lambda: question(next_item), timeout=20, interval=0.2, message=f"question {next_item} sent")

    # An emergency in her own words, on the embedded default too: read on arrival, an urgent alert, and
    # the safety text (not the next question's acknowledgement) through the outbox.
    words = {**params, "MessageSid": "SM" + secrets.token_hex(16), "Body": "my legs went numb, cant stand up"}
    posted = requests.post(
        f"{embedded.base_url}/twilio/sms",
        data=words,
        headers=signer.headers("/twilio/sms", words),
        timeout=10,
    )
    assert posted.status_code == 200, posted.text

    def safety_text() -> Any:
        for message in get("/messages", patient_id=patient["id"])["messages"]:
            if message["kind"] == "safety" and message["status"] == "delivered":
                return message
        return None

    wait_for(safety_text, timeout=20, interval=0.2, message="the safety text delivered")
    urgent = get("/alerts", patient_id=patient["id"], status="open")["alerts"]
    assert any(a["category"] == "spinal_cord_compression" and a["urgency"] == "urgent" for a in urgent), (
        urgent
    )

    # The broker and beat's schedule live beside the database, in the data folder (not the repository's var/).
    assert (embedded.data_dir / "celery-broker.sqlite3").exists()
    assert list(embedded.data_dir.glob("celerybeat-schedule*")), "beat did not start"
    assert embedded.stop() == 0, embedded.log()[-4000:]
