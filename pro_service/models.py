"""SQLAlchemy 2 typed models.

State machines live beside their tables as enums whose docstrings list the next states; the allowed
transitions are enforced in one place each (`MessageStatus.after_report`, `AlertStatus`, check-in services).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012  (SQLAlchemy reads it)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no PG enum types): adding a state is a code change, not a migration.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class StaffRole(enum.StrEnum):
    NURSE = "nurse"
    ADMIN = "admin"
    # Never a staff account (services/staff.py refuses it). Tokens had roles until issue 15; an integration
    # is now a token's client with scopes (services/tokens.py). Kept so old values still read.
    INTEGRATION = "integration"


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISCHARGED = "discharged"


class CheckInStatus(enum.StrEnum):
    """pending → in_progress → completed | expired | cancelled.

    pending: materialised, first question not yet sent (waiting out quiet hours). in_progress: a question is
    out. completed: every item answered or skipped. expired: deadline passed; unanswered items are `missing`.
    cancelled: the patient opted out or was discharged.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (CheckInStatus.PENDING, CheckInStatus.IN_PROGRESS)


OPEN_CHECK_IN_STATUSES = ("pending", "in_progress")


class AnswerStatus(enum.StrEnum):
    ANSWERED = "answered"
    UNREADABLE = "unreadable"  # two misses: raw text kept, a nurse reviews it
    MISSING = "missing"  # the check-in expired before it was answered
    SKIPPED = "skipped"  # skip logic


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(enum.StrEnum):
    """Inbound: received → processed.

    Outbound, ours until the provider has it: queued → sending → the provider's state, or → cancelled.
    queued: waiting for a worker (a 429 puts it back here). sending: a worker is in the provider call.
    sending → uncertain when the provider answered 5xx or the network failed mid-call: before sending again
    the provider is asked whether it has the message (Twilio has no idempotency key); it has → its state,
    it has not → queued. Only queued, sending and uncertain (`sendable`) rows are ever sent.

    The provider's: accepted → sent → delivered | undelivered | failed (see `from_provider`: Twilio's own
    `queued` and `sending` are our `accepted`, not our `queued` and `sending`). A provider report moves a row
    only by `after_report`: out of order, a status only moves forward (a late `sent` never overwrites
    `delivered`), and never back to a sendable state. `failed` is also where a send ends that we will not
    retry (opted out, invalid number); `cancelled`, one we decided not to send (expired, superseded).
    """

    RECEIVED = "received"
    PROCESSED = "processed"
    QUEUED = "queued"
    SENDING = "sending"
    UNCERTAIN = "uncertain"  # the provider answered 5xx or the call failed: it may or may not have it
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def sendable(self) -> bool:
        """No provider copy is known: the row may still be sent (and must be, unless stood down)."""
        return self in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNCERTAIN)

    @classmethod
    def from_provider(cls, status: str) -> MessageStatus | None:
        """Our state for a status Twilio reports for an outbound message; None for one that is not about an
        outbound message (`receiving`, `received`) or that we do not know."""
        return _PROVIDER_STATUS.get(status.strip().lower())

    def after_report(self, reported: MessageStatus, *, copy_known: bool) -> MessageStatus | None:
        """The state after the provider reports `reported` (a `from_provider` state) for this message;
        None: keep the current one. `copy_known`: the row already names the provider's copy (its SID).

        A report is proof the provider has (or had) the message: a row still ours to send takes the reported
        state and leaves the sendable states for good; so does a row we stood down (cancelled, or failed
        after the last retry) before learning that an earlier attempt had reached the provider after all.
        Otherwise the status only moves forward.
        """
        if reported not in _PROVIDER_RANK:
            return None
        if self.sendable:
            return reported
        if self in (MessageStatus.CANCELLED, MessageStatus.FAILED) and not copy_known:
            return reported
        if self not in _PROVIDER_RANK:
            return None  # inbound
        return reported if _PROVIDER_RANK[reported] > _PROVIDER_RANK[self] else None


# Where the provider's states stand in the life of a message; equal ranks are alternative ends.
_PROVIDER_RANK = {
    MessageStatus.ACCEPTED: 2,
    MessageStatus.SENT: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.UNDELIVERED: 4,
    MessageStatus.FAILED: 4,
    MessageStatus.CANCELLED: 4,
}

