"""Reply to page: from a signed reply that makes a patient urgent ("yes" to the `neuro` item of a check-in in
progress) to the on-call nurse's page arriving at the Twilio-compatible server, under a steady background
load of ordinary replies from other patients.

Real processes: gunicorn web, Celery worker(s) (`celery -A workers worker --concurrency=2`), Redis, the
real `twilio` client calling the local Twilio-compatible server (own process, status callbacks on).
Set-up goes through the services in this process (check-ins started with `check_ins.start_now`, then
answered "no", "0" through `inbound.store_inbound` + `inbound.process_patient`) with publishing off, so
no worker sees set-up work. `python -m benchmarks.bench_reply_to_page [--full]`.

`--words`: the urgent patients have no check-in open and text an emergency in their own words, English
and Spanish in turn (issue 12: urgent free text -> page, read by the symptom reader on arrival).
`--backlog 10000`: ten thousand first questions of a fan-out are being sent meanwhile.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select, text, update

from benchmarks.harness import (
    BenchError,
    CpuMeter,
    Processes,
    Signer,
    bench_database,
    copy_rows,
    database_name,
    free_port,
    http_json,
    in_group,
    ms,
    nurse_phone,
    percentile,
    phone,
    postgres_backends,
    print_machine,
    redis_db,
    redis_server,
    runtime_for,
    service_env,
    sms_params,
    start_celery_worker,
    start_gunicorn,
    start_twilio_recorder,
    table,
    wait_for,
)

INSTRUMENT = "sre-weekly"
PATIENT_COLUMNS = (
    "mrn", "given_name", "family_name", "phone", "timezone", "language", "care_team_id", "status",
    "sms_consent", "created_at", "updated_at",
)  # fmt: skip


# Emergencies in patients' own words, sent by urgent patients with no check-in open (--words).
WORDS = (
    "my legs went numb this morning and I can hardly stand",
    "me caí en el baño y no puedo levantarme",
    "can't pee since last night and it's numb down below",
    "mi mamá está muy confundida y no despierta bien",
    "fell in the kitchen, heard a crack in my hip",
    "no siento las piernas desde anoche",
)


def seed(
    rt: Any, pg_url: str, urgent: int, background: int, words: bool = False
) -> tuple[list[str], list[str], str]:
    """A care team, an on-call nurse, `urgent` patients at the neuro item (with `words`: no check-in at
    all) and `background` patients at the first item."""
    from pro_service.models import (
        CareTeamMember,
        CheckIn,
        Direction,
        Message,
        MessageStatus,
        OnCallShift,
        Patient,
        StaffRole,
    )
    from pro_service.services import check_ins, inbound
    from pro_service.services.admin import save_care_team
    from pro_service.services.staff import create_staff

    rt.tasks = _no_tasks()
    now = datetime.now(UTC)
    with rt.unit_of_work() as session:
        team = save_care_team(session, None, name="Bench oncology", timezone="UTC", phone="+1 555 0100")
        nurse = create_staff(
            session,
            email="oncall@example.org",
            name="Nurse On Call",
            role=StaffRole.NURSE,
            phone=nurse_phone(0),
            password="bench password 123",  # noqa: S106  (a throw-away account in a throw-away database)
        )
        session.add(CareTeamMember(care_team_id=team.id, staff_id=nurse.id))
        session.add(
            OnCallShift(
                care_team_id=team.id,
                staff_id=nurse.id,
                level=1,
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=12),
            )
        )
        team_id, nurse_number = team.id, nurse.phone
    total = urgent + background
    copy_rows(
        pg_url,
        "patients",
        PATIENT_COLUMNS,
        (
            (f"P{i:07d}", "Bench", "Patient", phone(i), "UTC", "en", team_id, "active", True, now, now)
            for i in range(total)
        ),
    )
    urgent_phones = [phone(i) for i in range(urgent)]
    with rt.unit_of_work() as session:
        for patient in session.scalars(select(Patient).order_by(Patient.id)):
            if not (words and patient.phone in urgent_phones):
                check_ins.start_now(session, rt, patient, INSTRUMENT)
    # "no" to new pain, "0" for the worst pain: the pain follow-ups are skipped and neuro is asked next.
    for body in ("no", "0") if not words else ():
        with rt.unit_of_work() as session:
            for number in urgent_phones:
                sid = "SM" + secrets.token_hex(16)
                stored = inbound.store_inbound(session, sms_params(sid, number, body), rt.now())
                assert stored.patient_id is not None
                inbound.process_patient(session, rt, stored.patient_id)
    with rt.unit_of_work() as session:
        items = session.execute(
            select(CheckIn.current_item, text("count(*)")).group_by(CheckIn.current_item)
        ).all()
        counts = {item: int(n) for item, n in items}
        if counts.get("neuro", 0) != (0 if words else urgent) or counts.get("pain_new") != background:
            raise BenchError(f"set-up left check-ins at {counts}; expected {urgent} at neuro")
        # Set-up questions were never published; mark them sent so no sweep or worker sends them now.
        session.execute(
            update(Message)
            .where(Message.direction == Direction.OUTBOUND, Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SENT)
        )
    return urgent_phones, [phone(i) for i in range(urgent, total)], str(nurse_number)


def queue_backlog(rt: Any, pg_url: str, first: int, count: int) -> list[int]:
    """`count` more patients with a first question queued (not yet published): a fan-out in progress."""
    from pro_service.models import Message, MessageKind, MessageStatus, Patient
    from pro_service.services import check_ins

    now = datetime.now(UTC)
    copy_rows(
        pg_url,
        "patients",
        PATIENT_COLUMNS,
        (
            (f"P{i:07d}", "Bench", "Patient", phone(i), "UTC", "en", 1, "active", True, now, now)
            for i in range(first, first + count)
        ),
    )
    with rt.unit_of_work() as session:
        for patient in session.scalars(select(Patient).where(Patient.mrn >= f"P{first:07d}")):
            check_ins.start_now(session, rt, patient, INSTRUMENT)
    with rt.sessions() as session:
        return list(
            session.scalars(
                select(Message.id)
                .where(Message.kind == MessageKind.QUESTION, Message.status == MessageStatus.QUEUED)
                .order_by(Message.id)
            )
        )


def _no_tasks() -> Any:
    from benchmarks.harness import NoTasks

    return NoTasks()


class Load:
    """Posts signed replies on a schedule from a small thread pool; records send instants and statuses."""

    def __init__(self, base_url: str, signer: Signer, threads: int = 16) -> None:
        self.base_url, self.signer = base_url, signer
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="load")
        self.local = threading.local()
        self.sent_at: dict[str, float] = {}  # urgent patient phone -> epoch seconds just before the POST
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def _post(self, number: str, body: str, urgent: bool) -> None:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        params = sms_params("SM" + secrets.token_hex(16), number, body)
        headers = {"X-Twilio-Signature": self.signer.sign("/twilio/sms", params)}
        started = time.time()
        try:
            status = session.post(
                f"{self.base_url}/twilio/sms", data=params, headers=headers, timeout=10
            ).status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.statuses.append(status)
            if urgent:
                self.sent_at[number] = started

    def run(self, events: list[tuple[float, str, str, bool]]) -> float:
        """events: (offset seconds, phone, body, urgent), sorted; returns the wall seconds it took."""
        start = time.monotonic()
        futures: list[Future[None]] = []
        for offset, number, body, urgent in events:
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self._post, number, body, urgent))
        for future in futures:
            future.result(timeout=60)
        self.pool.shutdown(wait=True)
        return time.monotonic() - start


def schedule(
    urgent_phones: list[str],
    background_phones: list[str],
    urgent_rate: float,
    background_rate: float,
    words: bool = False,
) -> list[tuple[float, str, str, bool]]:
    """Evenly spaced urgent and background replies, interleaved over the same window."""
    events = [
        (i / urgent_rate, p, WORDS[i % len(WORDS)] if words else "yes", True)
        for i, p in enumerate(urgent_phones)
    ]
    events += [(i / background_rate, p, "no", False) for i, p in enumerate(background_phones)]
    return sorted(events, key=lambda e: e[0])


# --words: the patient's one inbound message, and the first page of any urgent alert it raised.
STAGES_WORDS = """
    SELECT DISTINCT ON (p.phone) p.phone, r.created_at AS stored, r.processed_at AS processed,
           a.opened_at AS opened, m.created_at AS page_queued, m.twilio_sid AS page_sid
    FROM alerts a
    JOIN patients p ON p.id = a.patient_id
    JOIN messages m ON m.alert_id = a.id AND m.kind = 'page' AND m.to_number = :nurse
    JOIN messages r ON r.patient_id = a.patient_id AND r.direction = 'inbound'
    WHERE a.urgency = 'urgent'
    ORDER BY p.phone, m.created_at
