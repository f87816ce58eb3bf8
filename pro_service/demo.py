"""Demo data for the embedded default: care teams, staff, patients with a few weeks of history.

A newcomer who signs in sees a live queue at once: six weeks of weekly check-ins with answers and the
message threads behind them, alerts of every urgency (some open, some acknowledged, older ones resolved)
raised by the real red-flag rules from those answers, and an on-call rota. Idempotent: a second run adds
nothing to a patient who already has history (it only tops up the rota when it runs out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alerts.rules import AnswerView, Finding, History, callback_request, evaluate, evaluate_message
from pro_service.models import (
    Alert,
    AlertEvent,
    AlertStatus,
    Answer,
    AnswerStatus,
    ApiToken,
    CareTeam,
    CareTeamMember,
    CheckIn,
    CheckInStatus,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    OnCallShift,
    Patient,
    Schedule,
    StaffRole,
    StaffUser,
    utcnow,
)
from pro_service.replies import Parsed, parse_reply
from pro_service.runtime import Runtime
from pro_service.scheduling import next_occurrence
from pro_service.services.outbound import sender_number
from pro_service.services.patients import create_care_team, enrol_patient
from pro_service.services.staff import create_staff
from pro_service.services.tokens import PREFIX, create_token

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
    # Urgent, open: "yes" to new weakness, 12 minutes ago.
    "DEMO-002": Story(
        pains=(2, 2, 3, 3, 3, 4),
        latest={"weakness": "Yes", "pain_site": "3"},
        latest_minutes_ago=12,
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
    # Same day, acknowledged: texted NURSE.
    "DEMO-007": Story(
        pains=(1, 1, 0, 1, 1, 1),
        acknowledged_by="nurse@demo.local",
        message="NURSE can someone call me about my zoledronic acid appointment",
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


def seed(rt: Runtime) -> Iterator[str]:
    """Idempotent: a second run adds nothing and prints the same logins."""
    now = rt.now()
    with rt.sessions() as session, session.begin():
        teams = []
        for team_name, tz, team_phone in DEMO_TEAMS:
            team = session.scalar(select(CareTeam).where(CareTeam.name == team_name))
            if team is None:
                team = create_care_team(session, name=team_name, timezone=tz, phone=team_phone)
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
                for team in teams:
                    session.add(CareTeamMember(care_team_id=team.id, staff_id=person.id))
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
                _History(session, rt, patient, schedule, story, staff, now).write()
        token = _demo_token(session, rt.settings.SECRET_KEY, staff["admin@demo.local"])
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
    """Level 1 the demo nurse, level 2 the charge nurse, for two weeks from yesterday (team time)."""
    covered = session.scalar(
        select(OnCallShift.id).where(
            OnCallShift.care_team_id == team.id, OnCallShift.ends_at > now + timedelta(days=1)
        )
    )
    if covered is not None:
        return
    zone = ZoneInfo(team.timezone)
    start = (now.astimezone(zone) - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    for level, email in ((1, "nurse@demo.local"), (2, "charge@demo.local")):
        session.add(
            OnCallShift(
                care_team_id=team.id,
                staff_id=staff[email].id,
                level=level,
                starts_at=start,
                ends_at=start + timedelta(days=15),
            )
        )


def _sid() -> str:
    return "SMdemo" + secrets.token_hex(13)


class _History:
    """Writes one patient's weeks: check-ins, answers, the texts behind them, and the alerts they raise."""

    def __init__(
        self,
        session: Session,
        rt: Runtime,
        patient: Patient,
        schedule: Schedule,
        story: Story,
        staff: dict[str, StaffUser],
        now: datetime,
    ) -> None:
        self.session, self.rt, self.patient, self.schedule = session, rt, patient, schedule
        self.story, self.staff, self.now = story, staff, now
        self.instrument = rt.instrument_for(patient.ruleset_version, schedule.instrument_code)
        assert self.instrument is not None and self.instrument.version == 2, "stories are written for v2"
        self.ruleset = rt.ruleset_for(patient.ruleset_version)
        self.sender = sender_number(rt)

    def write(self) -> None:
        previous_pain: int | None = None
        silent_streak = 0
        latest_closed = self.now - timedelta(minutes=self.story.latest_minutes_ago)
        for week, pain in enumerate(self.story.pains):
            weeks_back = len(self.story.pains) - 1 - week
            closed = latest_closed - timedelta(weeks=weeks_back)
            started = closed - timedelta(minutes=9 + week % 3)
            latest = weeks_back == 0
            if pain is None:
                silent_streak += 1
                check_in = self._expired(started)
                findings = evaluate(
                    self._views(check_in),
                    History(previous_pain, silent_streak),
                    self.ruleset,
                    complete=True,
                )
            else:
                silent_streak = 0
                replies = {**WELL, "pain_worst": str(pain), **self.story.earlier.get(week, {})}
                if latest:
                    replies.update(self.story.latest)
                if self.patient.language == "es":
                    replies = {k: {"yes": "si", "Yes": "Si"}.get(v, v) for k, v in replies.items()}
                check_in = self._completed(started, closed, replies)
                findings = evaluate(
                    self._views(check_in), History(previous_pain, 0), self.ruleset, complete=True
                )
                previous_pain = pain
            check_in.scored_at = check_in.closed_at
            for finding in findings:
                self._alert(finding, check_in.closed_at or closed, check_in_id=check_in.id, open_=latest)
        if self.story.message:
            self._message(self.story.message, self.now - timedelta(minutes=self.story.message_minutes_ago))

    # --- rows ----------------------------------------------------------------------------------------

    def _text(
        self, direction: Direction, kind: MessageKind, body: str, at: datetime, **extra: Any
    ) -> Message:
        inbound = direction == Direction.INBOUND
        message = Message(
            direction=direction,
            kind=kind,
            status=MessageStatus.PROCESSED if inbound else MessageStatus.DELIVERED,
            patient_id=extra.pop("patient_id", self.patient.id),
            from_number=self.patient.phone if inbound else self.sender,
            to_number=self.sender if inbound else extra.pop("to", self.patient.phone),
            body=body,
            twilio_sid=_sid(),
            created_at=at,
            updated_at=at,
            processed_at=at if inbound else None,
            sent_at=None if inbound else at,
            **extra,
        )
        self.session.add(message)
        self.session.flush()
        return message

    def _check_in(self, started: datetime) -> CheckIn:
        assert self.instrument is not None
        check_in = CheckIn(
            patient_id=self.patient.id,
            schedule_id=self.schedule.id,
            instrument_code=self.instrument.code,
            instrument_version=self.instrument.version,
            status=CheckInStatus.IN_PROGRESS,
            scheduled_for=started,
            started_at=started,
            created_at=started,
            expires_at=started + timedelta(minutes=self.rt.settings.CHECK_IN_EXPIRES_AFTER_MINUTES),
        )
        self.session.add(check_in)
        self.session.flush()
        return check_in

    def _completed(self, started: datetime, closed: datetime, replies: dict[str, str]) -> CheckIn:
        assert self.instrument is not None
        check_in = self._check_in(started)
        lang = self.patient.language
        items = self.instrument.items
        step = (closed - started) / (len(items) * 2)
        at = started
        values: dict[str, Any] = {}
        for item in items:
            if item.skip_if is not None and values.get(item.skip_if.item) == item.skip_if.equals:
                self.session.add(
                    Answer(
                        check_in_id=check_in.id,
                        item_code=item.code,
                        status=AnswerStatus.SKIPPED,
                        answered_at=at,
                    )
                )
                continue
            question = self.instrument.render_question(item.code, lang)
            self._text(
                Direction.OUTBOUND,
                MessageKind.QUESTION,
                question,
                at,
                check_in_id=check_in.id,
                item_code=item.code,
            )
            at += step
            raw = replies[item.code]
            reply = self._text(
                Direction.INBOUND, MessageKind.REPLY, raw, at, check_in_id=check_in.id, item_code=item.code
            )
            at += step
            parsed = parse_reply(raw, item.spec, lang)
            value = parsed.value if isinstance(parsed, Parsed) else None
            values[item.code] = value
            self.session.add(
                Answer(
                    check_in_id=check_in.id,
                    item_code=item.code,
                    status=AnswerStatus.ANSWERED if isinstance(parsed, Parsed) else AnswerStatus.UNREADABLE,
                    value=value,
                    raw_text=raw,
                    question=question,
                    message_id=reply.id,
                    answered_at=at,
                )
            )
        closing = self.rt.texts.get("closing", lang, clinic_phone=self._clinic_phone())
        self._text(Direction.OUTBOUND, MessageKind.CLOSING, closing, closed, check_in_id=check_in.id)
        check_in.status = CheckInStatus.COMPLETED
        check_in.closed_at = closed
        check_in.current_item = None
        self.session.flush()
        self.session.expire(check_in, ["answers"])
        return check_in

    def _expired(self, started: datetime) -> CheckIn:
        assert self.instrument is not None
        check_in = self._check_in(started)
        lang = self.patient.language
        first = self.instrument.items[0].code
        question = self.instrument.render_question(first, lang)
        self._text(
            Direction.OUTBOUND,
            MessageKind.QUESTION,
            question,
            started,
            check_in_id=check_in.id,
            item_code=first,
        )
        reminder_at = started + timedelta(minutes=self.rt.settings.REMINDER_AFTER_MINUTES)
        self._text(
            Direction.OUTBOUND,
            MessageKind.REMINDER,
            self.rt.texts.get("reminder_prefix", lang) + question,
            reminder_at,
            check_in_id=check_in.id,
            item_code=first,
        )
        closed = check_in.expires_at or started
        for item in self.instrument.items:
            self.session.add(
                Answer(
                    check_in_id=check_in.id,
                    item_code=item.code,
                    status=AnswerStatus.MISSING,
                    answered_at=closed,
                )
            )
        check_in.status = CheckInStatus.EXPIRED
        check_in.reminder_sent_at = reminder_at
        check_in.closed_at = closed
        self.session.flush()
        self.session.expire(check_in, ["answers"])
        return check_in

    def _views(self, check_in: CheckIn) -> dict[str, AnswerView]:
        return {
            a.item_code: AnswerView(a.item_code, a.status.value, a.value, a.raw_text, a.question)
            for a in check_in.answers
        }

    def _clinic_phone(self) -> str:
        return self.patient.care_team.phone or self.rt.settings.CLINIC_PHONE

    def _message(self, text: str, at: datetime) -> None:
        lang = self.patient.language
        message = self._text(Direction.INBOUND, MessageKind.REPLY, text, at)
        if text.upper().startswith(("NURSE", "CALL")):
            finding = callback_request(self.ruleset, text)
            answer = self.rt.texts.get("callback", lang)
        else:
            finding = evaluate_message(text, self.ruleset, source="message")
            answer = self.rt.texts.get("acknowledgement", lang, clinic_phone=self._clinic_phone())
        self._text(Direction.OUTBOUND, MessageKind.ACKNOWLEDGEMENT, answer, at + timedelta(seconds=20))
        self._alert(finding, at, message_id=message.id, open_=True)

    def _alert(
        self,
        finding: Finding,
        at: datetime,
        *,
        check_in_id: int | None = None,
        message_id: int | None = None,
        open_: bool,
    ) -> None:
        from pro_service.services.triage import new_ref

        evidence = []
        for ev in finding.evidence:
            item = asdict(ev)
            item.update(
                rule_id=finding.rule_id,
                ruleset=finding.ruleset,
                ruleset_version=finding.ruleset_version,
                check_in_id=check_in_id,
                message_id=message_id,
            )
            evidence.append(item)
        alert = Alert(
            ref=new_ref(),
            patient_id=self.patient.id,
            check_in_id=check_in_id,
            category=finding.category,
            urgency=finding.urgency.value,
            urgency_rank=finding.urgency.rank,
            status=AlertStatus.OPEN,
            ruleset=finding.ruleset,
            ruleset_version=finding.ruleset_version,
            rule_ids=[finding.rule_id, *finding.other_rule_ids],
            evidence=evidence,
            opened_at=at,
            updated_at=at,
        )
        self.session.add(alert)
        self.session.flush()
        events = [
            AlertEvent(alert_id=alert.id, kind="opened", created_at=at, detail={"rule_id": finding.rule_id})
        ]
        nurse = self.staff["nurse@demo.local"]
        if alert.urgency == "urgent":
            safety = self.rt.texts.get("safety", self.patient.language, clinic_phone=self._clinic_phone())
            self._text(
                Direction.OUTBOUND, MessageKind.SAFETY, safety, at + timedelta(seconds=5), alert_id=alert.id
            )
            alert.safety_message_sent = True
            events.append(AlertEvent(alert_id=alert.id, kind="safety_message", created_at=at, detail={}))
        if alert.urgency in ("urgent", "same_day"):
            alert.escalation_level = 1
            events.append(
                AlertEvent(
                    alert_id=alert.id,
                    kind="paged",
                    created_at=at + timedelta(seconds=5),
                    detail={"step": 1, "level": 1, "staff_ids": [nurse.id]},
                )
            )
        ack_email = self.story.acknowledged_by if open_ else "nurse@demo.local"
        if ack_email is not None:
            acker = self.staff[ack_email]
            acked = at + timedelta(minutes=4 if open_ else 25)
            alert.status = AlertStatus.ACKNOWLEDGED
            alert.acknowledged_at, alert.acknowledged_by_id = acked, acker.id
            events.append(
                AlertEvent(
                    alert_id=alert.id,
                    kind="acknowledged",
                    actor_staff_id=acker.id,
                    actor=f"staff:{acker.id}",
                    created_at=acked,
                    detail={"via": "dashboard"},
                )
            )
        if open_ and alert.status == AlertStatus.OPEN and alert.urgency != "routine":
            after = self.rt.policy.for_urgency(alert.urgency).escalate_after_minutes
            alert.next_escalation_at = self.now + timedelta(minutes=after or 15)
        if not open_:
            done = at + timedelta(hours=3)
            outcome = OLD_OUTCOMES[alert.id % len(OLD_OUTCOMES)]
            alert.status = AlertStatus.RESOLVED
            alert.resolved_at, alert.resolved_by_id = done, nurse.id
            alert.outcome = outcome
            alert.outcome_note = "Called the patient; plan agreed. (demo)"
            events.append(
                AlertEvent(
                    alert_id=alert.id,
                    kind="resolved",
                    actor_staff_id=nurse.id,
                    actor=f"staff:{nurse.id}",
                    created_at=done,
                    detail={"outcome": outcome, "note": alert.outcome_note},
                )
            )
        self.session.add_all(events)
