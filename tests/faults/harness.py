"""The fault-test stack: a PRIVATE PostgreSQL cluster and Redis server that the tests may stop, crash,
freeze and restart (the machine's shared ones are never touched), the local Twilio-compatible server, the
app served on a real port, real Celery worker and beat processes, and the bookkeeping every fault test
reports: replies sent / stored / processed / duplicates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
import requests
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from config.settings import Settings
from dev.twilio_server import TwilioServer
from pro_service.models import (
    Answer,
    CheckIn,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    utcnow,
)
from pro_service.runtime import Runtime
from testsupport.ports import free_port
from testsupport.signing import Signer, inbound_sms
from testsupport.waiting import wait_for
from testsupport.workers import BEAT_READY, WORKER_READY, CeleryProcess, worker_args

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "0" * 31 + "2"
AUTH_TOKEN = "fault-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
INSTRUMENT = "sre-weekly"
# Three replies per patient, and what each leaves behind: "no" new pain, worst pain "0" (the three pain
# follow-ups are then skipped), "no" to the neuro question. No red flag fires, so nothing pages.
SCRIPT: tuple[str, ...] = ("no", "0", "no")
ANSWERED_ITEMS: tuple[str, ...] = ("pain_new", "pain_worst", "neuro")
QUESTIONS_AFTER: dict[int, tuple[str, ...]] = {
    0: ("pain_new",),
    1: ("pain_new", "pain_worst"),
    2: ("pain_new", "pain_worst", "neuro"),
    3: ("pain_new", "pain_worst", "neuro", "bladder_bowel"),
}
SENT_STATES = frozenset(
    {MessageStatus.ACCEPTED, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}
)
TABLES = (
    "alert_events",
    "answers",
    "messages",
    "alerts",
    "check_ins",
    "schedules",
    "on_call_shifts",
    "care_team_members",
    "patients",
    "staff_users",
    "care_teams",
    "audit_log",
    "api_tokens",
)


# ---------------------------------------------------------------------------------------------------
# Private servers


def _postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RuntimeError("fault tests need the PostgreSQL server binaries (initdb, pg_ctl); none found")


class PrivatePostgres:
    """A throw-away cluster in a temporary directory on a free port; stop/crash/start at will."""

    def __init__(self, base: Path) -> None:
        self.bin = _postgres_bin()
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        # initdb and pg_ctl refuse to run as root: run them as the `postgres` OS user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout}\n{result.stderr}")

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self._as:
            shutil.chown(self.dir, user="postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no checkpoint, recovery from the WAL at the next start."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


class PrivateRedis:
    """A redis-server child process on a free port, no persistence: a restart starts empty."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "redis"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=3, socket_connect_timeout=3)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.frozen = False

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("redis-server exited: " + (self.dir / "redis.log").read_text()[-2000:])
            client = self.client()
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_for(answers, timeout=15, message="the private Redis to answer")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveServer:
    def __init__(self, app: Flask, port: int) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# ---------------------------------------------------------------------------------------------------
# Figures


@dataclass
class Figures:
    sent: int
    stored: int
    processed: int
    duplicates: int
    detail: dict[str, int | str] = field(default_factory=dict)

    def line(self, name: str) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.detail.items())
        return (
            f"[{name}] replies sent {self.sent} / stored {self.stored} / processed {self.processed} / "
            f"duplicates {self.duplicates}" + (f"  ({extra})" if extra else "")
        )


@dataclass
class Enrolled:
    patient_id: int
    phone: str
    check_in_id: int | None


def mid_of(record: dict[str, Any]) -> int | None:
    """Our outbound row id, from the status-callback URL the row was sent with (…/twilio/status?mid=N)."""
    url = record.get("status_callback") or ""
    values = parse_qs(urlsplit(url).query).get("mid")
    return int(values[0]) if values else None


# ---------------------------------------------------------------------------------------------------
# The stack


