"""What every benchmark needs: the machine's description, a throw-away PostgreSQL database, a Redis db,
processes started and always stopped (bounded waits), signed webhooks, percentiles and printing.

Everything runs on loopback against servers the benchmark starts itself; every loop and wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from testsupport import redis_dbs, signing, waiting
from testsupport.ports import free_port as free_port  # re-exported: benchmarks import it from here
from testsupport.workers import worker_args

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # gunicorn and celery live next to the interpreter (the venv)
LOG_DIR = ROOT / "var" / "bench"
PG_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379"))
ACCOUNT_SID = "AC" + "0" * 31 + "7"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"  # noqa: S105  (the local Twilio stand-in's)
FROM_NUMBER = "+15005550006"
SECRET_KEY = "bench-secret-key-" + "x" * 16
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class BenchError(RuntimeError):
    """A benchmark could not run or its result failed a check."""


# ------------------------------------------------------------------------------------------ machine
def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    pg = "unreachable"
    with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg = str(row[0]) if row else "unknown"
    rv = "unreachable"
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=3, socket_timeout=3)
        rv = str(client.info("server").get("redis_version", "unknown"))
        client.close()
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": pg,
        "redis": rv,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def print_machine(info: dict[str, str] | None = None) -> dict[str, str]:
    info = info or machine_info()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}; "
        f"Python {info['python']}, PostgreSQL {info['postgresql']}, Redis {info['redis']}; {info['date']}"
    )
    return info


# ------------------------------------------------------------------------------------------ waiting
def wait_for(
    condition: Callable[[], Any], timeout: float, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll until `condition()` is truthy, at most `timeout` seconds; return its value (BenchError if not)."""
    return waiting.wait_for(condition, timeout, interval, message, error=BenchError)


# --------------------------------------------------------------------------------- PostgreSQL, Redis
def psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def bench_database(tag: str) -> Iterator[str]:
    """A fresh database pro_bench_<pid>_<tag>, migrated to head; dropped (FORCE) whatever happens."""
    name = f"pro_bench_{os.getpid()}_{tag}_{secrets.token_hex(2)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise BenchError(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); run `make services`"
        ) from exc
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        from pro_service.migrate import upgrade

        quiet_logs()
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_db() -> Iterator[str]:
    """A Redis db of this benchmark's own, claimed the way test processes claim theirs (never one a test
    run holds), emptied first and given back at the end."""
    try:
        with redis_dbs.claimed(REDIS_BASE, 1) as [url]:
            yield url
    except redis.RedisError as exc:
        raise BenchError(f"Redis is not reachable at {REDIS_BASE} ({exc}); run `make services`") from exc


