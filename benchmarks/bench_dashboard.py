"""Dashboard: server-side time of the nurse's queue page and an alert page on a large database.

Skipped when pro_service/web/dashboard.py does not exist. Seeds (COPY) 10,000 patients, 100,000 answers
(--full: 1,000,000) in completed check-ins with one reply message each, and 10,000 alerts (--full: 100,000;
2,000 of them open, the rest resolved), signs a nurse in through /login and times GET / and
GET /alerts/<id> with Flask's test client (rendering included, no network).
`python -m benchmarks.bench_dashboard [--full]`.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.harness import (
    ROOT,
    BenchError,
    bench_database,
    copy_rows,
    ms,
    percentile,
    phone,
    print_machine,
    quiet_logs,
    redis_db,
    seed_team_and_patients,
    service_env,
    table,
)

ITEMS: list[tuple[str, Any]] = [
    ("pain_new", True),
    ("pain_worst", 6),
    ("pain_site", [1, 3]),
    ("pain_at_rest", False),
    ("sudden_immobile", False),
    ("neuro", False),
    ("bladder_bowel", False),
    ("calcium_sx", [1]),
    ("anything_else", "back a bit worse at night"),
]
CATEGORIES = (
    "spinal_cord_compression",
    "pathologic_fracture",
    "hypercalcemia",
    "pain",
    "patient_message",
    "non_response",
)
OPEN_ALERTS = 2000


def seed(pg_url: str, patients: int, answers: int, alerts: int) -> None:
    now = datetime.now(UTC)
    seed_team_and_patients(
        pg_url, "Dash", patients, mrn_prefix="D", zone="America/New_York", numbered_names=True
    )
    check_ins = answers // len(ITEMS)

    def when(k: int) -> datetime:  # check-in k: its patient's (k // patients)-th week back
        return now - timedelta(weeks=k // patients + 1)

    copy_rows(
        pg_url,
        "check_ins",
        [
            "patient_id",
            "instrument_code",
            "instrument_version",
            "status",
            "scheduled_for",
            "started_at",
            "misses_on_current",
            "closed_at",
            "scored_at",
            "created_at",
        ],
        (
            (k % patients + 1, "sre-weekly", 1, "completed", when(k), when(k), 0, when(k), when(k), when(k))
            for k in range(check_ins)
        ),
    )
    n = check_ins * len(ITEMS)
    copy_rows(
        pg_url,
        "messages",
        [
            "direction",
            "kind",
            "status",
            "patient_id",
            "check_in_id",
            "item_code",
            "from_number",
            "to_number",
            "body",
            "num_media",
            "attempts",
            "created_at",
            "updated_at",
            "processed_at",
        ],
        (
            (
                "inbound",
                "reply",
                "processed",
                (a // len(ITEMS)) % patients + 1,
                a // len(ITEMS) + 1,
                ITEMS[a % len(ITEMS)][0],
                phone((a // len(ITEMS)) % patients),
                "+15005550006",
                str(ITEMS[a % len(ITEMS)][1]),
                0,
                0,
                when(a // len(ITEMS)),
                when(a // len(ITEMS)),
                when(a // len(ITEMS)),
            )
            for a in range(n)
        ),
    )
    copy_rows(
        pg_url,
        "answers",
        ["check_in_id", "item_code", "status", "value", "raw_text", "question", "message_id", "answered_at"],
        (
            (
                a // len(ITEMS) + 1,
                ITEMS[a % len(ITEMS)][0],
                "answered",
                json.dumps(ITEMS[a % len(ITEMS)][1]),
                str(ITEMS[a % len(ITEMS)][1]),
                f"question {ITEMS[a % len(ITEMS)][0]}",
                a + 1,
                when(a // len(ITEMS)),
            )
            for a in range(n)
        ),
    )

    def alert(j: int) -> tuple[Any, ...]:
        category = CATEGORIES[j % len(CATEGORIES)]
        urgency, rank = [("urgent", 3), ("same_day", 2), ("routine", 1)][j % 3]
        status = "open" if j < OPEN_ALERTS else "resolved"
        evidence = [{"item_code": "pain_worst", "question": "q", "raw_text": "8", "value": 8, "rule_id": "r"}]
        opened = now - timedelta(minutes=j)
        return (
            f"R{j:08d}",
            j % patients + 1,
            (j % check_ins) + 1,
            category,
            urgency,
            rank,
            status,
            "sre",
            1,
            json.dumps(["r"]),
            json.dumps(evidence),
            opened,
            opened,
            0,
            False,
            None if status == "open" else opened + timedelta(hours=1),
        )

    copy_rows(
        pg_url,
        "alerts",
        [
            "ref",
            "patient_id",
            "check_in_id",
            "category",
            "urgency",
            "urgency_rank",
            "status",
            "ruleset",
            "ruleset_version",
            "rule_ids",
            "evidence",
            "opened_at",
            "updated_at",
            "escalation_level",
            "safety_message_sent",
            "resolved_at",
        ],
        (alert(j) for j in range(alerts)),
    )


def timed_get(client: Any, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        resp = client.get(path)
        times.append(time.perf_counter() - started)
        if resp.status_code != 200:
            raise BenchError(f"GET {path} answered {resp.status_code}")
    return times


def run(full: bool = False, requests: int = 30) -> dict[str, Any]:
    if not (ROOT / "pro_service" / "web" / "dashboard.py").exists():
        print("dashboard: skipped (no pro_service/web/dashboard.py)")
        return {"skipped": True}
    from config.settings import Settings
    from pro_service import create_app, runtime_of
    from pro_service.models import CareTeamMember, StaffRole
    from pro_service.services.staff import create_staff

    patients, answers, alerts = 10_000, (1_000_000 if full else 100_000), (100_000 if full else 10_000)
    print(
        f"dashboard: {patients} patients, {answers} answers, {alerts} alerts ({OPEN_ALERTS} open)", flush=True
    )
    with bench_database("dash") as pg_url, redis_db() as redis_url:
        started = time.monotonic()
        seed(pg_url, patients, answers, alerts)
        seeded = time.monotonic() - started
        app = create_app(Settings(**service_env(pg_url, redis_url, "http://127.0.0.1:9", 5000)))  # type: ignore[arg-type]
        rt = runtime_of(app)
        password = "bench password 123"  # noqa: S105  (a throw-away account in a throw-away database)
        with rt.unit_of_work() as session:
            nurse = create_staff(
                session,
                email="dash@example.org",
                name="Nurse",
                role=StaffRole.NURSE,
                phone=None,
                password=password,
            )
            session.add(CareTeamMember(care_team_id=1, staff_id=nurse.id))
        quiet_logs()
        client = app.test_client()
        # Signed in through the real form, CSRF token included.
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        form = {
            "email": "dash@example.org",
            "password": password,
            "csrf_token": token.group(1) if token else "",
        }
        resp = client.post("/login", data=form)
        if resp.status_code not in (302, 303):
            raise BenchError(f"sign-in failed: {resp.status_code}")
        timed_get(client, "/", 3)  # warm-up: templates compiled, plans cached
        queue = timed_get(client, "/", requests)
        alert_times: list[float] = []
        for alert_id in range(1, requests + 1):  # a different open alert each time
            alert_times += timed_get(client, f"/alerts/{alert_id}", 1)
        rt.dispose()
    rows = [
        ["GET / (queue)", ms(percentile(queue, 50)), ms(percentile(queue, 95)), ms(max(queue))],
        [
            "GET /alerts/<id>",
            ms(percentile(alert_times, 50)),
            ms(percentile(alert_times, 95)),
            ms(max(alert_times)),
        ],
    ]
    table(
        f"Dashboard (server-side, {requests} requests each; seeded in {seeded:.0f} s)",
        ["", "p50", "p95", "max"],
        rows,
    )
    return {
        "queue_p50": percentile(queue, 50),
        "queue_p95": percentile(queue, 95),
        "alert_p50": percentile(alert_times, 50),
        "alert_p95": percentile(alert_times, 95),
        "seed_s": seeded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="1,000,000 answers, 100,000 alerts")
    parser.add_argument("--requests", type=int, default=30, help="requests per page")
    args = parser.parse_args()
    print_machine()
    run(args.full, args.requests)


if __name__ == "__main__":
    main()
