"""Fan-out: N patients whose daily check-in is due now. Beat's tick (`sweeps.tick`: materialise_due, then the
check-in timers that send first questions) runs back to back in this process; several Celery worker processes
send through the real `twilio` client to the local Twilio-compatible server (own process, no status
callbacks), capped at SEND_RATE_PER_SECOND by the shared Redis limiter.

Reports: time to materialise, ticks needed to queue every first question (and what that means with beat's
real interval), time until every first question is at the Twilio server, and how exactly the cap holds
(most messages in any 1-second window, mean rate). `python -m benchmarks.bench_fanout [--full]`.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from benchmarks.harness import (
    BenchError,
    CpuMeter,
    Processes,
    bench_database,
    copy_rows,
    database_name,
    free_port,
    http_json,
    postgres_backends,
    print_machine,
    redis_db,
    redis_server,
    runtime_for,
    seed_team_and_patients,
    service_env,
    start_celery_worker,
    start_twilio_recorder,
    table,
    wait_for,
)

BEAT_TICK_SECONDS = 15.0  # the production default, to translate "ticks needed" into time


def midday_zone(now: datetime) -> tuple[str, int]:
    """A fixed-offset zone where it is about 13:00 now (outside quiet hours), and the local hour."""
    offset = ((13 - now.hour + 12) % 24) - 12  # -12..11 hours from UTC
    zone = "Etc/UTC" if offset == 0 else (f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}")
    return zone, (now + timedelta(hours=offset)).hour


def seed(pg_url: str, count: int, zone: str, local_hour: int) -> None:
    """`count` patients, each with a daily schedule (started a year ago) due at the top of this hour."""
    now = datetime.now(UTC)
    seed_team_and_patients(pg_url, "Fan-out", count, mrn_prefix="F", zone=zone)
    start = date.today() - timedelta(days=365)
    rule = f"FREQ=DAILY;BYHOUR={local_hour};BYMINUTE=0"
    copy_rows(
        pg_url,
        "schedules",
        ["patient_id", "instrument_code", "rrule", "start_date", "active", "created_at", "next_due_at"],
        ((i + 1, "sre-weekly", rule, start, True, now, None) for i in range(count)),  # NULL: look next tick
    )


@contextmanager
def timed(module: Any, name: str, into: dict[str, list[float]]) -> Iterator[None]:
    """Time every call of module.name (sweeps.tick calls it through the module attribute)."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.setdefault(name, []).append(time.perf_counter() - started)

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most events in any half-open window of `window` seconds (two pointers over sorted times)."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run(
    full: bool = False,
    count: int | None = None,
    rate: float = 50.0,
    workers: int = 2,
    concurrency: int = 4,
) -> dict[str, Any]:
    from pro_service.models import CheckIn, CheckInStatus
    from pro_service.services import check_ins, dispatch, sweeps

    # 100,000 is the size this is for (`--full`; about 30 min at 60/s on 2 cores, most of it the capped
    # sending); the default stays at 2,000 to keep `make bench` short (see docs/benchmarks.md).
    count = count or (100_000 if full else 2_000)
    now = datetime.now(UTC)
    zone, local_hour = midday_zone(now)
    print(
        f"fan-out: {count} check-ins due now, SEND_RATE_PER_SECOND={rate:g}, "
        f"{workers} workers x --concurrency={concurrency}",
        flush=True,
    )
    timings: dict[str, list[float]] = {}
    ticks: list[dict[str, Any]] = []
    with bench_database("fanout") as pg_url, redis_db() as redis_url, Processes("fanout") as procs:
        started = time.monotonic()
        seed(pg_url, count, zone, local_hour)
        seeded = time.monotonic() - started
        twilio_url = start_twilio_recorder(procs, free_port(), callbacks=False)
        env = service_env(
            pg_url,
            redis_url,
            twilio_url,
            free_port(),
            SEND_RATE_PER_SECOND=f"{rate:g}",
            BEAT_TICK_SECONDS=f"{BEAT_TICK_SECONDS:g}",  # each tick's time budget as in production
        )
        rt = runtime_for(env)
        groups: set[int] = set()  # the workers' process groups, filled in when they start
        meter = CpuMeter(
            workers=lambda _pid, pgrp, _cmd: pgrp in groups,
            pg=postgres_backends(database_name(pg_url)),
            redis=redis_server,
            twilio=lambda _pid, _pgrp, cmd: "benchmarks.twilio_recorder" in cmd,
        )
        t0 = time.time()
        deadline = time.monotonic() + max(600.0, count / 50)

        def pending() -> int:
            with rt.sessions() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(CheckIn)
                        .where(CheckIn.status == CheckInStatus.PENDING)
                    )
                    or 0
                )

        # Phase 1, no worker running: beat ticks back to back until every first question is queued
        # (bounded in count and time), so the tick's own cost is measured without competition.
        with timed(dispatch, "materialise_due", timings), timed(check_ins, "run_deadlines", timings):
            for _ in range(count // 100 + 10):
                tick_started = time.perf_counter()
                report = sweeps.tick(rt, rt.now())
                ticks.append(
                    {
                        "seconds": time.perf_counter() - tick_started,
                        "materialised": report.materialised,
                        "deadlines": report.deadlines,
                        "republished": report.republished.get("outbound", 0),
                    }
                )
                if report.deadlines == 0 and pending() == 0:
                    break
                if time.monotonic() > deadline:
                    raise BenchError("ticks did not queue every first question in time")
        queued_at = time.time()
        expected_seconds = count / rate
        # Phase 2: the backlog of send tasks drains through the workers at the shared cap.
        worker_procs = [start_celery_worker(procs, f"worker{i}", env, concurrency) for i in range(workers)]
        groups.update(p.popen.pid for p in worker_procs)
        before = meter.snapshot()
        drain_started = time.time()

        def arrived() -> int:
            return int(http_json(f"{twilio_url}/_bench/count")["count"])

        wait_for(
            lambda: arrived() >= count,
            timeout=expected_seconds * 2 + 120,
            interval=0.5,
            message=f"{count} first questions at the Twilio server",
        )
        time.sleep(1.0)  # anything sent twice would arrive now
        cpu = CpuMeter.delta(before, meter.snapshot())
        arrivals = http_json(f"{twilio_url}/_bench/arrivals", timeout=60)
        rt.dispose()

    times = sorted(a["at"] for a in arrivals)
    per_number = Counter(a["to"] for a in arrivals)
    duplicates = sum(n - 1 for n in per_number.values() if n > 1)
    span = times[-1] - times[0]
    mean_rate = (len(times) - 1) / span if span > 0 else float("nan")
    buckets = Counter(int(t - times[0]) for t in times)
    full_seconds = [buckets[s] for s in range(1, int(span))]  # whole seconds, first and last left out
    materialise = timings.get("materialise_due", [0.0])  # one call per tick
    working = [(m, t["materialised"]) for m, t in zip(materialise, ticks, strict=False) if t["materialised"]]
    idle = [m for m, t in zip(materialise, ticks, strict=False) if not t["materialised"]]
    made = sum(n for _, n in working)
    spent = sum(m for m, _ in working)
    longest = max((m for m, _ in working), default=0.0)
    with_beat = sum(max(t["seconds"], BEAT_TICK_SECONDS) for t in ticks[:-1])
    rows = [
        ["seed (COPY patients + schedules)", f"{seeded:.1f} s"],
        [
            "materialise_due, ticks that created check-ins",
            f"{len(working)} ticks, {made} check-ins in {spent:.1f} s "
            f"({spent / max(made, 1) * 1000:.2f} ms each), longest {longest:.1f} s",
        ],
        ["materialise_due, nothing new", f"{sum(idle) / max(len(idle), 1) * 1000:.1f} ms per tick"],
        [
            "first questions queued (run_deadlines)",
            f"{sum(t['deadlines'] for t in ticks)} in {sum(timings.get('run_deadlines', [0.0])):.1f} s",
        ],
        [
            "ticks to queue every first question",
            f"{len(ticks)} ({sum(t['seconds'] for t in ticks):.1f} s back to back, longest tick "
            f"{max(t['seconds'] for t in ticks):.1f} s)",
        ],
        [
            f"  the same with beat every {BEAT_TICK_SECONDS:g} s",
            f"~{with_beat:.0f} s until the last is queued",
        ],
        ["outbound re-published by the sweep", str(sum(t["republished"] for t in ticks))],
        ["first tick start -> all queued (no worker)", f"{queued_at - t0:.1f} s"],
        [
            "workers started -> last question at Twilio",
            f"{times[-1] - drain_started:.1f} s (cap alone: {expected_seconds:.1f} s)",
        ],
        ["messages at Twilio / duplicates", f"{len(times)} / {duplicates}"],
        ["mean send rate", f"{mean_rate:.1f}/s (cap {rate:g}/s)"],
        ["most in any 1-s window", f"{max_in_window(times)} (cap {rate:g})"],
        ["whole seconds: min / max", f"{min(full_seconds, default=0)} / {max(full_seconds, default=0)}"],
    ]
    table("Fan-out", ["", ""], rows)
    elapsed = cpu["elapsed"]
    print(
        "  CPU while draining (cores): "
        + ", ".join(f"{k} {cpu[k] / elapsed:.2f}" for k in ("workers", "pg", "redis", "twilio", "others"))
    )
    if len(times) != count or duplicates:
        raise BenchError(f"{len(times)} messages for {count} check-ins, {duplicates} duplicates")
    return {
        "count": count,
        "rate_cap": rate,
        "seed_s": seeded,
        "materialise_ticks": len(working),
        "materialise_s": spent,
        "materialise_idle_s": sum(idle) / max(len(idle), 1),
        "run_deadlines_s": sum(timings.get("run_deadlines", [0.0])),
        "ticks": len(ticks),
        "tick_seconds_total": sum(t["seconds"] for t in ticks),
        "queued_after_s": queued_at - t0,
        "drained_after_s": times[-1] - drain_started,
        "mean_rate": mean_rate,
        "max_1s_window": max_in_window(times),
        "duplicates": duplicates,
        "republished": sum(t["republished"] for t in ticks),
        "cpu_cores": {k: cpu[k] / elapsed for k in ("workers", "pg", "redis", "twilio", "others")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="100,000 check-ins")
    parser.add_argument("--count", type=int, help="check-ins due (default 2,000)")
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="SEND_RATE_PER_SECOND (default below this machine's send capacity, so the cap binds)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="each worker's --concurrency")
    args = parser.parse_args()
    print_machine()
    run(args.full, args.count, args.rate, args.workers, args.concurrency)


if __name__ == "__main__":
    main()
