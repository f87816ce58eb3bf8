"""Demo data for the embedded default: care teams, staff, patients with a few weeks of history.

A newcomer who signs in sees a live queue at once: six weeks of weekly check-ins with answers and the
message threads behind them, alerts of every urgency (some open, some acknowledged, older ones resolved)
raised by the real red-flag rules from those answers, and an on-call rota. Idempotent: a second run adds
nothing to a patient who already has history (it only tops up the rota when it runs out).

The history is a story told through the real use cases with the runtime's clock moved (issue 13), so it
cannot drift from what production writes: check-ins started, questions sent, replies stored as the webhook
stores them and processed, scored, paged, acknowledged and resolved, one transaction a step, with the tasks
each step asks for run here in order (no worker needed) and every text sent to the outbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from pro_service.models import (
    Alert,
    AlertStatus,
    ApiToken,
    CareTeam,
    CheckIn,
    CheckInStatus,
    OnCallShift,
    Patient,
    Schedule,
    StaffRole,
    StaffUser,
    utcnow,
)
from pro_service.queue import Job, TaskQueue
from pro_service.runtime import Runtime
from pro_service.scheduling import next_occurrence
from pro_service.services import check_ins, inbound, outbound, triage
from pro_service.services.admin import add_member, save_care_team
from pro_service.services.alert_lifecycle import acknowledge, resolve
from pro_service.services.outbound import sender_number
from pro_service.services.patients import enrol_patient
from pro_service.services.staff import create_staff
from pro_service.services.tokens import PREFIX, create_token
from pro_service.sms.outbox import OutboxGateway

T = TypeVar("T")

DEMO_PASSWORD = "demo-password-123"  # noqa: S105  (printed for the local demo; never a real account)
DEMO_TEAMS = (
    ("Demo breast oncology", "America/New_York", "+15550100000"),
    ("Demo bone metastasis clinic", "America/Chicago", "+15550100100"),
)
DEMO_STAFF = (
    ("nurse@demo.local", "Demo Nurse", StaffRole.NURSE, "+15550109001"),
    ("charge@demo.local", "Demo Charge Nurse", StaffRole.NURSE, "+15550109002"),
    ("admin@demo.local", "Demo Admin", StaffRole.ADMIN, None),
)
# mrn, given, family, phone, time zone, language, team (index into DEMO_TEAMS)
DEMO_PATIENTS = (
    ("DEMO-001", "Maria", "Garcia", "+15550101001", "America/New_York", "es", 0),
    ("DEMO-002", "Linda", "Smith", "+15550101002", "America/Chicago", "en", 0),
    ("DEMO-003", "Grace", "Okafor", "+15550101003", "America/Los_Angeles", "en", 0),
    ("DEMO-004", "Patricia", "Nguyen", "+15550101004", "America/New_York", "en", 0),
    ("DEMO-005", "Susan", "Miller", "+15550101005", "America/New_York", "en", 0),
    ("DEMO-006", "Aisha", "Rahman", "+15550101006", "America/Chicago", "en", 1),
    ("DEMO-007", "Helen", "Park", "+15550101007", "America/Chicago", "en", 1),
    ("DEMO-008", "Joan", "Rivera", "+15550101008", "America/Chicago", "es", 1),
)
WEEKS = 6
# A well week, in the newest questionnaire (sre-weekly v2) that the demo patients are enrolled on.
WELL = {
    "weakness": "no",
    "numbness": "0",
    "bladder_bowel": "no",
    "weight_bearing": "no",
    "fall": "no",
    "pain_worst": "2",
    "pain_site": "3",
    "pain_features": "0",
    "calcium_sx": "0",
    "anything_else": "no",
}


@dataclass(frozen=True)
class Story:
    """What the last six weeks looked like for one demo patient (oldest week first)."""

    pains: tuple[int | None, ...]  # worst pain per week; None = the check-in expired with no answer
    latest: dict[str, str] = field(default_factory=dict)  # overrides for the newest check-in
    earlier: dict[int, dict[str, str]] = field(default_factory=dict)  # week index → overrides
    latest_minutes_ago: int = 60 * 24  # when the newest check-in closed
    acknowledged_by: str | None = None  # email: the open alerts were acknowledged by this nurse
    message: str | None = None  # a text outside the check-ins (kind message / NURSE)
    message_minutes_ago: int = 0


STORIES: dict[str, Story] = {
    # Urgent, open: "yes" to new weakness (the first question), 12 minutes ago; the check-in closed since.
    "DEMO-002": Story(
        pains=(2, 2, 3, 3, 3, 4),
        latest={"weakness": "Yes", "pain_site": "3"},
        latest_minutes_ago=2,
    ),
    # Urgent, acknowledged: cannot move or put weight on a hip (Spanish).
    "DEMO-008": Story(
        pains=(4, 5, 5, 4, 5, 6),
        latest={"weight_bearing": "si", "pain_site": "3"},
        latest_minutes_ago=55,
        acknowledged_by="charge@demo.local",
    ),
    # Same day, open: several symptoms of high calcium (Spanish).
    "DEMO-001": Story(
        pains=(3, 3, 2, 3, 3, 3),
        latest={"calcium_sx": "1 2 6"},
        latest_minutes_ago=140,
    ),
    # Same day, open: severe pain, 8 of 10 (the week before, 7: resolved).
    "DEMO-006": Story(pains=(4, 5, 5, 6, 7, 8), latest_minutes_ago=190),
    # Same day, acknowledged: asked for a call back (the NURSE keyword, in her words).
    "DEMO-007": Story(
        pains=(1, 1, 0, 1, 1, 1),
        acknowledged_by="nurse@demo.local",
        message="Could a nurse call me back today please",
        message_minutes_ago=45,
    ),
    # Routine, open: new pain in an arm; four weeks ago new hip pain (resolved).
    "DEMO-003": Story(
        pains=(2, 2, 2, 2, 2, 3),
        earlier={1: {"pain_features": "1"}},
        latest={"pain_features": "1", "pain_site": "4"},
        latest_minutes_ago=300,
    ),
    # Routine, open: a message in her own words outside the check-ins.
    "DEMO-004": Story(
        pains=(2, 3, 2, 2, 3, 2),
        message="My hip has been aching more since the weekend, is that normal with the new tablets?",
        message_minutes_ago=95,
    ),
    # Routine, open: the last two check-ins expired without a reply.
    "DEMO-005": Story(pains=(3, 2, 3, 3, None, None), latest_minutes_ago=60 * 26),
}
OLD_OUTCOMES = ("symptom_management_advice", "no_action_needed", "same_day_visit")


def refusal(sms_backend: str) -> str | None:
    """Why the demo must not be seeded here, if it must not. Its story commits each step, so for a moment
    its texts are queued rows a running worker could send through the real gateway, and its patients'
    numbers are made up: seed it only where SMS goes to the outbox."""
    if sms_backend == "outbox":
        return None
    return (
        f"the demo is seeded only with SMS_BACKEND=outbox (here: {sms_backend}): its story queues texts to "
        "made-up numbers that a running worker could send"
    )


def seed(rt: Runtime, *, history: bool = True) -> Iterator[str]:
    """Idempotent: a second run adds nothing and prints the same logins. `history=False`: the accounts,
    rota, patients and token only, with no weeks told (tests of the accounts, in a fraction of the time)."""
    now = rt.now()
    untold: list[tuple[int, int, Story]] = []  # patient, schedule, story: the patients with no history yet
    with rt.unit_of_work() as session:
        teams = []
        for team_name, tz, team_phone in DEMO_TEAMS:
            team = session.scalar(select(CareTeam).where(CareTeam.name == team_name))
            if team is None:
                team = save_care_team(session, None, name=team_name, timezone=tz, phone=team_phone)
            teams.append(team)
        staff: dict[str, StaffUser] = {}
        for email, name, role, phone in DEMO_STAFF:
            person = session.scalar(select(StaffUser).where(StaffUser.email == email))
            if person is None:
                person = create_staff(
                    session,
                    email=email,
                    name=name,
                    role=role,
                    phone=phone,
                    password=DEMO_PASSWORD,
                    # The published demo password (embedded default only), with no forced change.
                    enforce_policy=False,
                )
                session.flush()
                for team in teams:
                    add_member(session, team.id, person.id)
            staff[email] = person
        session.flush()
        for team in teams:
            _rota(session, team, staff, now)
        for mrn, given, family, phone, tz, lang, team_index in DEMO_PATIENTS:
            patient = session.scalar(select(Patient).where(Patient.mrn == mrn))
            if patient is None:
                if session.scalar(select(Patient.id).where(Patient.phone == phone)) is not None:
                    continue  # the number is taken by a real record: leave it alone
                patient = enrol_patient(
                    session,
                    mrn=mrn,
                    given_name=given,
                    family_name=family,
                    phone=phone,
                    timezone=tz,
                    language=lang,
                    care_team_id=teams[team_index].id,
                    # The newest, whatever ENROL_RULESET_VERSION says: the stories are written for it.
                    ruleset_version=rt.ruleset.version,
                )
                patient.consent_at = now - timedelta(weeks=WEEKS + 1)
                patient.created_at = now - timedelta(weeks=WEEKS + 1)
            schedule = session.scalar(select(Schedule).where(Schedule.patient_id == patient.id).limit(1))
            if schedule is None:
                rule = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0"
                start = date.today() - timedelta(weeks=WEEKS + 1)
                schedule = Schedule(
                    patient_id=patient.id,
                    instrument_code="sre-weekly",
                    rrule=rule,
                    start_date=start,
                    # The written history covers what is due until now; beat starts with the next one.
                    next_due_at=next_occurrence(rule, patient.timezone, start, None, now),
                )
                session.add(schedule)
                session.flush()
            story = STORIES.get(mrn)
            has_history = session.scalar(select(CheckIn.id).where(CheckIn.patient_id == patient.id).limit(1))
            if story is not None and has_history is None:
                untold.append((patient.id, schedule.id, story))
        token = _demo_token(session, rt.settings.SECRET_KEY, staff["admin@demo.local"])
        staff_ids = {email: person.id for email, person in staff.items()}
    if untold and history:
        # Told after the accounts, rota and patients are committed: each step is a transaction of its own.
        with _moved_clock(rt, now) as moved:
            for patient_id, schedule_id, story in untold:
                _Story(rt, moved, patient_id, schedule_id, story, staff_ids, now).tell()
    yield "demo data ready:"
    yield f"  nurse: nurse@demo.local / {DEMO_PASSWORD}"
    yield f"  admin: admin@demo.local / {DEMO_PASSWORD}"
    if token is None:
        yield "  demo API token: revoked (make one with `pro-service create-token`)"
    else:
        yield f"  demo API token (admin): {token}"


def demo_token_value(secret_key: str) -> str:
    """The demo's one API token, derived from SECRET_KEY: every start prints the same token without storing
    it (the table keeps only its hash), and a new SECRET_KEY gives a new one."""
    digest = hmac.new(secret_key.encode("utf-8"), b"pro-service demo API token", hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _demo_token(session: Session, secret_key: str, admin: StaffUser) -> str | None:
    """The demo admin's token, created on the first seed only; None once an administrator revoked it.
    The demo tokens earlier versions minted at every start (clients named "demo" since tokens have owners)
    are revoked: the demo has one."""
    value = demo_token_value(secret_key)
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()  # as services/tokens.py stores it
    older = select(ApiToken).where(
        ApiToken.name == "demo",
        ApiToken.revoked_at.is_(None),
        ApiToken.token_hash != digest,
        or_(ApiToken.client_name == "demo", ApiToken.staff_id == admin.id),
    )
    for earlier in session.scalars(older):
        earlier.revoked_at = utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None:
        # create_token mints a random value; the demo's is the derived one, so the row is given its hash.
        row = session.get(
            ApiToken, create_token(session, name="demo", staff=admin.id, requested_by="operator").id
        )
        assert row is not None
        row.token_hash, row.prefix = digest, value[:10]
        session.flush()
    return None if row.revoked_at is not None else value


def _rota(session: Session, team: CareTeam, staff: dict[str, StaffUser], now: datetime) -> None:
    """Level 1 the demo nurse, level 2 the charge nurse, until two weeks from yesterday (team time). The
    team's first rota reaches back over the history, so the story's alerts page whoever was on call then."""
    covered = session.scalar(
        select(OnCallShift.id).where(
            OnCallShift.care_team_id == team.id, OnCallShift.ends_at > now + timedelta(days=1)
        )
    )
    if covered is not None:
        return
    first = session.scalar(select(OnCallShift.id).where(OnCallShift.care_team_id == team.id).limit(1)) is None
    zone = ZoneInfo(team.timezone)
    yesterday = (now.astimezone(zone) - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    start = yesterday - timedelta(weeks=WEEKS + 1) if first else yesterday
    for level, email in ((1, "nurse@demo.local"), (2, "charge@demo.local")):
        session.add(
            OnCallShift(
                care_team_id=team.id,
                staff_id=staff[email].id,
                level=level,
                starts_at=start,
                ends_at=yesterday + timedelta(days=15),
            )
        )


def _sid() -> str:
    return "SMdemo" + secrets.token_hex(13)


@dataclass
class _Clock:
    """The runtime's clock while the story is told: the story's instant, moved step by step."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at


