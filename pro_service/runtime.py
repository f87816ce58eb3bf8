"""Everything a request or a task needs, built once per process from Settings (nothing at import)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.escalation import EscalationPolicy, load_policy
from alerts.lexicon import load_lexicons
from alerts.reading import Lexicon
from alerts.ruleset import Ruleset, RulesetError, load_rulesets
from config.settings import Settings, SettingsError
from pro_service.call_scripts import CallScripts, load_call_scripts
from pro_service.db import make_ingest_engine, make_main_engine, make_session_factory, unit_of_work
from pro_service.instruments import Instrument, InstrumentRegistry, load_instruments
from pro_service.sms.gateway import SmsGateway
from pro_service.sms.outbox import OutboxGateway
from pro_service.sms.ratelimit import SendRateLimiter, make_rate_limiter
from pro_service.texts import Texts, load_texts

if TYPE_CHECKING:  # the broker is only built in build_runtime: `alerts` imports this module without Celery
    from celery import Celery

    from pro_service.queue import TaskQueue


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    """What a process is for: the one choice that differs in how a process is wired."""

    WEB = "web"  # publishes after commit on a background thread: a request never waits on the broker
    WORKER = "worker"  # publishes inline before the task acks: a worker killed after its commit loses nothing
    CLI = "cli"


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    tasks: TaskQueue
    gateway: SmsGateway
    instruments: InstrumentRegistry
    rulesets: dict[tuple[str, int], Ruleset]
    texts: Texts
    policy: EscalationPolicy
    # The inbound webhook's own pool (ingest/handler.py): autocommit on PostgreSQL, so its one INSERT
    # commits as it returns. On SQLite it is `engine`. Connections open only when used.
    ingest_engine: Engine
    # The send cap (SEND_RATE_LIMITER): shared through Redis, or kept in this process.
    rate_limiter: SendRateLimiter
    role: Role = Role.CLI
    clock: Callable[[], datetime] = field(default=_utcnow)
    # What the nurse does on the call, per alert category (config/call_scripts.yaml).
    call_scripts: CallScripts = field(default_factory=CallScripts)

    def now(self) -> datetime:
        return self.clock()

    def unit_of_work(self) -> AbstractContextManager[Session]:
        """One transaction for a task, a CLI command or a sweep (db.unit_of_work)."""
        return unit_of_work(self.sessions)

    def dispose(self, *, close: bool = True) -> None:
        """Drop pooled connections (close=False after a fork: the parent still uses them)."""
        self.engine.dispose(close=close)
        if self.ingest_engine is not self.engine:
            self.ingest_engine.dispose(close=close)

    @cached_property
    def lexicons(self) -> dict[tuple[str, int], Lexicon]:
        """The symptom reader's vocabularies (config/reading/), loaded on first use: only workers read
        messages, and the dictionary behind the typo guard costs ~50 MB and ~1 s a process. The worker loads
        it at start-up (workers/celery.py), so a bad vocabulary stops the worker naming the file."""
        return load_lexicons(self.settings.CONFIG_DIR / "reading")

    @property
    def lexicon(self) -> Lexicon:
        """The active symptom vocabulary: the highest version (each finding records the one that read it)."""
        return max(self.lexicons.values(), key=lambda lexicon: lexicon.version)

    @property
    def ruleset(self) -> Ruleset:
        """The newest ruleset: what a patient with no pinned version is on (an alert records the one that
        fired it)."""
        return max(self.rulesets.values(), key=lambda r: r.version)

    @property
    def enrolment_ruleset(self) -> Ruleset:
        """What new patients are enrolled on: ENROL_RULESET_VERSION, or the newest (checked at start-up)."""
        wanted = self.settings.ENROL_RULESET_VERSION
        return next((r for r in self.rulesets.values() if r.version == wanted), self.ruleset)

    def ruleset_for(self, version: int | None) -> Ruleset:
        """The ruleset a patient is on (Patient.ruleset_version; None: the enrolment default). A pinned
        version no longer installed falls back to the newest rather than leaving the patient unscored."""
        if version is None:
            return self.enrolment_ruleset
        return next((r for r in self.rulesets.values() if r.version == version), self.ruleset)

    def ruleset_for_check_in(
        self, patient_version: int | None, instrument: str, instrument_version: int
    ) -> Ruleset:
        """The ruleset that scores a check-in: the patient's, if it is written for the questionnaire version
        the check-in asked; otherwise (the patient was moved mid-check-in) the newest one that is."""
        own = self.ruleset_for(patient_version)
        if (own.instrument, own.instrument_version) == (instrument, instrument_version):
            return own
        fitting = [
            r
            for r in self.rulesets.values()
            if (r.instrument, r.instrument_version) == (instrument, instrument_version)
        ]
        if not fitting:  # build_runtime refuses to start like this; never score with another's rules
            raise LookupError(f"no ruleset is written for {instrument} version {instrument_version}")
        return max(fitting, key=lambda r: r.version)

    def instrument_for(self, patient_version: int | None, code: str) -> Instrument | None:
        """The questionnaire version a new check-in of `code` asks this patient: the one the patient's
        ruleset is written for, else the newest."""
        ruleset = self.ruleset_for(patient_version)
        if ruleset.instrument == code and (code, ruleset.instrument_version) in self.instruments.by_key:
            return self.instruments.get(code, ruleset.instrument_version)
        return self.instruments.latest(code)

    def status_callback_url(self, message_id: int) -> str:
        return f"{self.settings.PUBLIC_BASE_URL}/twilio/status?mid={message_id}"


def make_gateway(settings: Settings) -> SmsGateway:
    if settings.SMS_BACKEND == "twilio":
        from pro_service.sms.twilio_gateway import TwilioGateway

        assert settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN  # checked by Settings
        return TwilioGateway(
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            api_base_url=settings.TWILIO_API_BASE_URL,
            from_number=settings.TWILIO_FROM_NUMBER,
            messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
        )
    return OutboxGateway()


def build_runtime(settings: Settings, role: Role, *, gateway: SmsGateway | None = None) -> Runtime:
    """The one place a process is wired (web, worker and beat, CLI)."""
    from pro_service.queue import TaskQueue, make_celery

    engine = make_main_engine(settings)
    sessions = make_session_factory(engine)
    celery = make_celery(settings)
    tasks = TaskQueue(celery, background=role is Role.WEB)
    tasks.install(sessions)
    instruments = load_instruments(settings.CONFIG_DIR / "instruments")
    rulesets = load_rulesets(
        settings.CONFIG_DIR / "rules",
        instruments.item_kinds(),
        instrument_items=instruments.items_by_version(),
        instrument_choices=instruments.choices_by_version(),
    )
    # Every questionnaire version must have rules written for it, or its open check-ins would be scored
    # by rules for other questions (a "yes" to a question no rule names is silent).
    written_for = {(r.instrument, r.instrument_version) for r in rulesets.values()}
    unscored = sorted(key for key in instruments.by_key if key not in written_for)
    if unscored:
        code, version = unscored[0]
        raise RulesetError(
            f"{settings.CONFIG_DIR / 'rules'}: no ruleset is written for questionnaire {code} version "
            f"{version}; keep the ruleset of every questionnaire version that is installed"
        )
    versions = sorted(r.version for r in rulesets.values())
    if settings.ENROL_RULESET_VERSION is not None and settings.ENROL_RULESET_VERSION not in versions:
        raise SettingsError(
            f"ENROL_RULESET_VERSION={settings.ENROL_RULESET_VERSION}: no such ruleset version is installed "
            f"(installed: {', '.join(map(str, versions))})"
        )
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        celery=celery,
        tasks=tasks,
        gateway=gateway or make_gateway(settings),
        instruments=instruments,
        rulesets=rulesets,
        texts=load_texts(
            settings.CONFIG_DIR / "texts.yaml",
            emergency_number=settings.EMERGENCY_NUMBER,
            crisis_line=settings.CRISIS_LINE,
            oncology_24h_phone=settings.ONCOLOGY_24H_PHONE or settings.CLINIC_PHONE,
        ),
        policy=load_policy(settings.CONFIG_DIR / "escalation.yaml"),
        ingest_engine=make_ingest_engine(settings) if engine.dialect.name == "postgresql" else engine,
        rate_limiter=make_rate_limiter(settings),
        role=role,
        call_scripts=load_call_scripts(settings.CONFIG_DIR / "call_scripts.yaml"),
    )
    from pro_service.services import event_webhook

    event_webhook.install(runtime, sessions)
    return runtime