# Twilio's message statuses (the API's `message_enum_status`) for an outbound message, in our states.
# accepted, scheduled, queued and sending all mean "Twilio has it and has not handed it to the carrier yet".
_PROVIDER_STATUS = {
    "accepted": MessageStatus.ACCEPTED,
    "scheduled": MessageStatus.ACCEPTED,
    "queued": MessageStatus.ACCEPTED,
    "sending": MessageStatus.ACCEPTED,
    "sent": MessageStatus.SENT,
    "partially_delivered": MessageStatus.SENT,  # delivered in part: a final status may follow
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,  # WhatsApp: read implies delivered
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.CANCELLED,  # a scheduled message cancelled at Twilio: it will not go out
}


class MessageKind(enum.StrEnum):
    REPLY = "reply"  # inbound from a patient
    QUESTION = "question"
    REPROMPT = "reprompt"
    REMINDER = "reminder"
    ACKNOWLEDGEMENT = "acknowledgement"
    SAFETY = "safety"
    HELP = "help"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    CLOSING = "closing"
    PAGE = "page"
    STAFF_REPLY = "staff_reply"  # inbound from a staff phone (ACK <ref>)
    UNKNOWN_SENDER = "unknown_sender"


class AlertStatus(enum.StrEnum):
    """open → acknowledged → resolved; open → resolved is allowed (resolved by a nurse who acted)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class CareTeam(Base):
    __tablename__ = "care_teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    phone: Mapped[str | None] = mapped_column(String(32))
    # The team's MSCC coordinator / acute oncology line (E.164): shown to the nurse on the alert page, the
    # number to call when a suspected cord compression needs same-day imaging and a decision.
    acute_oncology_phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    patients: Mapped[list[Patient]] = relationship(back_populates="care_team")


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_staff_users_oidc_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[StaffRole] = mapped_column(_enum(StaffRole))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by an administrator's create or reset (a temporary password): sign-in leads only to the change page.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Second factor (services/mfa.py): secrets encrypted with a key derived from SECRET_KEY, never shown again
    # after enrolment; `totp_last_step` is the time step of the last accepted code (no code works twice).
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(255))
    totp_confirmed_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Single sign-on (services/sso.py): the identity provider's account this person signs in as.
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))


class StaffSession(Base):
    """One signed-in browser. The cookie carries only a random id; this row (its hash) says whether it is
    still alive, so logout, a password change, a deactivation or an administrator ends it for good."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 hex of the cookie's token: a copy of the table signs nobody in.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    # A fingerprint of the password hash it was opened with: a password set by any path ends it.
    password_stamp: Mapped[str] = mapped_column(String(16))


class CareTeamMember(Base):
    __tablename__ = "care_team_members"

    care_team_id: Mapped[int] = mapped_column(
        ForeignKey("care_teams.id", ondelete="CASCADE"), primary_key=True
    )
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64), unique=True)
    given_name: Mapped[str] = mapped_column(String(120))
    family_name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(32), unique=True)  # E.164
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    care_team_id: Mapped[int] = mapped_column(ForeignKey("care_teams.id"), index=True)
    status: Mapped[PatientStatus] = mapped_column(_enum(PatientStatus), default=PatientStatus.ACTIVE)
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    # Set when the provider says the number cannot receive SMS; an administrator must fix the record.
    phone_problem: Mapped[str | None] = mapped_column(String(200))
    # The red-flag ruleset version the patient is on (it names the questionnaire version they are asked).
    # None follows the newest installed version; enrolment pins it, and moving a patient to another
    # version is a recorded administrator action (services/protocol.py), never a side effect of an upgrade.
    ruleset_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    care_team: Mapped[CareTeam] = relationship(back_populates="patients")

    @property
    def can_receive_sms(self) -> bool:
        return (
            self.sms_consent
            and self.opted_out_at is None
            and self.status != PatientStatus.DISCHARGED
            and self.phone_problem is None
        )


