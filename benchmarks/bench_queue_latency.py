"""Reply to queue: from a patient's signed reply (an emergency in their own words, posted to /twilio/sms as
Twilio would) to the alert's row appearing on a triage queue open in a real browser (Playwright driving
Debian's Chromium), signed in as a nurse. Then what the queue's 1-second poll costs the server, answered
204 (nothing changed) and 200 (rows rendered), on a small queue and on bench_dashboard's 10,000 alerts
(2,000 open).

Real processes: gunicorn web (config/gunicorn.conf.py, gthread), a Celery worker, Redis, the real `twilio`
client calling the local Twilio-compatible server. The browser stamps each row's arrival with Date.now()
(a MutationObserver), compared with the wall clock just before the POST: no polling from here adds to it.
`python -m benchmarks.bench_queue_latency [--runs 20] [--full]`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from benchmarks.bench_reply_to_page import WORDS
from benchmarks.bench_reply_to_page import seed as seed_patients
from benchmarks.harness import (
    BenchError,
    Processes,
    Signer,
    bench_database,
    free_port,
    ms,
    percentile,
    print_machine,
    redis_db,
    runtime_for,
    service_env,
    sms_params,
    start_celery_worker,
    start_gunicorn,
    start_twilio_recorder,
    table,
    wait_for,
)

CHROMIUM = Path(os.environ.get("PRO_CHROMIUM", "/usr/bin/chromium"))
NURSE, PASSWORD = "oncall@example.org", "bench password 123"  # bench_reply_to_page's seed
TARGET_S = 2.0
# Stamps the arrival of each alert row (by the MRN it shows) on the browser's wall clock.
OBSERVE = """() => {
  window.__arrived = {};
  const rows = document.getElementById('queue-rows');
  new MutationObserver(() => {
    rows.querySelectorAll('tr[data-alert-id] .mrn').forEach((el) => {
      const mrn = el.textContent.replace('MRN ', '').trim();
      if (!(mrn in window.__arrived)) { window.__arrived[mrn] = Date.now(); }
    });
  }).observe(rows, { childList: true, subtree: true });
}"""


def _opened_at(rt: Any, mrn: str) -> float | None:
    with rt.engine.connect() as conn:
        opened = conn.execute(
            text(
                "SELECT min(a.opened_at) FROM alerts a JOIN patients p ON p.id = a.patient_id "
                "WHERE p.mrn = :m"
            ),
            {"m": mrn},
        ).scalar()
    return opened.timestamp() if opened is not None else None


def _sign_in(page: Any) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(NURSE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#queue-table")


def measure_latency(
    base_url: str, signer: Signer, rt: Any, phones: list[str], runs: int
) -> dict[str, list[float]]:
    """`runs` replies, each from a different patient, at random moments against the poll's phase."""
    from playwright.sync_api import sync_playwright

    found: dict[str, list[float]] = {"reply -> row": [], "reply -> alert opened": [], "opened -> row": []}
    http = requests.Session()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(15_000)
            _sign_in(page)
            page.evaluate(OBSERVE)
            for i in range(runs):
                time.sleep(random.uniform(0.2, 1.2))  # jitter: replies land anywhere in the poll's cycle
                mrn = f"P{i:07d}"
                params = sms_params("SM" + secrets.token_hex(16), phones[i], WORDS[i % len(WORDS)])
                sent = time.time()
                response = http.post(
                    f"{base_url}/twilio/sms",
                    data=params,
                    headers={"X-Twilio-Signature": signer.sign("/twilio/sms", params)},
                    timeout=10,
                )
                if response.status_code != 200:
                    raise BenchError(f"the webhook answered {response.status_code}")
                page.wait_for_function(f"() => '{mrn}' in window.__arrived", timeout=15_000)
                arrived = float(page.evaluate(f"() => window.__arrived['{mrn}']")) / 1000
                opened = wait_for(lambda m=mrn: _opened_at(rt, m), timeout=5, message=f"{mrn}'s alert")
                found["reply -> row"].append(arrived - sent)
                found["reply -> alert opened"].append(opened - sent)
                found["opened -> row"].append(arrived - opened)
            # Polls while nothing changes: every one a 204 (checked from the page's own requests).
            statuses: list[int] = []
            page.on("response", lambda r: statuses.append(r.status) if "/queue/poll" in r.url else None)
            page.wait_for_timeout(3_000)
            found["idle polls answered 204 (share)"] = [statuses.count(204) / max(1, len(statuses))]
        finally:
            browser.close()
    return found


def _signed_in_client(app: Any, email: str, password: str) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    resp = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1) if token else ""}
    )
    if resp.status_code not in (302, 303):
        raise BenchError(f"sign-in failed: {resp.status_code}")
    return client