class _InProcessWorker(TaskQueue):
    """The demo's worker: the tasks a step asks for after its commit are kept here and run by the story in
    this process, at the story's instant (a worker would run them at the real time, and the embedded one
    starts only after the seed). Tasks the story does not run (webhook event deliveries) are published."""

    def __init__(self, real: TaskQueue) -> None:
        super().__init__(real.celery)
        self.real = real
        self.jobs: deque[Job] = deque()

    def after_commit(self, session: Session, name: str, *args: Any, queue_name: str | None = None) -> None:
        job = (name, args, queue_name)
        if job not in self.jobs:  # as TaskQueue does within a transaction: one score per check-in, etc.
            self.jobs.append(job)


@contextmanager
def _moved_clock(rt: Runtime, now: datetime) -> Iterator[tuple[_Clock, _InProcessWorker]]:
    """The runtime with its clock moved, its tasks run in process and texts sent to the outbox (demo numbers
    never reach a provider, whatever SMS_BACKEND says); restored afterwards."""
    clock, tasks, gateway = rt.clock, rt.tasks, rt.gateway
    moved, worker = _Clock(now), _InProcessWorker(tasks)
    rt.clock, rt.tasks, rt.gateway = moved, worker, OutboxGateway()
    try:
        yield moved, worker
    finally:
        rt.clock, rt.tasks, rt.gateway = clock, tasks, gateway


