"""Ingest: signed inbound webhooks per second and latency under gunicorn on PostgreSQL, against a bare
Flask handler under the same gunicorn settings (the stack's ceiling on this machine).

No Celery worker runs: this measures the webhook (verify, one INSERT committed, 200; the web makes no
broker call, workers poll for stored replies).
Load comes from `wrk` (Debian: apt-get install wrk) cycling through precomputed signed requests, each with
its own MessageSid, so the load generator spends no CPU on HMAC. After each run every MessageSid sent is
checked against the rows stored: all answers 200, nothing lost, nothing extra.

Variants: `stack` (production: `pro_service.wsgi:app`) and `bare`. Besides throughput it reports CPU per
request of the web processes and of PostgreSQL's backends: on this 2-core machine the web, PostgreSQL and
wrk share the cores, so the web-only CPU ratio is the one that sizes a web tier whose database runs
elsewhere. `python -m benchmarks.bench_ingest [--full]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks.harness import (
    LOG_DIR,
    BenchError,
    CpuMeter,
    Processes,
    Signer,
    bench_database,
    database_name,
    free_port,
    in_group,
    postgres_backends,
    postgres_on_its_own_core,
    print_machine,
    psycopg_url,
    redis_db,
    redis_server,
    seed_team_and_patients,
    service_env,
    sms_params,
    start_gunicorn,
    table,
)

LUA = Path(__file__).with_name("ingest.lua")
REPLIES = ("yes", "no", "No thanks", "7", "0", "1 3", "YES!", "si", "about a 6 today", "none", "2,4")
# Production's defaults (config/gunicorn.conf.py), for both variants.
WORKERS, THREADS = len(os.sched_getaffinity(0)) + 1, 16
# Upper bound on requests per second this machine could take, to precompute enough unique bodies.
MAX_RPS = 5000


@dataclass(frozen=True)
class WrkRun:
    variant: str
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    completed: int
    sent: int
    non200: int
    errors: int
    web_cpu_ms: float = 0.0  # CPU per request: gunicorn (master and workers)
    pg_cpu_ms: float = 0.0  # CPU per request: the PostgreSQL backends of the benchmark's database
    redis_cpu_ms: float = 0.0
    wrk_cpu_ms: float = 0.0
    others_cores: float = 0.0  # cores other processes on the machine used meanwhile (shared machine)
    rows: int | None = None  # stack variants: rows stored for this run's MessageSids
    lost: int | None = None
    extra: int | None = None
    round: int = 1  # with --rounds: which alternation of the variants this run belongs to


def seed_patients(pg_url: str, count: int) -> list[str]:
    """One care team and `count` enrolled patients (COPY); returns their phones."""
    return seed_team_and_patients(pg_url, "Bench", count, mrn_prefix="B")


def write_bodies(path: Path, signer: Signer, count: int, tag: int, phones: list[str]) -> list[str]:
    """`count` signed requests, one per line; returns their MessageSids in line order."""
    rng = random.Random(tag)
    sids = []
    with path.open("w") as out:
        for i in range(count):
            sid = f"SM{tag:08x}{i:024x}"
            params = sms_params(sid, phones[i % len(phones)], rng.choice(REPLIES))
            out.write(f"{signer.sign('/twilio/sms', params)}\t{urlencode(params)}\n")
            sids.append(sid)
    return sids


def run_wrk(port: int, bodies: Path, concurrency: int, duration: float) -> dict[str, Any]:
    threads = min(concurrency, 2)  # wrk is C and light; two threads are enough and leave the cores alone
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration:.0f}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        str(bodies),
        str(threads),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    match = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["threads"] = threads
    return result


def sent_sids(sids: list[str], result: dict[str, Any]) -> set[str]:
    """The MessageSids wrk sent: thread k sent lines k, k+T, k+2T, … (see ingest.lua)."""
    threads = result["threads"]
    out: set[str] = set()
    for k, sent in enumerate(result["sent_by_thread"]):
        # wrk calls thread 0's request() once at start-up to check the script and never sends it.
        first = 1 if k == 0 else 0
        out.update(sids[k + j * threads] for j in range(first, sent) if k + j * threads < len(sids))
    return out


def stored_sids(pg_url: str, tag: int) -> set[str]:
    import psycopg

    with psycopg.connect(psycopg_url(pg_url)) as conn:
        rows = conn.execute("SELECT twilio_sid FROM messages WHERE twilio_sid LIKE %s", (f"SM{tag:08x}%",))
        return {r[0] for r in rows}


def measure_variant(
    variant: str,
    app: str,
    env: dict[str, str],
    pg_url: str,
    phones: list[str],
    concurrencies: list[int],
    duration: float,
    workers: int,
    threads: int,
    tags: Iterator[int],
    round_: int = 1,
) -> list[WrkRun]:
    port = int(env["PUBLIC_BASE_URL"].rsplit(":", 1)[1])
    signer = Signer(env["PUBLIC_BASE_URL"])
    runs: list[WrkRun] = []
    with Processes(f"ingest-{variant}") as procs:
        web = start_gunicorn(procs, f"gunicorn-{variant}", app, env, port, workers, threads)
        meter = CpuMeter(
            web=in_group(web.popen.pid),
            pg=postgres_backends(database_name(pg_url)),
            redis=redis_server,
            wrk=lambda _pid, _pgrp, cmd: cmd.startswith("wrk "),
        )
        body_dir = LOG_DIR / "ingest-bodies"
        body_dir.mkdir(parents=True, exist_ok=True)
        # Warm-up (connections, imports, plan caches); its rows are not counted.
        warm = body_dir / f"{variant}-warm.txt"
        write_bodies(warm, signer, 4000, next(tags), phones)
        run_wrk(port, warm, 8, 2)
        for concurrency in concurrencies:
            tag = next(tags)
            bodies = body_dir / f"{variant}-c{concurrency}.txt"
            sids = write_bodies(bodies, signer, int(MAX_RPS * duration), tag, phones)
            before = meter.snapshot()
            result = run_wrk(port, bodies, concurrency, duration)
            cpu = CpuMeter.delta(before, meter.snapshot())
            per_request = 1000 / max(result["requests"], 1)
            errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
            run = WrkRun(
                variant=variant,
                concurrency=concurrency,
                rps=result["requests"] / (result["duration_us"] / 1e6),
                p50_ms=result["p50_us"] / 1000,
                p90_ms=result["p90_us"] / 1000,
                p99_ms=result["p99_us"] / 1000,
                max_ms=result["max_us"] / 1000,
                completed=result["requests"],
                sent=sum(result["sent_by_thread"]) - 1,  # less wrk's start-up check (see sent_sids)
                non200=result["non200"],
                errors=errors,
                web_cpu_ms=cpu["web"] * per_request,
                pg_cpu_ms=cpu["pg"] * per_request,
                redis_cpu_ms=cpu["redis"] * per_request,
                wrk_cpu_ms=cpu["wrk"] * per_request,
                others_cores=cpu["others"] / cpu["elapsed"],
                round=round_,
            )
            if variant != "bare":
                if result["wrapped"]:
                    raise BenchError(f"{variant} c={concurrency}: ran out of unique bodies; raise MAX_RPS")
                time.sleep(1.0)  # requests in flight when wrk stopped still commit
                expected, stored = sent_sids(sids, result), stored_sids(pg_url, tag)
                run = WrkRun(
                    **{
                        **run.__dict__,
                        "rows": len(stored),
                        "lost": len(expected - stored),
                        "extra": len(stored - expected),
                    }
                )
            runs.append(run)
            print(
                f"  {variant:<9} c={concurrency:<3} {run.rps:8.0f} req/s  p50 {run.p50_ms:6.1f} ms  "
                f"p99 {run.p99_ms:6.1f} ms  CPU/req web {run.web_cpu_ms:.2f} pg {run.pg_cpu_ms:.2f} "
                f"redis {run.redis_cpu_ms:.2f} ms, others {run.others_cores:.2f} cores  "
                f"non-200 {run.non200}  errors {run.errors}"
                + (f"  rows {run.rows}/{run.sent} sent, lost {run.lost}" if run.rows is not None else ""),
                flush=True,
            )
            bodies.unlink(missing_ok=True)
        warm.unlink(missing_ok=True)
    return runs


def _median_run(runs: list[WrkRun]) -> WrkRun:
    """Of the same variant and concurrency over rounds: the run with the median throughput."""
    return sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2]


def _server_cpu(runs: list[WrkRun]) -> float:
    if not runs:
        return 0.0
    return sum(r.web_cpu_ms + r.pg_cpu_ms + r.redis_cpu_ms for r in runs) / len(runs)


def run(
    full: bool = False,
    concurrencies: list[int] | None = None,
    duration: float | None = None,
    patients: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    variants: tuple[str, ...] = ("bare", "stack"),
    pin_postgres: bool = False,
    rounds: int = 3,
) -> dict[str, Any]:
    with postgres_on_its_own_core() if pin_postgres else contextlib.nullcontext("") as split:
        if split:
            print(f"ingest: {split}", flush=True)
        return _run(full, concurrencies, duration, patients, workers, threads, variants, rounds)


def _run(
    full: bool,
    concurrencies: list[int] | None,
    duration: float | None,
    patients: int | None,
    workers: int | None,
    threads: int | None,
    variants: tuple[str, ...],
    rounds: int,
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (Debian: apt-get install -y wrk)")
    workers, threads = workers or WORKERS, threads or THREADS
    concurrencies = concurrencies or [1, 8, 32, 64]
    duration = duration or (30.0 if full else 5.0)
    patients = patients or (10_000 if full else 1_000)
    print(
        f"ingest: gunicorn {workers} workers x {threads} threads, {patients} patients, "
        f"{duration:.0f} s per run, wrk concurrency {concurrencies}"
        + (f", {rounds} rounds alternating the variants" if rounds > 1 else ""),
        flush=True,
    )
    tags = iter(range(1, 10_000))
    runs: list[WrkRun] = []
    with bench_database("ingest") as pg_url, redis_db() as redis_url:
        phones = seed_patients(pg_url, patients)
        env = service_env(pg_url, redis_url, "http://127.0.0.1:9", free_port())
        apps = {"bare": "benchmarks.bare_app:app", "stack": "pro_service.wsgi:app"}
        # Rounds alternate the variants (bare, stack, bare, stack, ...): load from other processes on a
        # shared machine drifts over minutes, and alternating spreads it over both.
        for round_ in range(1, rounds + 1):
            for variant in variants:
                runs += measure_variant(
                    variant,
                    apps[variant],
                    env,
                    pg_url,
                    phones,
                    concurrencies,
                    duration,
                    workers,
                    threads,
                    tags,
                    round_,
                )

    by = {
        (r.variant, r.concurrency): _median_run(
            [x for x in runs if (x.variant, x.concurrency) == (r.variant, r.concurrency)]
        )
        for r in runs
    }
    rows = []
    for c in concurrencies:
        stack, bare = by.get(("stack", c)), by.get(("bare", c))
        rows.append(
            [
                c,
                f"{stack.rps:.0f}" if stack else "-",
                f"{stack.p50_ms:.1f} / {stack.p99_ms:.1f}" if stack else "-",
                f"{stack.web_cpu_ms:.2f} / {stack.pg_cpu_ms:.2f}" if stack else "-",
                f"{bare.rps:.0f}" if bare else "-",
                f"{bare.p50_ms:.1f} / {bare.p99_ms:.1f}" if bare else "-",
                f"{bare.web_cpu_ms:.2f}" if bare else "-",
                f"{stack.rps / bare.rps:.2f}" if stack and bare else "-",
            ]
        )
    table(
        "Ingest: signed POST /twilio/sms (req/s; latency p50 / p99 ms; CPU ms per request)"
        + (f"; each figure the run with the median req/s of {rounds} rounds" if rounds > 1 else ""),
        [
            "conc",
            "stack",
            "stack p50/p99",
            "stack CPU web/pg",
            "bare",
            "bare p50/p99",
            "bare CPU",
            "stack/bare",
        ],
        rows,
    )
    checked = [r for r in runs if r.rows is not None]
    ok = all(
        r.non200 == 0 and r.errors == 0 and r.lost == 0 and r.extra == 0 for r in runs if r.rows is not None
    )
    print(
        f"\n  checks: {sum(r.completed for r in checked)} stack requests answered, "
        f"{sum(r.non200 for r in runs)} non-200, {sum(r.errors for r in runs)} socket errors, "
        f"{sum(r.lost or 0 for r in checked)} MessageSids sent but not stored, "
        f"{sum(r.extra or 0 for r in checked)} stored but not sent -> {'OK' if ok else 'FAILED'}"
    )
    ratios = []
    for round_ in range(1, rounds + 1):
        best_stack = max((r.rps for r in runs if r.variant == "stack" and r.round == round_), default=0.0)
        best_bare = max((r.rps for r in runs if r.variant == "bare" and r.round == round_), default=0.0)
        if best_bare:
            ratios.append(best_stack / best_bare)
            label = f"round {round_}: " if rounds > 1 else ""
            print(
                f"  {label}peak stack {best_stack:.0f} req/s vs peak bare {best_bare:.0f} req/s: "
                f"ratio {best_stack / best_bare:.2f} (target >= 0.5)"
            )
    peak_ratio = statistics.median(ratios) if ratios else None
    if len(ratios) > 1:
        print(f"  median peak ratio over {len(ratios)} rounds: {peak_ratio:.2f} (target >= 0.5)")
    # Throughput moves with other load on a shared machine; server CPU per request does not.
    cpu = {v: _server_cpu([r for r in runs if r.variant == v]) for v in ("stack", "bare")}
    print(
        "  server CPU per request (web + PostgreSQL + Redis), mean over concurrencies: "
        + ", ".join(f"{v} {c:.2f} ms" for v, c in cpu.items() if c)
    )
    if cpu["stack"] and cpu["bare"]:
        print(f"  CPU-based ratio bare/stack: {cpu['bare'] / cpu['stack']:.2f}")
        web = {v: sum(r.web_cpu_ms for r in runs if r.variant == v) for v in ("stack", "bare")}
        print(f"  web-only CPU ratio bare/stack (database on its own host): {web['bare'] / web['stack']:.2f}")
    if not ok:
        raise BenchError("ingest checks failed: see the table above")
    return {
        "runs": [r.__dict__ for r in runs],
        "peak_ratio": peak_ratio,
        "round_ratios": ratios,
        "server_cpu_ms": cpu,
        "settings": {"workers": workers, "threads": threads, "patients": patients, "duration": duration},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="30 s per run, 10,000 patients")
    parser.add_argument("--concurrency", type=int, action="append", help="repeatable; default 1 8 32 64")
    parser.add_argument("--duration", type=float, help="seconds per run")
    parser.add_argument("--workers", type=int, default=WORKERS, help="GUNICORN_WORKERS")
    parser.add_argument("--threads", type=int, default=THREADS, help="GUNICORN_THREADS")
    parser.add_argument("--variant", action="append", choices=["bare", "stack"])
    parser.add_argument(
        "--pin-postgres",
        action="store_true",
        help="PostgreSQL on its own core, web and wrk on the others (the database on its own host)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate the variants N times; report the median ratio"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print_machine()
    run(
        args.full,
        args.concurrency,
        args.duration,
        workers=args.workers,
        threads=args.threads,
        variants=tuple(args.variant or ("bare", "stack")),
        pin_postgres=args.pin_postgres,
        rounds=args.rounds,
    )


if __name__ == "__main__":
    main()
