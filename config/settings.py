"""Typed settings, read from the environment once at start-up.

A bad or missing value stops start-up with a message naming the variable (`SettingsError`).
Tests build `Settings(...)` directly instead of editing `os.environ`.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'var' / 'pro-service.sqlite3'}"
_EMERGENCY_NUMBER = re.compile(r"[0-9]{2,6}")
_PHONE = re.compile(r"[0-9+\- ]{2,20}")


class SettingsError(RuntimeError):
    """Start-up configuration problem; the message names the environment variable."""


def _phone_number(value: str) -> str:
    value = value.strip()
    if not _PHONE.fullmatch(value) or sum(ch.isdigit() for ch in value) < 2:
        raise ValueError("must be a phone number or short code: 2-20 characters, digits, spaces, + and -")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore", frozen=True)

    DATABASE_URL: str = DEFAULT_DATABASE_URL
    # Unset = the embedded default: Celery on an SQLite-backed broker, no server to install.
    REDIS_URL: str | None = None
    SECRET_KEY: str = Field(min_length=16)

    SMS_BACKEND: Literal["outbox", "twilio"] = "outbox"
    TWILIO_ACCOUNT_SID: str | None = None
    TWILIO_AUTH_TOKEN: str | None = None
    TWILIO_FROM_NUMBER: str | None = None
    TWILIO_MESSAGING_SERVICE_SID: str | None = None
    TWILIO_API_BASE_URL: str = "https://api.twilio.com"
    # Seconds a question may wait in Twilio's queue before it is dropped rather than delivered late.
    TWILIO_VALIDITY_PERIOD: int = Field(default=14400, ge=1, le=36000)
    PUBLIC_BASE_URL: str = "http://127.0.0.1:5000"

    # Reliability knobs.
    SWEEP_STUCK_AFTER_SECONDS: int = Field(default=60, ge=1)
    # How often each worker looks for replies the webhook stored (the web never calls the broker).
    INBOUND_POLL_SECONDS: float = Field(default=0.1, gt=0, le=10)
    BROKER_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0, le=30)
    # The longest one insert of the inbound webhook waits on PostgreSQL (a lock, a hung server) before
    # answering 503. A reply may wait for the insert in flight before its own: 2 × 5 s stays inside the
    # 15 s after which Twilio gives up on a webhook.
    WEBHOOK_DB_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    # Every other wait on PostgreSQL (web requests, tasks, beat): a statement, a lock, a silent server. Longer
    # than any query the product runs (the dashboard at 100,000 alerts: well under a second), shorter than
    # a nurse would wait for a page.
    DB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0, le=3600)
    SEND_RATE_PER_SECOND: float = Field(default=10.0, gt=0)
    BEAT_TICK_SECONDS: float = Field(default=15.0, gt=0)
    RECONCILE_EVERY_SECONDS: float = Field(default=300.0, gt=0)

    # Check-in timing (issue: SMS check-ins).
    REMINDER_AFTER_MINUTES: int = Field(default=240, ge=1)
    CHECK_IN_EXPIRES_AFTER_MINUTES: int = Field(default=1440, ge=1)
    CATCH_UP_WINDOW_MINUTES: int = Field(default=360, ge=1)
    QUIET_HOURS_START: time = time(21, 0)
    QUIET_HOURS_END: time = time(8, 0)

    # Shown to patients when their care team has no phone. "the clinic" only suits the outbox demo: with
    # SMS_BACKEND=twilio a real number (3+ digits) is required, or patients are told to call nobody.
    CLINIC_PHONE: str = "the clinic"
    # Numbers patients are told to call are settings, never hard-coded in texts: the service runs in more than
    # one country. The local emergency number (911, 999, 112, 000): 2-6 digits.
    EMERGENCY_NUMBER: str = "911"
    # The mental-health crisis line named in the self-harm text (988 in the US): a number or short code.
    CRISIS_LINE: str = "988"
    # The acute-oncology 24-hour triage line named in out-of-hours texts; unset = CLINIC_PHONE is named.
    ONCOLOGY_24H_PHONE: str | None = None
    # Optional: POST signed alert events (opened, acknowledged, resolved) to the hospital's system. https,
    # except to this machine (a local relay) or in development (the outbox backend); redirects are refused.
    EVENT_WEBHOOK_URL: str | None = None
    EVENT_WEBHOOK_SECRET: str | None = None
    # The patient-phone simulator (outbox backend only) lets its user text as any patient: administrators
    # only, and nurses too when this is true. Unset: true on the embedded default that `pro-service run`
    # starts (SQLite, outbox, no Redis), false everywhere else.
    SIMULATOR_FOR_NURSES: bool | None = None
    # The red-flag ruleset version new patients are enrolled on (it names the questionnaire version they
    # are asked). Unset: the newest installed. A clinical lead holds a new version back here until its
    # backtest is signed off; patients already enrolled stay on theirs until an administrator moves them.
    ENROL_RULESET_VERSION: int | None = Field(default=None, ge=1)
    CONFIG_DIR: Path = ROOT / "config"
    LOG_LEVEL: str = "INFO"

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("EMERGENCY_NUMBER")
    @classmethod
    def _emergency_number(cls, value: str) -> str:
        value = value.strip()
        if not _EMERGENCY_NUMBER.fullmatch(value):
            raise ValueError("must be 2 to 6 digits, e.g. 911, 999, 112 or 000")
        return value

    @field_validator("CRISIS_LINE")
    @classmethod
    def _crisis_line(cls, value: str) -> str:
        return _phone_number(value)

    @field_validator("ONCOLOGY_24H_PHONE")
    @classmethod
    def _oncology_24h_phone(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # an empty variable (docker compose's ${X:-}) means unset
        return _phone_number(value)

    @field_validator("SIMULATOR_FOR_NURSES", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("PUBLIC_BASE_URL", "TWILIO_API_BASE_URL")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _twilio_complete(self) -> Settings:
        if self.SMS_BACKEND == "twilio":
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
                if not getattr(self, name):
                    raise ValueError(f"{name} is required when SMS_BACKEND=twilio")
            if not (self.TWILIO_FROM_NUMBER or self.TWILIO_MESSAGING_SERVICE_SID):
                raise ValueError(
                    "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required when SMS_BACKEND=twilio"
                )
            # Patients are told to call CLINIC_PHONE; the demo default "the clinic" names no number.
            if sum(ch.isdigit() for ch in self.CLINIC_PHONE) < 3:
                raise ValueError(
                    "CLINIC_PHONE (a phone number with at least 3 digits) is required when SMS_BACKEND=twilio"
                )
        return self

    @model_validator(mode="after")
    def _event_webhook_complete(self) -> Settings:
        if self.EVENT_WEBHOOK_URL:
            problem = event_webhook_url_problem(self.EVENT_WEBHOOK_URL, development=self.development)
            if problem:
                raise ValueError(f"EVENT_WEBHOOK_URL {problem}")
            if not self.EVENT_WEBHOOK_SECRET or len(self.EVENT_WEBHOOK_SECRET) < 16:
                raise ValueError("EVENT_WEBHOOK_SECRET (16+ characters) is required with EVENT_WEBHOOK_URL")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def development(self) -> bool:
        """The outbox backend: no text reaches a patient, so this is a demo or a developer's machine, never
        a deployment patients rely on (which needs SMS_BACKEND=twilio)."""
        return self.SMS_BACKEND == "outbox"

    @property
    def simulator_for_nurses(self) -> bool:
        """Whether nurses (not only administrators) may use the patient-phone simulator."""
        if self.SIMULATOR_FOR_NURSES is not None:
            return self.SIMULATOR_FOR_NURSES
        return self.is_sqlite and self.SMS_BACKEND == "outbox" and self.REDIS_URL is None

    @property
    def webhook_auth_token(self) -> str:
        """The token inbound webhooks are signed with.

        With the outbox backend the patient-phone simulator signs its posts the same way Twilio would, so the
        webhook never runs unverified; without a Twilio token it signs with a key derived from SECRET_KEY.
        """
        if self.TWILIO_AUTH_TOKEN:
            return self.TWILIO_AUTH_TOKEN
        return "outbox-" + self.SECRET_KEY[:24]


def event_webhook_url_problem(url: str, *, development: bool) -> str | None:
    """What is wrong with `url` as the event webhook's address, or None. The signed events leave over https;
    plain http only to this machine (nothing crosses a network) or in development."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an https:// URL with a host"
    if parts.scheme == "https" or development or _loopback(host):
        return None
    return "must start with https:// (http only to this machine, or with SMS_BACKEND=outbox)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise SettingsError naming the variable on a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("Invalid configuration: " + "; ".join(problems)) from None