class _Story:
    """Tells one patient's weeks through the real use cases: a check-in is started, its questions sent, each
    reply stored as the webhook stores it and processed as the worker does, the answers scored, alerts
    paged, and older alerts acknowledged and resolved by a nurse. Each step is one transaction at the
    story's instant; the tasks it asks for run next, in order."""

    def __init__(
        self,
        rt: Runtime,
        moved: tuple[_Clock, _InProcessWorker],
        patient_id: int,
        schedule_id: int,
        story: Story,
        staff: dict[str, int],
        now: datetime,
    ) -> None:
        self.rt, (self.clock, self.worker) = rt, moved
        self.patient_id, self.schedule_id = patient_id, schedule_id
        self.story, self.staff, self.now = story, staff, now
        with rt.unit_of_work() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            self.phone, self.spanish = patient.phone, patient.language == "es"
            instrument = rt.instrument_for(patient.ruleset_version, "sre-weekly")
        assert instrument is not None and instrument.version == 2, "stories are written for v2"
        self.instrument = instrument

    def tell(self) -> None:
        latest_closed = self.now - timedelta(minutes=self.story.latest_minutes_ago)
        for week, pain in enumerate(self.story.pains):
            weeks_back = len(self.story.pains) - 1 - week
            closed = latest_closed - timedelta(weeks=weeks_back)
            if pain is None:
                self._silent_week(closed)
            else:
                self._answered_week(week, closed, self._replies(week, pain, latest=weeks_back == 0))
            if weeks_back > 0:
                self._close_episodes(closed)
            elif self.story.acknowledged_by is not None:
                self._acknowledge_open(self.story.acknowledged_by, closed + timedelta(minutes=4))
        if self.story.message:
            at = self.now - timedelta(minutes=self.story.message_minutes_ago)
            self._patient_texts(self.story.message, at)
            if self.story.acknowledged_by is not None:
                self._acknowledge_open(self.story.acknowledged_by, at + timedelta(minutes=4))

    # --- the patient's side --------------------------------------------------------------------------

    def _replies(self, week: int, pain: int, *, latest: bool) -> dict[str, str]:
        replies = {**WELL, "pain_worst": str(pain), **self.story.earlier.get(week, {})}
        if latest:
            replies.update(self.story.latest)
        if self.spanish:
            replies = {k: {"yes": "si", "Yes": "Si"}.get(v, v) for k, v in replies.items()}
        return replies

    def _answered_week(self, week: int, closed: datetime, replies: dict[str, str]) -> None:
        started = closed - timedelta(minutes=9 + week % 3)
        check_in_id = self._start(started)
        with self.rt.unit_of_work() as session:
            item = self._awaited(session)
        step = (closed - started) / len(self.instrument.items)
        at = started
        # Bounded: a reply the conversation cannot read is asked again, never forever.
        for _ in range(3 * len(self.instrument.items)):
            if item is None:
                return
            at = min(at + step, closed)
            item = self._patient_texts(replies[item], at)
        raise RuntimeError(f"demo story: check-in {check_in_id} did not complete")

    def _silent_week(self, closed: datetime) -> None:
        """No reply: the reminder and the expiry come from the check-in timers, swept as beat sweeps them."""
        started = closed - timedelta(minutes=self.rt.settings.CHECK_IN_EXPIRES_AFTER_MINUTES)
        check_in_id = self._start(started)
        for _ in range(5):  # first send is done; then the reminder (perhaps after quiet hours), the expiry
            with self.rt.unit_of_work() as session:
                check_in = session.get(CheckIn, check_in_id)
                assert check_in is not None
                due = check_in.next_deadline_at if check_in.status.is_open else None
            if due is None:
                return
            self._run_at(
                due,
                lambda session: check_ins.run_deadlines(
                    session, self.rt, self.rt.now(), patient_id=self.patient_id
                ),
            )
        raise RuntimeError(f"demo story: check-in {check_in_id} did not expire")

    def _start(self, at: datetime) -> int:
        """A check-in started now (the use case a nurse or the API calls), linked to the patient's schedule:
        the weeks stand for its occurrences, and rules on missed check-ins count scheduled ones only."""

        def start(session: Session) -> int:
            patient = session.get(Patient, self.patient_id)
            assert patient is not None
            check_in = check_ins.start_now(
                session, self.rt, patient, self.instrument.code, occurrence=(self.schedule_id, at)
            )
            return check_in.id

        return self._run_at(at, start)

    def _awaited(self, session: Session) -> str | None:
        """The item the patient's check-in is waiting for an answer to (None: no check-in in progress)."""
        check_in = check_ins.open_check_in(session, self.patient_id)
        if check_in is None or check_in.status != CheckInStatus.IN_PROGRESS:
            return None
        return check_in.current_item

    def _patient_texts(self, body: str, at: datetime) -> str | None:
        """Stored as the webhook stores it and processed as the worker does, in one transaction: a worker
        polling the same database never sees it waiting and never processes it at the real time. Returns
        the item asked next."""
        form = {"From": self.phone, "To": sender_number(self.rt), "Body": body, "MessageSid": _sid()}

        def arrive(session: Session) -> str | None:
            inbound.store_inbound(session, form, at)
            inbound.process_patient(session, self.rt, self.patient_id)
            return self._awaited(session)

        return self._run_at(at, arrive)

    # --- the nurse's side ----------------------------------------------------------------------------

    def _acknowledge_open(self, email: str, at: datetime) -> None:
        staff_id = self.staff[email]

        def ack(session: Session) -> None:
            for alert in session.scalars(self._alerts(AlertStatus.OPEN)):
                acknowledge(
                    session, alert, staff_id=staff_id, actor=f"staff:{staff_id}", now=at, via="dashboard"
                )

        self._run_at(at, ack)

    def _close_episodes(self, closed: datetime) -> None:
        """An older week's alerts: acknowledged 25 minutes in, resolved after the call three hours later."""
        self._acknowledge_open("nurse@demo.local", closed + timedelta(minutes=25))
        nurse = self.staff["nurse@demo.local"]
        done = closed + timedelta(hours=3)

        def resolve_all(session: Session) -> None:
            for alert in session.scalars(self._alerts(AlertStatus.ACKNOWLEDGED)):
                outcome = OLD_OUTCOMES[alert.id % len(OLD_OUTCOMES)]
                resolve(
                    session,
                    alert,
                    staff_id=nurse,
                    actor=f"staff:{nurse}",
                    now=done,
                    outcome=outcome,
                    note="Called the patient; plan agreed. (demo)",
                    rag="amber" if outcome == "same_day_visit" else "green",
                )

        self._run_at(done, resolve_all)

    def _alerts(self, status: AlertStatus) -> Select[tuple[Alert]]:
        return (
            select(Alert)
            .where(Alert.patient_id == self.patient_id, Alert.status == status)
            .order_by(Alert.id)
        )

    # --- the clock and the worker --------------------------------------------------------------------

    def _run_at(self, at: datetime, step: Callable[[Session], T]) -> T:
        """One step in its own transaction at `at`, then the tasks it asked for, as a worker runs them."""
        self.clock.at = at
        with self.rt.unit_of_work() as session:
            result = step(session)
        while self.worker.jobs:
            name, args, queue_name = self.worker.jobs.popleft()
            task = self._tasks.get(name)
            if task is None:
                self.worker.real.publish(name, *args, queue_name=queue_name)
                continue
            with self.rt.unit_of_work() as session:
                task(session, *args)
        return result

    @property
    def _tasks(self) -> dict[str, Callable[..., object]]:
        """The bodies of workers/tasks.py's tasks, for the ones a story asks for."""
        rt = self.rt
        return {
            "pro.process_inbound": lambda session, patient_id: inbound.process_patient(
                session, rt, patient_id
            ),
            "pro.score_check_in": lambda session, check_in_id: triage.score_check_in(
                session, rt, check_in_id
            ),
            "pro.send_message": self._send,
        }

    def _send(self, session: Session, message_id: int) -> None:
        """pro.send_message without its wait for a send slot: the outbox is no provider with a rate limit,
        and it cannot half-send, so the claim and the delivery share one transaction."""
        message = outbound.claim(session, self.rt, message_id)
        if message is not None:
            outbound.deliver(session, self.rt, message)