class Schedule(Base):
    __tablename__ = "schedules"
    # The tick selects `active AND (next_due_at IS NULL OR next_due_at <= now)`.
    __table_args__ = (Index("ix_schedules_active_next_due", "active", "next_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    instrument_code: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str] = mapped_column(String(500))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When beat must next look at this schedule (its next occurrence); NULL: on the next tick. Everything
    # that changes what the schedule produces (rule, dates, instrument, active, the patient's time zone)
    # resets it to NULL. See services/dispatch.py.
    next_due_at: Mapped[datetime | None]


class CheckIn(Base):
    __tablename__ = "check_ins"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_for", name="uq_check_ins_schedule_due"),
        # One open check-in per patient, enforced by the database.
        Index(
            "uq_check_ins_one_open_per_patient",
            "patient_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'in_progress')"),
            sqlite_where=text("status IN ('pending', 'in_progress')"),
        ),
        Index("ix_check_ins_status_deadlines", "status", "next_deadline_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    instrument_code: Mapped[str] = mapped_column(String(64))
    instrument_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[CheckInStatus] = mapped_column(_enum(CheckInStatus), default=CheckInStatus.PENDING)
    scheduled_for: Mapped[datetime | None]
    send_after: Mapped[datetime | None]  # quiet hours push the first question here
    started_at: Mapped[datetime | None]
    current_item: Mapped[str | None] = mapped_column(String(64))
    misses_on_current: Mapped[int] = mapped_column(Integer, default=0)
    last_question_at: Mapped[datetime | None]
    reminder_sent_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # The earliest of the timers beat must look at (send, reminder, expiry): one indexed column to sweep.
    next_deadline_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    scored_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    answers: Mapped[list[Answer]] = relationship(back_populates="check_in", order_by="Answer.id")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("check_in_id", "item_code", name="uq_answers_check_in_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    check_in_id: Mapped[int] = mapped_column(ForeignKey("check_ins.id", ondelete="CASCADE"), index=True)
    item_code: Mapped[str] = mapped_column(String(64))
    status: Mapped[AnswerStatus] = mapped_column(_enum(AnswerStatus))
    value: Mapped[Any | None] = mapped_column(JSON)
    raw_text: Mapped[str | None] = mapped_column(Text)
    question: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)

    check_in: Mapped[CheckIn] = relationship(back_populates="answers")


# Replies stored by the webhook and not yet claimed by a worker's wake-up poll (both kinds are inbound
# only). A literal predicate, not bound parameters, so PostgreSQL matches the query to the partial index
# below even in a generic plan.
INBOUND_TO_WAKE = text("status = 'received' AND attempts = 0 AND kind IN ('reply', 'staff_reply')")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_patient_created", "patient_id", "id"),
        Index("ix_messages_direction_status", "direction", "status"),
        # The workers' 0.1 s poll (services/inbound.py::wake_received): only replies not yet claimed, so it
        # stays tiny however many messages (e.g. unknown senders', kept `received` for review) pile up.
        Index(
            "ix_messages_inbound_to_wake",
            "id",
            postgresql_where=INBOUND_TO_WAKE,
            sqlite_where=INBOUND_TO_WAKE,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    check_in_id: Mapped[int | None] = mapped_column(ForeignKey("check_ins.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    item_code: Mapped[str | None] = mapped_column(String(64))
    # The sender: a number, or the Messaging Service SID (MG…, 34 characters) when Twilio picks the number
    # from the service's pool (only its callbacks name the number it picked).
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text, default="")
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    media: Mapped[list[Any] | None] = mapped_column(JSON)
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Idempotency for outbound rows created by tasks that may run twice (e.g. "page:<alert>:<level>:<staff>").
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        # One ongoing alert per (patient, category); new evidence is merged into it.
        Index(
            "uq_alerts_one_open_per_category",
            "patient_id",
            "category",
            unique=True,
            postgresql_where=text("status IN ('open', 'acknowledged')"),
            sqlite_where=text("status IN ('open', 'acknowledged')"),
        ),
        Index("ix_alerts_status_urgency_opened", "status", "urgency_rank", "opened_at"),
        Index("ix_alerts_escalation", "status", "next_escalation_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)  # short, PHI-free reference used in pages
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    check_in_id: Mapped[int | None] = mapped_column(ForeignKey("check_ins.id", ondelete="SET NULL"))
    category: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(16))
    urgency_rank: Mapped[int] = mapped_column(Integer)  # Urgency(urgency).rank (alerts/rules.py): sortable
    status: Mapped[AlertStatus] = mapped_column(_enum(AlertStatus), default=AlertStatus.OPEN)
    ruleset: Mapped[str] = mapped_column(String(64))
    ruleset_version: Mapped[int] = mapped_column(Integer)
    rule_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    outcome: Mapped[str | None] = mapped_column(String(64))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    # The nurse's UKONS triage grade after the call (red | amber | green), recorded on resolve.
    outcome_rag: Mapped[str | None] = mapped_column(String(8))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None]
    safety_message_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Alerts are episodes: `notice` counts the times new urgent evidence notified again (each notice has
    # its own safety text and pages); an episode raised after one was resolved names it here.
    notice: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    previous_alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    # Who owns it now (issue 14): a nurse on the team, on call for it, or an administrator; None: nobody yet.
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime | None]

    events: Mapped[list[AlertEvent]] = relationship(back_populates="alert", order_by="AlertEvent.id")


class AlertEventKind(enum.StrEnum):
    """What happened to an alert: a line of its timeline (AlertEvent.kind). The words the dashboard shows
    for each are `labels.ALERT_EVENT_LABELS` (a test checks every kind has one)."""

    OPENED = "opened"
    EVIDENCE_ADDED = "evidence_added"
    EVIDENCE_WITHDRAWN = "evidence_withdrawn"  # a lab result corrected or entered in error
    URGENCY_RAISED = "urgency_raised"
    NEW_SINCE_ACKNOWLEDGED = "new_since_acknowledged"
    PAGED = "paged"
    NO_ON_CALL = "no_on_call"
    NOBODY_PAGED = "nobody_paged"
    SAFETY_MESSAGE = "safety_message"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    NOTE = "note"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AlertEventKind] = mapped_column(_enum(AlertEventKind))
    actor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    actor: Mapped[str] = mapped_column(String(120), default="system")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    alert: Mapped[Alert] = relationship(back_populates="events")


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # "staff:12", "system", or through an API token "staff:12 (token 7)", "client:EHR (token 7)"
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))  # view_patient, create_patient, acknowledge_alert, ...
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token with exactly one owner (issue 15): a staff member, whose current role and care teams it
    acts with, or a named integration client limited to `scopes` (services/tokens.py names them)."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("(staff_id IS NULL) <> (client_name IS NULL)", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    client_name: Mapped[str | None] = mapped_column(String(60))
    scopes: Mapped[str] = mapped_column(String(200), default="", server_default="")  # space-separated
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex; the token is never stored
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    staff: Mapped[StaffUser | None] = relationship()