@dataclass
class Stack:
    base: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    twilio: TwilioServer
    env: dict[str, str]
    settings: Settings
    app: Flask
    rt: Runtime
    web_url: str
    processes: list[CeleryProcess] = field(default_factory=list)
    fast_forwarded: set[int] = field(default_factory=set)
    restarts: list[str] = field(default_factory=list)
    _seq: int = 0

    # ---- life cycle -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Between tests: every server up and empty of the previous test's work."""
        for proc in self.processes:
            proc.stop()
        self.processes.clear()
        if not self.pg.running():
            self.pg.start()
        if self.redis.frozen:
            self.redis.thaw()
        if not self.redis.running():
            self.redis.start()
        client = self.redis.client()
        try:
            client.flushall()
        finally:
            client.close()
        self.twilio.state.clear()
        self.rt.clock = utcnow
        self.fast_forwarded = set()
        self.restarts = []

        def truncated() -> bool:
            try:
                with self.rt.engine.begin() as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                    conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
            except Exception:
                return False
            return True

        wait_for(truncated, timeout=30, interval=0.2, message="tables to be truncated")

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> CeleryProcess:
        self._seq += 1
        proc = CeleryProcess(
            worker_args(f"{name}-{self._seq}-{os.getpid()}", heartbeat=False),
            {**self.env, **(env or {})},
            self.base / f"worker-{self._seq}-{name}.log",
            WORKER_READY,
        )
        self.processes.append(proc)
        return proc

    def supervise(self) -> None:
        """What the deployment's supervisor does (docker-compose `restart: unless-stopped`): a worker
        process that exited on its own is started again. Each restart is recorded and reported."""
        for proc in list(self.processes):
            if proc.args[0] != "worker" or proc.expected_exit or proc.proc.poll() is None:
                continue
            proc.expected_exit = True
            reason = f"{proc.log_path.name} exited with {proc.proc.returncode}: {proc.last_error()}"
            self.restarts.append(reason)
            self._seq += 1
            self.processes.append(
                CeleryProcess(
                    proc.args,
                    proc.env,
                    self.base / f"worker-{self._seq}-restarted.log",
                    proc.ready_marker,
                )
            )

    def start_beat(self, name: str, tick_seconds: float) -> CeleryProcess:
        self._seq += 1
        stem = self.base / f"beat-{self._seq}-{name}"
        proc = CeleryProcess(
            ["beat", "--loglevel=INFO", "-s", f"{stem}.schedule", "--pidfile", f"{stem}.pid"],
            {**self.env, "BEAT_TICK_SECONDS": str(tick_seconds)},
            stem.with_suffix(".log"),
            BEAT_READY,
        )
        self.processes.append(proc)
        return proc

    # ---- the patient side -------------------------------------------------------------------------
    def enrol(self, count: int, *, start_check_ins: bool = True, tag: str = "p") -> list[Enrolled]:
        """A care team and `count` patients; each starts a check-in now (its first question is queued)."""
        from pro_service.services import check_ins
        from pro_service.services.admin import save_care_team
        from pro_service.services.patients import enrol_patient

        self._seq += 1
        batch = self._seq
        out: list[Enrolled] = []
        with self.rt.unit_of_work() as session:
            team = save_care_team(
                session, None, name=f"Oncology {tag}{batch}", timezone="America/New_York", phone="+15550100"
            )
            for i in range(count):
                patient = enrol_patient(
                    session,
                    mrn=f"MRN-{tag}{batch}-{i}",
                    given_name="Test",
                    family_name=f"Patient{i}",
                    phone=f"+1555{batch % 1000:03d}{i:04d}",
                    timezone="America/New_York",
                    language="en",
                    care_team_id=team.id,
                )
                check_in = (
                    check_ins.start_now(session, self.rt, patient, INSTRUMENT) if start_check_ins else None
                )
                out.append(Enrolled(patient.id, patient.phone, check_in.id if check_in else None))
        return out

    def reply_params(self, from_: str, body: str, sid: str | None = None) -> dict[str, str]:
        return inbound_sms(from_, body, account_sid=ACCOUNT_SID, to=FROM_NUMBER, sid=sid)

    def post_reply(
        self, params: dict[str, str], *, http: requests.Session | None = None, timeout: float = 30
    ) -> tuple[int, float]:
        """POST a signed inbound SMS to the app's real port, as Twilio would; (status or 0, seconds)."""
        headers = Signer(self.settings.PUBLIC_BASE_URL, AUTH_TOKEN).headers("/twilio/sms", params)
        started = time.monotonic()
        poster = http or requests
        try:
            response = poster.post(
                self.web_url + "/twilio/sms",
                data=params,
                headers=headers,
                timeout=timeout,
            )
            status = response.status_code
            response.close()
        except requests.RequestException:
            status = 0  # no answer at all: Twilio counts it as a failed delivery too
        return status, time.monotonic() - started

    def worker_noticed_the_broker_is_gone(self) -> bool:
        """A worker logged that it lost the broker, or that its wake-up poll could not publish."""
        needles = (b"Connection to broker lost", b"inbound wake-up failed")
        return any(p.log_count(n) for p in self.processes for n in needles)

    def frozen_broker_has_unread_requests(self) -> bool:
        """A client has sent the frozen Redis bytes it has not read (a publish, an ack): the worker has met
        the freeze. Read from the kernel's socket table (the receive queue of Redis's own sockets)."""
        port = f":{self.redis.port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state, queues = line.split()[1], line.split()[3], line.split()[4]
                if local.endswith(port) and state == "01" and int(queues.split(":")[1], 16) > 0:
                    return True
        return False

    # ---- the sweep ----------------------------------------------------------------------------------
    def fast_forward_stuck_sends(self, older_than_seconds: float = 3.0) -> list[int]:
        """A row left in `sending` by a dead or failed send is reconciled by the sweep only once it has been
        stuck for SENDING_STUCK_AFTER (5 minutes). Instead of waiting, age the rows that have been stuck for
        longer than any real send takes: for them, those 5 minutes pass now."""
        with self.rt.engine.begin() as conn:
            ids = conn.execute(
                text(
                    "UPDATE messages SET updated_at = updated_at - interval '6 minutes' "
                    "WHERE direction = 'outbound' AND status = 'sending' "
                    "AND updated_at < now() - make_interval(secs => :age) RETURNING id"
                ),
                {"age": older_than_seconds},
            ).scalars()
            aged = list(ids)
        self.fast_forwarded.update(aged)
        return aged

    def tick(self) -> None:
        """One beat tick in-process with the real runtime: timers, escalations, re-publish of stuck rows."""
        from pro_service.services import sweeps

        sweeps.tick(self.rt, self.rt.now())

    def settle(
        self,
        done: Callable[[], bool],
        *,
        timeout: float = 60,
        every: float = 1.0,
        what: str,
        sids: Sequence[str] = (),
    ) -> None:
        """Let the worker finish, with beat's sweep running every `every` seconds until `done()`. On a
        timeout the error carries the figures for `sids` and where things stand."""
        last = 0.0

        def check() -> bool:
            nonlocal last
            if done():
                return True
            self.supervise()
            if time.monotonic() - last >= every:
                self.fast_forward_stuck_sends()
                self.tick()
                last = time.monotonic()
            return False

        try:
            wait_for(check, timeout=timeout, interval=0.1, message=what)
        except AssertionError as exc:
            figures = self.figures(sids).line("at the timeout") if sids else ""
            print(figures)
            raise AssertionError(f"{exc}\n{figures}\n{self.diagnose()}") from None

    def diagnose(self) -> str:
        """Where things stand: rows by status, broker queues, the tail of each Celery process's log."""
        lines = []
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT direction, status, count(*) FROM messages GROUP BY 1, 2 ORDER BY 1, 2")
            ).all()
        lines.append("messages: " + ", ".join(f"{d}/{s}={n}" for d, s, n in rows))
        client = self.redis.client()
        try:
            from pro_service.queue import QUEUES

            lengths = {q: client.llen(q) for q in QUEUES}
            lines.append(f"broker: queues {lengths}, unacked {client.hlen('unacked')}")
        except redis.RedisError as exc:
            lines.append(f"broker: {exc!r}")
        finally:
            client.close()
        lines.extend(f"restarted: {r}" for r in self.restarts)
        for proc in self.processes:
            lines.append(f"--- {proc.log_path.name} (pid {proc.pid}, rc {proc.proc.poll()})")
            lines.append(proc.tail(3000))
        return "\n".join(lines)

    # ---- what the database and the provider say ------------------------------------------------------
    def inbound_by_sid(self, sids: Iterable[str]) -> dict[str, list[Message]]:
        wanted = list(sids)
        with self.rt.sessions() as session:
            rows = session.scalars(select(Message).where(Message.twilio_sid.in_(wanted))).all()
        found: dict[str, list[Message]] = {}
        for row in rows:
            assert row.twilio_sid is not None
            found.setdefault(row.twilio_sid, []).append(row)
        return found

    def reconnect(self) -> None:
        """After a server restart the pool holds dead connections: the first use of one fails and
        SQLAlchemy drops the whole pool (as in production); wait until a fresh connection answers."""

        def answers() -> bool:
            try:
                with self.rt.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except OperationalError:
                return False
            return True

        wait_for(answers, timeout=30, message="PostgreSQL to answer after the restart")

    def processed_count(self, sids: Iterable[str]) -> int:
        wanted = list(sids)
        with self.rt.sessions() as session:
            return len(
                session.scalars(
                    select(Message.id).where(
                        Message.twilio_sid.in_(wanted), Message.status == MessageStatus.PROCESSED
                    )
                ).all()
            )

    def outbound(self) -> list[Message]:
        with self.rt.sessions() as session:
            return list(
                session.scalars(
                    select(Message).where(Message.direction == Direction.OUTBOUND).order_by(Message.id)
                ).all()
            )

    def provider_copies(self) -> Counter[int | None]:
        """How many messages the Twilio server accepted for each of our outbound rows."""
        return Counter(mid_of(m) for m in self.twilio.state.messages())

    def all_sent(self) -> bool:
        """Every outbound row that is to go out has gone out (and none is waiting or in flight)."""
        copies = self.provider_copies()
        for row in self.outbound():
            if row.status in (MessageStatus.CANCELLED, MessageStatus.FAILED):
                continue
            if row.status not in SENT_STATES or copies[row.id] == 0:
                return False
        return True

    def figures(self, sids: Sequence[str]) -> Figures:
        """sent / stored / processed / duplicates for the replies with these MessageSids.

        duplicates = an inbound row stored twice for one MessageSid + an answer stored twice for one reply
        + an outbound question row created twice for one (check-in, item) + a second message accepted by
        the Twilio server for one outbound row."""
        stored = self.inbound_by_sid(sids)
        rows = [row for group in stored.values() for row in group]
        ids = [row.id for row in rows]
        with self.rt.sessions() as session:
            answers = session.scalars(select(Answer).where(Answer.message_id.in_(ids))).all()
            questions = session.execute(
                select(Message.check_in_id, Message.item_code).where(
                    Message.direction == Direction.OUTBOUND, Message.kind == MessageKind.QUESTION
                )
            ).all()
            reprompts = session.scalar(
                select(text("count(*)")).select_from(Message).where(Message.kind == MessageKind.REPROMPT)
            )
        per_reply = Counter(a.message_id for a in answers)
        processed = sum(1 for row in rows if row.status == MessageStatus.PROCESSED and per_reply[row.id] >= 1)
        copies = self.provider_copies()
        dup_rows = len(rows) - len(stored)
        dup_answers = sum(n - 1 for n in per_reply.values() if n > 1)
        dup_questions = sum(n - 1 for n in Counter(questions).values() if n > 1)
        dup_sends = sum(n - 1 for mid, n in copies.items() if mid is not None and n > 1)
        detail: dict[str, int | str] = {
            "double-stored": dup_rows,
            "double answers": dup_answers,
            "double questions": dup_questions,
            "double sends": dup_sends,
            "reprompts": int(reprompts or 0),
            "outbound rows": len(self.outbound()),
            "provider messages": sum(copies.values()),
            "sent rows without a provider SID": sum(
                1 for m in self.outbound() if m.status in SENT_STATES and m.twilio_sid is None
            ),
        }
        if self.fast_forwarded:
            detail["stuck sends reconciled"] = len(self.fast_forwarded)
        detail["worker tasks that raised"] = sum(p.log_count(b"raised unexpected") for p in self.processes)
        detail["worker restarts by the supervisor"] = len(self.restarts)
        return Figures(
            sent=len(set(sids)),
            stored=len(stored),
            processed=processed,
            duplicates=dup_rows + dup_answers + dup_questions + dup_sends,
            detail=detail,
        )

    def report(self, name: str, figures: Figures) -> None:
        """Print the figures line (and why a worker had to be restarted, if one was)."""
        print(figures.line(name))
        for reason in self.restarts:
            print(f"  [{name}] supervisor restarted a worker: {reason}")

    def conversation_problems(self, patients: Sequence[Enrolled], replies: int) -> list[str]:
        """Each check-in must look exactly as if every reply had been handled once, in order."""
        problems: list[str] = []
        copies = self.provider_copies()
        with self.rt.sessions() as session:
            for p in patients:
                check_in = session.get(CheckIn, p.check_in_id)
                assert check_in is not None
                answers = session.scalars(
                    select(Answer).where(Answer.check_in_id == check_in.id).order_by(Answer.id)
                ).all()
                got = [(a.item_code, a.raw_text) for a in answers if a.raw_text is not None]
                want = list(zip(ANSWERED_ITEMS[:replies], SCRIPT[:replies], strict=True))
                if got != want:
                    problems.append(f"patient {p.patient_id}: answers {got}, expected {want}")
                asked = session.scalars(
                    select(Message)
                    .where(
                        Message.check_in_id == check_in.id,
                        Message.direction == Direction.OUTBOUND,
                        Message.kind == MessageKind.QUESTION,
                    )
                    .order_by(Message.id)
                ).all()
                items = tuple(m.item_code for m in asked)
                if items != QUESTIONS_AFTER[replies]:
                    problems.append(f"patient {p.patient_id}: questions {items}")
                for m in asked:
                    # A question whose item the patient answered before it could be delivered (the replies
                    # here are scripted, not prompted) is cancelled, never sent late: 0 copies, not 1.
                    superseded = (m.error_message or "").startswith("superseded")
                    expected = 0 if superseded else 1
                    if copies[m.id] != expected:
                        problems.append(f"question row {m.id} reached the provider {copies[m.id]} times")
        return problems


def now_utc() -> datetime:
    return datetime.now(UTC)