def copy_rows(pg_url: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Bulk insert with COPY (seeding 100,000 rows takes a second, not minutes)."""
    count = 0
    with psycopg.connect(psycopg_url(pg_url)) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        # Planner statistics: without them the first queries on a freshly seeded table plan badly.
        cur.execute(f"ANALYZE {table}")
    return count


PATIENT_COLUMNS = (
    "mrn",
    "given_name",
    "family_name",
    "phone",
    "timezone",
    "language",
    "care_team_id",
    "status",
    "sms_consent",
    "created_at",
    "updated_at",
)


def seed_team_and_patients(
    pg_url: str, team: str, count: int, *, mrn_prefix: str, zone: str = "UTC", numbered_names: bool = False
) -> list[str]:
    """One care team (id 1) and `count` active, consenting patients with `phone(i)`; returns the phones."""
    now = datetime.now(UTC)
    copy_rows(pg_url, "care_teams", ["name", "timezone", "phone", "created_at"], [(team, "UTC", None, now)])
    phones = [phone(i) for i in range(count)]
    copy_rows(
        pg_url,
        "patients",
        PATIENT_COLUMNS,
        (
            (
                f"{mrn_prefix}{i:07d}",
                f"Given{i}" if numbered_names else "Bench",
                f"Family{i}" if numbered_names else "Patient",
                p,
                zone,
                "en",
                1,
                "active",
                True,
                now,
                now,
            )
            for i, p in enumerate(phones)
        ),
    )
    return phones


def scalar(pg_url: str, sql: str, params: Sequence[Any] = ()) -> Any:
    with psycopg.connect(psycopg_url(pg_url)) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]  # a plain str query
        return row[0] if row else None


# ---------------------------------------------------------------------------------------- processes
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: Any

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.popen.returncode}):\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal the process, wait a bounded time, then kill its whole process group (ours alone)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        # Celery/gunicorn children left behind by a crash: the group is ours (start_new_session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log_file.close()


@dataclass
class Processes:
    """Processes started by one benchmark; `close()` stops them all, newest first."""

    tag: str
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{self.tag}-{name}-{os.getpid()}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a stuck one is killed with its children
        )
        proc = Proc(name, popen, log_path, log_file)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        proc.stop(sig)
        self.procs.remove(proc)

    def close(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            with contextlib.suppress(Exception):
                proc.stop(signal.SIGINT if proc.name.startswith("gunicorn") else signal.SIGTERM)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_get(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310  (loopback URL we built)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return None


def http_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310  (loopback URL we built)
        return json.loads(resp.read())


def start_gunicorn(
    procs: Processes, name: str, app: str, env: dict[str, str], port: int, workers: int, threads: int
) -> Proc:
    """`gunicorn -c config/gunicorn.conf.py APP` as production runs it; ready when a request is answered."""
    proc = procs.start(
        name,
        [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", app],
        {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
        },
    )

    def answered() -> bool:
        proc.check_alive()
        return http_get(f"http://127.0.0.1:{port}/bench-ready-probe") is not None

    wait_for(answered, timeout=60, interval=0.2, message=f"{name} to answer")
    # Every worker booted (the probe may be answered by the first one).
    wait_for(
        lambda: proc.log_tail(10**6).count("Booting worker") >= workers,
        timeout=60,
        interval=0.2,
        message=f"{name}'s {workers} workers to boot",
    )
    return proc


def start_celery_worker(
    procs: Processes, name: str, env: dict[str, str], concurrency: int, queues: str | None = None
) -> Proc:
    """`celery -A workers worker --concurrency=N [-Q queues]`, ready when it logs `ready.`"""
    proc = procs.start(
        name,
        [
            str(BIN / "celery"),
            "-A",
            "workers",
            *worker_args(f"{name}-{os.getpid()}", concurrency=concurrency, queues=queues, heartbeat=False),
        ],
        env,
    )

    def ready() -> bool:
        proc.check_alive()
        return "ready." in proc.log_tail(10**6)

    wait_for(ready, timeout=90, interval=0.2, message=f"celery worker {name} to start")
    return proc


def start_twilio_recorder(procs: Processes, port: int, *, callbacks: bool = True) -> str:
    """The local Twilio-compatible server in its own process, recording each message's arrival time."""
    argv = [sys.executable, "-m", "benchmarks.twilio_recorder", "--port", str(port)]
    if not callbacks:
        argv.append("--no-callbacks")
    proc = procs.start("twilio", argv, {})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        proc.check_alive()
        return http_get(url + "/_bench/count") == 200

    wait_for(up, timeout=30, interval=0.1, message="the Twilio-compatible server")
    return url


def service_env(pg_url: str, redis_url: str, twilio_url: str, web_port: int, **extra: str) -> dict[str, str]:
    """The environment of the real processes: the same names an operator sets (as in tests/conftest.py)."""
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": twilio_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "CLINIC_PHONE": "+1 555 0100",
        "BEAT_TICK_SECONDS": "3600",
        "ENROL_RULESET_VERSION": "2",  # the benchmarks' patients answer questionnaire v1
        "MFA_REQUIRED_ROLES": "",  # password sign-in only (the second factor has its own tests)
        **extra,
    }


def runtime_for(env: dict[str, str]) -> Any:
    """A Runtime in this process (no Flask app needed) with the same settings as the processes."""
    from config.settings import Settings
    from pro_service.runtime import Role, build_runtime

    return build_runtime(Settings(**env), Role.CLI)  # type: ignore[arg-type]


def quiet_logs() -> None:
    """The app's JSON logs (configured by create_app) would drown the figures this process prints."""
    logging.getLogger().setLevel(logging.WARNING)