def poll_cost(app: Any, email: str, password: str, requests_: int) -> dict[str, list[float]]:
    """Server time of the poll (Flask test client, no network): 204 with the current version, 200 without."""
    client = _signed_in_client(app, email, password)
    out: dict[str, list[float]] = {"poll 204 (unchanged)": [], "poll 200 (rows rendered)": [], "bytes": []}
    version = client.get("/queue/poll").json["version"]
    for _ in range(3):  # warm-up: templates compiled, plans cached
        client.get("/queue/poll")
    for _ in range(requests_):
        started = time.perf_counter()
        resp = client.get(f"/queue/poll?v={version}")
        out["poll 204 (unchanged)"].append(time.perf_counter() - started)
        if resp.status_code != 204:
            version = client.get("/queue/poll").json["version"]  # the minute turned
        started = time.perf_counter()
        full = client.get("/queue/poll")
        out["poll 200 (rows rendered)"].append(time.perf_counter() - started)
        out["bytes"].append(len(full.get_data()))
    return out


def poll_cost_at_scale(requests_: int) -> dict[str, list[float]]:
    """bench_dashboard's data set (10,000 patients, 10,000 alerts, 2,000 open)."""
    from benchmarks.bench_dashboard import seed as seed_dashboard
    from config.settings import Settings
    from pro_service import create_app, runtime_of
    from pro_service.models import StaffRole
    from pro_service.services.staff import create_staff

    with bench_database("qscale") as pg_url, redis_db() as redis_url:
        seed_dashboard(pg_url, 10_000, 10_000, 10_000)
        app = create_app(Settings(**service_env(pg_url, redis_url, "http://127.0.0.1:9", 5000)))  # type: ignore[arg-type]
        rt = runtime_of(app)
        with rt.unit_of_work() as session:
            create_staff(
                session,
                email="scale@example.org",
                name="Nurse",
                role=StaffRole.NURSE,
                phone=None,
                password=PASSWORD,
            )
        try:
            return poll_cost(app, "scale@example.org", PASSWORD, requests_)
        finally:
            rt.dispose()


def run(full: bool = False, runs: int | None = None) -> dict[str, Any]:
    runs = runs or (50 if full else 20)
    print(
        f"reply -> queue: {runs} emergencies in patients' own words, one queue open in Chromium", flush=True
    )
    if not CHROMIUM.exists():
        raise BenchError(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PRO_CHROMIUM)")
    with bench_database("queue") as pg_url, redis_db() as redis_url, Processes("queue") as procs:
        twilio_url = start_twilio_recorder(procs, free_port(), callbacks=False)
        web_port = free_port()
        env = service_env(pg_url, redis_url, twilio_url, web_port)
        rt = runtime_for(env)
        phones, _, _ = seed_patients(rt, pg_url, runs, 1, words=True)
        start_gunicorn(procs, "gunicorn", "pro_service.wsgi:app", env, web_port, 2, 4)
        start_celery_worker(procs, "worker", env, 2)
        base_url = f"http://127.0.0.1:{web_port}"
        latency = measure_latency(base_url, Signer(env["PUBLIC_BASE_URL"]), rt, phones, runs)
        from config.settings import Settings
        from pro_service import create_app, runtime_of

        app = create_app(Settings(**env))  # type: ignore[arg-type]
        small = poll_cost(app, NURSE, PASSWORD, 30)
        runtime_of(app).dispose()
        rt.dispose()
    scale = poll_cost_at_scale(30)

    table(
        f"Reply -> row on the open queue ({runs} replies; the queue polls every second)",
        ["", "p50", "p95", "max"],
        [
            [name, *(ms(percentile(values, p)) for p in (50, 95, 100))]
            for name, values in latency.items()
            if "share" not in name
        ],
    )
    share = latency["idle polls answered 204 (share)"][0]
    print(f"  idle polls answered 204: {share:.0%}")
    rows = []
    for label, found in ((f"{runs} open alerts", small), ("10,000 alerts, 2,000 open", scale)):
        for name in ("poll 204 (unchanged)", "poll 200 (rows rendered)"):
            values = found[name]
            rows.append([f"{name}, {label}", ms(percentile(values, 50)), ms(percentile(values, 95))])
        rows.append([f"  200 body, {label}", f"{percentile(found['bytes'], 50) / 1024:.1f} KiB", ""])
    table("Poll cost (server side, Flask test client, 30 requests each)", ["", "p50", "p95"], rows)
    p95 = percentile(latency["reply -> row"], 95)
    print(f"  reply -> row p95 {p95:.2f} s (target < {TARGET_S:g} s): {'OK' if p95 < TARGET_S else 'MISSED'}")
    return {
        "reply_to_row_p50": percentile(latency["reply -> row"], 50),
        "reply_to_row_p95": p95,
        "reply_to_row_max": max(latency["reply -> row"]),
        "opened_to_row_p50": percentile(latency["opened -> row"], 50),
        "poll_204_p50": percentile(small["poll 204 (unchanged)"], 50),
        "poll_200_p50": percentile(small["poll 200 (rows rendered)"], 50),
        "poll_204_p50_at_scale": percentile(scale["poll 204 (unchanged)"], 50),
        "poll_200_p50_at_scale": percentile(scale["poll 200 (rows rendered)"], 50),
        "idle_polls_204_share": share,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="50 replies")
    parser.add_argument("--runs", type=int, help="replies (default 20)")
    args = parser.parse_args()
    print_machine()
    run(args.full, args.runs)


if __name__ == "__main__":
    main()
