"""Questionnaire v1 against v2 on the embedded default, answered through the patient-phone simulator.

    python -m benchmarks.bench_questionnaire [--rounds 3]

Starts `pro-service run` (SQLite, outbox, the in-process worker) in a temporary folder, enrols one patient
on ruleset 2 (questionnaire v1) and one on ruleset 3 (questionnaire v2), and answers each check-in through
the simulator as a scripted patient: a well week (pain 0) and an unwell one. Prints, per version and
script, how many questions were asked, how many characters the patient read, and the service's time from
each reply to the next question (p50 / p95 / max) and for the whole check-in.

What it cannot measure: how many real patients finish. That depends on people who are tired and on small
phones; the questions asked, the characters read and where the red flags sit are its proxies here.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.harness import free_port, print_machine, wait_for
from pro_service.demo import DEMO_PASSWORD as PASSWORD  # published for the local demo only

ENTRY_POINT = Path(sys.executable).with_name("pro-service")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN = re.compile(r"demo API token \(admin\): (pro_\S+)")

# Replies in question order; a version's script may be longer than it asks (skips end it early).
SCRIPTS: dict[int, dict[str, list[str]]] = {
    1: {
        "well": ["no", "0", "no", "no", "0", "no"],
        "unwell": ["yes", "6", "back", "1", "yes", "no", "no", "no", "1 4", "my back aches at night"],
    },
    2: {
        "well": ["no", "0", "no", "no", "no", "0", "0", "no"],
        "unwell": [
            "no",
            "0",
            "no",
            "no",
            "no",
            "6",
            "back",
            "night",
            "tired, thirsty",
            "my back aches at night",
        ],
    },
}


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1)


class Service:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {token}"
        self.web = requests.Session()
        page = self.web.get(f"{base}/login", timeout=10)
        signed_in = self.web.post(
            f"{base}/login",
            data={"csrf_token": _csrf(page.text), "email": "admin@demo.local", "password": PASSWORD},
            allow_redirects=False,
            timeout=10,
        )
        if signed_in.status_code != 302:
            raise RuntimeError(f"sign-in failed: {signed_in.status_code}")

    def enrol(self, mrn: str, phone: str, version: int) -> int:
        teams = self.api.get(f"{self.base}/api/v1/care-teams", timeout=10).json()["care_teams"]
        body = {
            "mrn": mrn, "given_name": "Bench", "family_name": mrn, "phone": phone,
            "timezone": "UTC", "language": "en", "care_team_id": teams[0]["id"],
        }  # fmt: skip
        created = self.api.post(f"{self.base}/api/v1/patients", json=body, timeout=10)
        created.raise_for_status()
        patient = int(created.json()["id"])
        path = f"{self.base}/admin/patients/{patient}/ruleset"
        page = self.web.get(path, timeout=10)
        if f"On <strong>version {version}</strong>" not in page.text:
            moved = self.web.post(
                path,
                data={"csrf_token": _csrf(page.text), "version": str(version), "reason": "bench"},
                timeout=10,
            )
            moved.raise_for_status()
        return patient

    def asked(self, patient: int) -> list[tuple[str, str]]:
        """(kind, text) of every question and re-prompt sent to the patient, oldest first."""
        found = self.api.get(f"{self.base}/api/v1/messages", params={"patient_id": patient}, timeout=10)
        messages = sorted(found.json()["messages"], key=lambda m: m["id"])  # the API lists newest first
        return [
            (m["kind"], m["body"])
            for m in messages
            if m["direction"] == "outbound" and m["kind"] in ("question", "reprompt")
        ]

    def reply(self, patient: int, text: str) -> None:
        page = self.web.get(f"{self.base}/simulator/", params={"patient": patient}, timeout=10)
        sent = self.web.post(
            f"{self.base}/simulator/{patient}/reply",
            data={"csrf_token": _csrf(page.text), "body": text},
            allow_redirects=False,
            timeout=10,
        )
        if sent.status_code != 302:
            raise RuntimeError(f"the simulator refused the reply: {sent.status_code}")

    def check_in(self, patient: int, script: list[str]) -> tuple[list[tuple[str, str]], list[float], float]:
        started = time.monotonic()
        self.api.post(
            f"{self.base}/api/v1/patients/{patient}/check-ins", json={"instrument": "sre-weekly"}, timeout=10
        ).raise_for_status()
        sent = wait_for(lambda: self.asked(patient), timeout=20, message="the first question")
        waits: list[float] = []
        for text in script:
            last_question = next(body for kind, body in reversed(sent) if kind == "question")
            position, total = last_question.split(" ", 1)[0].split("/")
            before = len(sent)
            sent_at = time.monotonic()
            self.reply(patient, text)
            if position == total and sent[-1][0] == "question":
                break  # a readable reply to the last question closes the check-in
            sent = wait_for(
                lambda n=before: (q := self.asked(patient)) and len(q) > n and q,  # type: ignore[misc]
                timeout=20, interval=0.02, message="the next question or re-prompt",
            )  # fmt: skip
            waits.append(time.monotonic() - sent_at)
        return sent, waits, time.monotonic() - started


def run(full: bool = False, rounds: int | None = None) -> dict[str, Any]:
    from config.settings import Settings

    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        # Only what `make run` itself sets: nothing of an operator's environment leaks into the demo.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in Settings.model_fields and not k.startswith("CELERY_")
        }
        env.update(
            SECRET_KEY="bench-secret-key-" + "x" * 16,
            DATABASE_URL=f"sqlite:///{Path(folder) / 'bench.sqlite3'}",
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            PYTHONUNBUFFERED="1",
        )
        log = Path(folder) / "run.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(ENTRY_POINT), "run", "--port", str(port)], cwd=folder, env=env, stdout=out, stderr=out
            )
            try:
                token = wait_for(
                    lambda: TOKEN.search(log.read_text(errors="replace")),
                    timeout=90, message="the demo seed",
                ).group(1)  # fmt: skip
                base = f"http://127.0.0.1:{port}"
                wait_for(lambda: _up(base), timeout=60, message="the web server")
                return _run(Service(base, token), rounds or (5 if full else 3))
            except Exception:
                print(log.read_text(errors="replace")[-6000:], file=sys.stderr)
                raise
            finally:
                proc.terminate()
                proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_machine()
    run(rounds=args.rounds)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _run(service: Service, rounds: int) -> dict[str, Any]:
    head = ("version", "script", "asked", "re-asked", "chars", "p50 s", "p95 s", "max s", "total s")
    print(f"{head[0]:<16}{head[1]:<8}" + "".join(f"{h:>9}" for h in head[2:]))
    figures: dict[str, Any] = {}
    for version, ruleset in ((1, 2), (2, 3)):
        for name, script in SCRIPTS[version].items():
            waits: list[float] = []
            totals: list[float] = []
            sent: list[tuple[str, str]] = []
            for n in range(rounds):
                phone = f"+1555019{version}{len(name)}{n:02d}"
                patient = service.enrol(f"BENCH-{version}-{name}-{n}", phone, ruleset)
                sent, each, total = service.check_in(patient, script)
                waits += each
                totals.append(total)
            ordered = sorted(waits)
            p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            questions = [body for kind, body in sent if kind == "question"]
            cells = (
                len(questions), len(sent) - len(questions), sum(len(body) for _kind, body in sent),
                f"{statistics.median(waits):.2f}", f"{p95:.2f}", f"{max(waits):.2f}",
                f"{statistics.median(totals):.1f}",
            )  # fmt: skip
            print(f"{f'v{version} (rules {ruleset})':<16}{name:<8}" + "".join(f"{c:>9}" for c in cells))
            figures[f"v{version}_{name}"] = dict(zip(head[2:], cells, strict=True))
    return figures


if __name__ == "__main__":
    main()