class NoTasks:
    """Stands in for rt.tasks while seeding: nothing is published, so no worker acts on set-up rows."""

    def after_commit(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def publish(self, *_args: Any, **_kwargs: Any) -> bool:
        return True


# -------------------------------------------------------------------------------------- CPU usage
_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> Iterator[tuple[int, int, str, float]]:
    """(pid, process group, command line, CPU seconds used) for every process we can read."""
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        yield pid, int(fields[2]), cmd, (int(fields[11]) + int(fields[12])) / _TICK


@contextlib.contextmanager
def postgres_on_its_own_core() -> Iterator[str]:
    """PostgreSQL's processes on the last core, this process (and so what it starts: gunicorn, wrk, workers)
    on the others, as if the database ran on its own host (the production shape): the web tier then
    competes for its cores with wrk, not with the database. New backends fork from the postmaster and
    inherit its core. Needs the right to set other processes' affinity (root, or PostgreSQL's owner).
    Yields a description of the split; every affinity is restored on the way out."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise BenchError("--pin-postgres needs at least 2 cores")
    database, others = {cores[-1]}, set(cores[:-1])
    postgres = [pid for pid in _pids() if _comm(pid) == "postgres"]
    if not postgres:
        raise BenchError("--pin-postgres: no local PostgreSQL process found")
    before = {pid: os.sched_getaffinity(pid) for pid in postgres}
    ours = os.sched_getaffinity(0)
    try:
        for pid in postgres:
            os.sched_setaffinity(pid, database)
        os.sched_setaffinity(0, others)
        yield f"PostgreSQL on core {cores[-1]}, web and load generator on cores {sorted(others)}"
    except PermissionError as exc:
        raise BenchError(f"--pin-postgres: cannot set PostgreSQL's CPU affinity ({exc})") from exc
    finally:
        os.sched_setaffinity(0, ours)
        for pid, mask in before.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, mask)


def _pids() -> Iterator[int]:
    return (int(entry) for entry in os.listdir("/proc") if entry.isdigit())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _machine_busy() -> float:
    """CPU seconds all cores spent not idle since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


@dataclass
class CpuSnapshot:
    at: float
    busy: float
    groups: dict[str, float]


class CpuMeter:
    """CPU seconds used by named groups of processes between two snapshots, and by everything else.

    On a shared machine throughput swings with other people's load; CPU time per request does not, so
    each benchmark reports both, and how much CPU other processes took meanwhile (`others`).
    """

    def __init__(self, **groups: Callable[[int, int, str], bool]) -> None:
        self.groups = groups

    def snapshot(self) -> CpuSnapshot:
        used = dict.fromkeys(self.groups, 0.0)
        for pid, pgrp, cmd, cpu in _processes():
            for name, match in self.groups.items():
                if match(pid, pgrp, cmd):
                    used[name] += cpu
                    break
        return CpuSnapshot(time.monotonic(), _machine_busy(), used)

    @staticmethod
    def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per group, plus `others` (the rest of the machine) and `elapsed` (wall seconds)."""
        out = {name: after.groups[name] - before.groups.get(name, 0.0) for name in after.groups}
        # Processes that exited meanwhile are missed by the groups, so `others` is an upper bound.
        out["others"] = max(0.0, (after.busy - before.busy) - sum(out.values()))
        out["elapsed"] = after.at - before.at
        return out


def in_group(pgid: int) -> Callable[[int, int, str], bool]:
    return lambda _pid, pgrp, _cmd: pgrp == pgid


def postgres_backends(database: str) -> Callable[[int, int, str], bool]:
    """The PostgreSQL backends serving one database (its name is in their process title)."""
    return lambda _pid, _pgrp, cmd: cmd.startswith("postgres: ") and f" {database} " in cmd


def redis_server(_pid: int, _pgrp: int, cmd: str) -> bool:
    """The Redis server the benchmarks use (not other instances a test run may start)."""
    port = REDIS_BASE.rsplit(":", 1)[-1].split("/")[0]
    return cmd.startswith("redis-server") and f":{port}" in cmd


def database_name(pg_url: str) -> str:
    return pg_url.rsplit("/", 1)[1]


# ----------------------------------------------------------------------------------------- webhooks
class Signer(signing.Signer):
    """The shared signer (testsupport.signing), with the benchmarks' Twilio stand-in's token by default."""

    def __init__(self, public_base: str, token: str = AUTH_TOKEN) -> None:
        super().__init__(public_base, token)


def sms_params(sid: str, from_: str, body: str) -> dict[str, str]:
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": FROM_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }


def phone(i: int) -> str:
    return f"+1555{2000000 + i:07d}"


def nurse_phone(i: int) -> str:
    return f"+1555{9000000 + i:07d}"


# -------------------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain-text table; numbers already formatted by the caller."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