class OnCallShift(Base):
    """Who is paged for a care team, at which escalation level, between two instants.

    Level 1 is paged first; each unacknowledged deadline moves the alert to the next level that has
    someone on shift. Rotas are entered in the team's time zone and stored in UTC.
    """

    __tablename__ = "on_call_shifts"
    __table_args__ = (Index("ix_on_call_team_window", "care_team_id", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    care_team_id: Mapped[int] = mapped_column(ForeignKey("care_teams.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(Integer, default=1)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the response it got: a retry with the same key replays it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key", name="uq_idempotency_keys_token_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboundEvent(Base):
    """A signed JSON event for the hospital's system (alert opened / acknowledged / resolved): an outbox row
    written in the same transaction as the change, delivered by a worker with retries."""

    __tablename__ = "outbound_events"
    __table_args__ = (Index("ix_outbound_events_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending → delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class LabSource(enum.StrEnum):
    FHIR = "fhir"  # POST /fhir/Observation, POST /fhir (transaction Bundle)
    HL7 = "hl7"  # POST /hl7/oru (HL7 v2 ORU^R01)


class LabStatus(enum.StrEnum):
    """A result's status as the lab reports it (FHIR ObservationStatus; HL7 v2 OBX-11 mapped to it).

    A result only moves forward: preliminary → final → amended | corrected | entered-in-error, and a version
    arriving with a lower status than the current one (a late preliminary, a retransmitted original after
    a correction) is kept as history without replacing it (services/labs.py). entered-in-error withdraws
    the value; a later amended or corrected version may reinstate one.
    """

    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"
    ENTERED_IN_ERROR = "entered-in-error"

    @property
    def rank(self) -> int:
        return _LAB_STATUS_RANK[self]


_LAB_STATUS_RANK = {
    LabStatus.PRELIMINARY: 1,
    LabStatus.FINAL: 2,
    LabStatus.AMENDED: 3,
    LabStatus.CORRECTED: 3,
    LabStatus.ENTERED_IN_ERROR: 3,
}


class LabResult(Base):
    """One version of one lab result. A result is identified by (source, source_key, code); each version the
    lab sends with different content is a row, and the current one is the version nothing replaced
    (`replaced_by_id` NULL). Rows are never deleted: an amended or corrected version replaces the earlier
    one, an entered-in-error version withdraws the value (`withdrawn_at` on every earlier version).

    Idempotency: the same content for the same result is stored once (`content_hash`, unique per result).
    Writers hold the patient's row lock (services/labs.py), so a result has one current version.
    """

    __tablename__ = "lab_results"
    __table_args__ = (
        UniqueConstraint("source", "source_key", "code", "content_hash", name="uq_lab_results_version"),
        Index("ix_lab_results_patient_effective", "patient_id", "effective_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    source: Mapped[LabSource] = mapped_column(_enum(LabSource))
    # The sender's identity of the result: FHIR "<identifier system>|<value>" (or "id:<id>", or
    # "content:<hash>" when the Observation has neither); HL7 "<filler order number>|<OBX-3>|<OBX-4>".
    # A result the service computed from others carries its first input's key with "#adjusted".
    source_key: Mapped[str] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(16))  # LOINC
    display: Mapped[str] = mapped_column(String(200))
    status: Mapped[LabStatus] = mapped_column(_enum(LabStatus))
    value: Mapped[float | None]  # as reported (None: none sent, e.g. entered in error)
    unit: Mapped[str | None] = mapped_column(String(64))  # as reported (UCUM, or the lab's spelling)
    canonical_value: Mapped[float | None]  # in alerts.labs.CANONICAL_UNIT[code]; None when withdrawn
    canonical_unit: Mapped[str] = mapped_column(String(16))
    reference_range: Mapped[str | None] = mapped_column(String(120))  # as the lab reported it
    interpretation: Mapped[str | None] = mapped_column(String(16))  # the lab's flag: H, L, N, HH, LL, A…
    effective_at: Mapped[datetime]  # when the sample was taken
    issued_at: Mapped[datetime | None]  # when the lab released the result
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Computed by the service (adjusted calcium from total calcium and albumin): `raw` says from what and how.
    derived: Mapped[bool] = mapped_column(Boolean, default=False)
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("lab_results.id"))
    withdrawn_at: Mapped[datetime | None]
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the payload as received


class PatientProfile(Base):
    """What the care team knows about a patient beyond enrolment: the baseline the rules judge "new" and
    "worse" against (alerts.rules.Baseline; None is "not recorded", never "normal") and what the nurse
    needs on the call (treatment, carer, ceiling of care). One row per patient, written only through
    services/clinical_profile.py, which audits every field changed."""

    __tablename__ = "patient_profiles"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    chronic_neuropathy: Mapped[bool | None] = mapped_column(Boolean)
    continence: Mapped[str | None] = mapped_column(String(32))  # one of alerts.rules.CONTINENCE_STATES
    usual_pain: Mapped[int | None] = mapped_column(Integer)  # 0-10
    spinal_levels: Mapped[str | None] = mapped_column(String(120))
    current_treatment: Mapped[str | None] = mapped_column(String(500))
    bone_agent: Mapped[str | None] = mapped_column(String(120))
    steroids: Mapped[str | None] = mapped_column(String(200))
    metastatic_sites: Mapped[str | None] = mapped_column(String(500))
    analgesia: Mapped[str | None] = mapped_column(String(500))
    ceiling_of_care: Mapped[str | None] = mapped_column(String(500))
    carer_name: Mapped[str | None] = mapped_column(String(120))
    carer_relation: Mapped[str | None] = mapped_column(String(60))
    carer_phone: Mapped[str | None] = mapped_column(String(32))  # E.164
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