"""


def stage_times(rt: Any, nurse_number: str, words: bool = False) -> list[dict[str, Any]]:
    """Per urgent patient: reply stored, processed, alert opened, page queued; page SID (from the DB)."""
    if words:
        with rt.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(STAGES_WORDS), {"nurse": nurse_number})]
    sql = text(
        """
        SELECT p.phone, r.created_at AS stored, r.processed_at AS processed, a.opened_at AS opened,
               m.created_at AS page_queued, m.twilio_sid AS page_sid
        FROM alerts a
        JOIN patients p ON p.id = a.patient_id
        JOIN messages m ON m.alert_id = a.id AND m.kind = 'page' AND m.to_number = :nurse
        JOIN answers ans ON ans.check_in_id = a.check_in_id AND ans.item_code = 'neuro'
        JOIN messages r ON r.id = ans.message_id
        """
    )
    with rt.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sql, {"nurse": nurse_number})]


def _explain_missing(rt: Any, urgent_phones: list[str], paged: set[str]) -> None:
    """For an urgent patient whose page never arrived: what the database holds (to find the cause)."""
    for number in urgent_phones:
        if number in paged:
            continue
        with rt.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.direction, m.kind, m.status, m.alert_id, m.body, m.created_at, m.processed_at "
                    "FROM messages m JOIN patients p ON p.id = m.patient_id WHERE p.phone = :p ORDER BY m.id"
                ),
                {"p": number},
            ).all()
            alerts = conn.execute(
                text(
                    "SELECT a.id, a.category, a.urgency, a.escalation_level, a.next_escalation_at "
                    "FROM alerts a JOIN patients p ON p.id = a.patient_id WHERE p.phone = :p"
                ),
                {"p": number},
            ).all()
            pages = conn.execute(
                text(
                    "SELECT m.alert_id, m.status, m.twilio_sid, m.created_at FROM messages m "
                    "JOIN alerts a ON a.id = m.alert_id JOIN patients p ON p.id = a.patient_id "
                    "WHERE p.phone = :p AND m.kind = 'page'"
                ),
                {"p": number},
            ).all()
        print(f"  unpaged {number}: messages {rows}; alerts {alerts}; pages {pages}")


def run(
    full: bool = False,
    urgent: int | None = None,
    urgent_rate: float = 5.0,
    background_rate: float = 10.0,
    send_rate: float = 100.0,
    worker_concurrency: int = 2,
    workers: int = 1,
    backlog: int = 0,
    split_queues: bool = False,
    words: bool = False,
    notify_worker: bool = False,
) -> dict[str, Any]:
    urgent = urgent or (1000 if full else 150)
    duration = urgent / urgent_rate
    background = int(duration * background_rate)
    shape = (
        "3 workers (clinical, notify, send)"
        if notify_worker
        else "2 workers (clinical: ingest,score,notify,beat; bulk: send)"
        if split_queues
        else f"{workers} worker(s)"
    )
    print(
        f"reply->page: {urgent} urgent replies at {urgent_rate}/s with {background_rate}/s ordinary replies "
        f"({background} patients), {shape} x --concurrency={worker_concurrency}, "
        f"SEND_RATE_PER_SECOND={send_rate:g}"
        + (f", {backlog} questions already queued" if backlog else "")
        + (", urgent replies in the patients' own words, no check-in open" if words else ""),
        flush=True,
    )
    with bench_database("page") as pg_url, redis_db() as redis_url, Processes("page") as procs:
        twilio_url = start_twilio_recorder(procs, free_port(), callbacks=True)
        web_port = free_port()
        env = service_env(pg_url, redis_url, twilio_url, web_port, SEND_RATE_PER_SECOND=f"{send_rate:g}")
        rt = runtime_for(env)
        publisher = rt.tasks  # the real one; seeding swaps in NoTasks
        t0 = time.monotonic()
        urgent_phones, background_phones, nurse_number = seed(rt, pg_url, urgent, background, words)
        # Optionally, a fan-out in progress: `backlog` first questions waiting in the send queue.
        backlog_ids = queue_backlog(rt, pg_url, urgent + background, backlog) if backlog else []
        print(
            f"  set-up: {urgent + background} patients with check-ins in {time.monotonic() - t0:.1f} s",
            flush=True,
        )
        web = start_gunicorn(procs, "gunicorn", "pro_service.wsgi:app", env, web_port, 2, 4)
        if notify_worker:
            # Three workers: replies and scoring; pages and safety texts alone; bulk sends.
            worker_procs = [
                start_celery_worker(procs, "clinical", env, worker_concurrency, "ingest,score,beat"),
                start_celery_worker(procs, "notify", env, worker_concurrency, "notify"),
                start_celery_worker(procs, "bulk", env, worker_concurrency, "send"),
            ]
        elif split_queues:
            # The clinical path (replies, scoring, pages) on its own worker; bulk sends on another.
            worker_procs = [
                start_celery_worker(procs, "clinical", env, worker_concurrency, "ingest,score,notify,beat"),
                start_celery_worker(procs, "bulk", env, worker_concurrency, "send"),
            ]
        else:
            worker_procs = [
                start_celery_worker(procs, f"worker{i}", env, worker_concurrency) for i in range(workers)
            ]
        worker_groups = {p.popen.pid for p in worker_procs}
        meter = CpuMeter(
            web=in_group(web.popen.pid),
            workers=lambda _pid, pgrp, _cmd: pgrp in worker_groups,
            pg=postgres_backends(database_name(pg_url)),
            redis=redis_server,
            twilio=lambda _pid, _pgrp, cmd: "benchmarks.twilio_recorder" in cmd,
        )
        load = Load(f"http://127.0.0.1:{web_port}", Signer(env["PUBLIC_BASE_URL"]))
        before = meter.snapshot()
        for message_id in backlog_ids:
            publisher.publish("pro.send_message", message_id)
        took = load.run(schedule(urgent_phones, background_phones, urgent_rate, background_rate, words))

        def pages() -> list[dict[str, Any]]:
            return [a for a in http_json(f"{twilio_url}/_bench/arrivals") if a["to"] == nurse_number]

        def paged_patients() -> int:
            if not words:
                return len(pages())
            arrived = {a["sid"] for a in pages()}
            return sum(1 for r in stage_times(rt, nurse_number, words) if r["page_sid"] in arrived)

        try:
            wait_for(lambda: paged_patients() >= urgent, timeout=60, interval=0.5, message=f"{urgent} pages")
        except BenchError as exc:
            print(f"  WARNING: {exc}; {len(pages())} arrived")
        cpu = CpuMeter.delta(before, meter.snapshot())
        arrivals = {a["sid"]: a["at"] for a in pages()}
        stages = stage_times(rt, nurse_number, words)
        if words:
            _explain_missing(rt, urgent_phones, {r["phone"] for r in stages if arrivals.get(r["page_sid"])})
        rt.dispose()

    latencies, parts = [], {"webhook": [], "queue+process": [], "score+alert": [], "page send": []}
    for row in stages:
        sent, at = load.sent_at.get(row["phone"]), arrivals.get(row["page_sid"])
        if sent is None or at is None:
            continue
        latencies.append(at - sent)
        parts["webhook"].append(row["stored"].timestamp() - sent)
        parts["queue+process"].append((row["processed"] - row["stored"]).total_seconds())
        parts["score+alert"].append((row["opened"] - row["processed"]).total_seconds())
        parts["page send"].append(at - row["opened"].timestamp())
    bad = sum(1 for s in load.statuses if s != 200)
    if words:
        paged = {row["phone"] for row in stages if arrivals.get(row["page_sid"]) is not None}
        missing = [WORDS[i % len(WORDS)] for i, p in enumerate(urgent_phones) if p not in paged]
        for text_ in sorted(set(missing)):
            print(f"  no page for {missing.count(text_)} x {text_!r}")
    print(
        f"  load: {len(load.statuses)} replies in {took:.1f} s, {bad} not answered 200; "
        f"{len(latencies)}/{urgent} pages"
    )
    table(
        "Reply -> page (seconds from the urgent reply's POST to the page at the Twilio server)",
        ["", "p50", "p95", "p99", "max"],
        [
            [name, *(ms(percentile(values, p)) for p in (50, 95, 99, 100))]
            for name, values in [("reply -> page", latencies), *parts.items()]
        ],
    )
    elapsed = cpu["elapsed"]
    print(
        "  CPU (cores): "
        + ", ".join(
            f"{k} {cpu[k] / elapsed:.2f}" for k in ("web", "workers", "pg", "redis", "twilio", "others")
        )
    )
    p99 = percentile(latencies, 99)
    print(f"  p99 {p99:.2f} s (target < 2 s): {'OK' if p99 < 2 else 'MISSED'}")
    if len(latencies) < urgent or bad:
        raise BenchError(f"{urgent - len(latencies)} pages missing, {bad} replies not answered 200")
    return {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": p99,
        "max": max(latencies),
        "stages_p50": {k: percentile(v, 50) for k, v in parts.items()},
        "stages_p99": {k: percentile(v, 99) for k, v in parts.items()},
        "cpu_cores": {k: cpu[k] / elapsed for k in ("web", "workers", "pg", "redis", "twilio", "others")},
        "settings": {
            "urgent": urgent,
            "urgent_rate": urgent_rate,
            "background_rate": background_rate,
            "send_rate": send_rate,
            "workers": workers,
            "worker_concurrency": worker_concurrency,
            "backlog": backlog,
            "split_queues": split_queues,
            "words": words,
            "notify_worker": notify_worker,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="1,000 urgent replies")
    parser.add_argument("--urgent", type=int, help="urgent replies (default 150)")
    parser.add_argument("--urgent-rate", type=float, default=5.0, help="urgent replies per second")
    parser.add_argument("--background-rate", type=float, default=10.0, help="ordinary replies per second")
    parser.add_argument("--send-rate", type=float, default=100.0, help="SEND_RATE_PER_SECOND")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument(
        "--split-queues",
        action="store_true",
        help="two workers: -Q ingest,score,notify,beat and -Q send (instead of --workers)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="first questions of a fan-out already queued when the load starts",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="each worker's --concurrency")
    parser.add_argument(
        "--words", action="store_true", help="urgent replies are emergencies in the patients' own words"
    )
    parser.add_argument(
        "--notify-worker",
        action="store_true",
        help="three workers: -Q ingest,score,beat, -Q notify (pages, safety texts) and -Q send",
    )
    args = parser.parse_args()
    print_machine()
    run(
        args.full,
        args.urgent,
        args.urgent_rate,
        args.background_rate,
        args.send_rate,
        args.concurrency,
        args.workers,
        args.backlog,
        args.split_queues,
        args.words,
        args.notify_worker,
    )


if __name__ == "__main__":
    main()
