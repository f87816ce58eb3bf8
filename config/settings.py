"""Typed settings, read from the environment once at start-up.

A bad or missing value stops start-up with a message naming the variable (`SettingsError`).
Tests build `Settings(...)` directly instead of editing `os.environ`.
"""

from __future__ import annotations

import ipaddress
import json
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
_METRICS_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{16,200}=*")  # an RFC 6750 bearer token
# The staff roles a person can hold (pro_service.models.StaffRole, without the API-only "integration").
STAFF_ROLES = ("admin", "nurse")


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
    # PostgreSQL: webhooks arriving together in one web process share one insert and one commit (ingest/
    # store.py). False: each reply is stored by its own single-row transaction, the simple reference path.
    INBOUND_GROUP_COMMIT: bool = True
    # Every other wait on PostgreSQL (web requests, tasks, beat): a statement, a lock, a silent server. Longer
    # than any query the product runs (the dashboard at 100,000 alerts: well under a second), shorter than
    # a nurse would wait for a page.
    DB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0, le=3600)
    SEND_RATE_PER_SECOND: float = Field(default=10.0, gt=0)
    # Where the send cap's slots are kept: "redis" (shared by every worker; needs REDIS_URL) or "local" (this
    # process only: one worker). Unset: redis when REDIS_URL is set, else local.
    SEND_RATE_LIMITER: Literal["redis", "local"] | None = None
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
    # How many reverse proxies in front of the web append to X-Forwarded-For / X-Forwarded-Proto (werkzeug's
    # ProxyFix). 0: the headers are ignored (anyone can write them). Set it to the number of proxies you run
    # (1 for one nginx or load balancer), so the sign-in throttle and the audit see the client, not the proxy.
    TRUSTED_PROXY_HOPS: int = Field(default=0, ge=0, le=5)
    # The Prometheus scrape: /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (16+ characters);
    # unset, /metrics is off (404).
    METRICS_TOKEN: str | None = None
    # Lists, searches, polls and exports write one audit row per patient shown, at most once per this many
    # minutes for the same person (or token) and screen (services/disclosure.py): the watch screen polls
    # every second. 1 to 1440; shorter is finer "when", longer is fewer rows.
    AUDIT_DISCLOSURE_WINDOW_MINUTES: int = Field(default=15, ge=1, le=1440)
    # The red-flag ruleset version new patients are enrolled on (it names the questionnaire version they
    # are asked). Unset: the newest installed. A clinical lead holds a new version back here until its
    # backtest is signed off; patients already enrolled stay on theirs until an administrator moves them.
    ENROL_RULESET_VERSION: int | None = Field(default=None, ge=1)
    # Roles whose local (password) accounts must use a second factor (TOTP), comma-separated: "admin",
    # "admin,nurse", or empty for none. Unset: "admin", except on the embedded default (`pro-service run`:
    # SQLite, outbox, no Redis) whose printed demo logins would otherwise need an authenticator app first.
    MFA_REQUIRED_ROLES: str | None = None
    # Single sign-on (OpenID Connect) with the hospital's identity provider: all of the four, or none.
    # OIDC_GROUP_MAP (JSON) maps the provider's `groups` claim to a role and care teams (by name), e.g.
    # {"onc-nurses": {"role": "nurse", "teams": ["Oncology A"]}, "pro-admins": {"role": "admin"}}.
    OIDC_ISSUER: str | None = None
    OIDC_CLIENT_ID: str | None = None
    OIDC_CLIENT_SECRET: str | None = None
    OIDC_GROUP_MAP: str | None = None
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

    @field_validator("MFA_REQUIRED_ROLES")
    @classmethod
    def _mfa_roles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        roles = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [role for role in roles if role not in STAFF_ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r}: a comma-separated list of admin, nurse, or empty")
        return ",".join(roles)

    @field_validator("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_GROUP_MAP")
    @classmethod
    def _oidc_unset_when_empty(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value.strip()

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        names = ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_GROUP_MAP")
        given = [name for name in names if getattr(self, name)]
        if not given:
            return self
        missing = [name for name in names if name not in given]
        if missing:
            raise ValueError(f"{missing[0]} is required with {given[0]} (single sign-on needs all four)")
        problem = event_webhook_url_problem(self.OIDC_ISSUER or "", development=self.development)
        if problem or (self.OIDC_ISSUER or "").endswith("/"):
            raise ValueError(f"OIDC_ISSUER {problem or 'must not end with /'}")
        try:
            parse_group_map(self.OIDC_GROUP_MAP or "")
        except ValueError as exc:
            raise ValueError(f"OIDC_GROUP_MAP {exc}") from None
        return self

    @field_validator("METRICS_TOKEN")
    @classmethod
    def _metrics_token(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # an empty variable (docker compose's ${X:-}) means unset: /metrics is off
        if not _METRICS_TOKEN.fullmatch(value):
            raise ValueError("must be 16+ letters, digits or - . _ ~ + / (e.g. `openssl rand -hex 32`)")
        return value

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
    def _send_rate_limiter_reachable(self) -> Settings:
        if self.SEND_RATE_LIMITER == "redis" and not self.REDIS_URL:
            raise ValueError("SEND_RATE_LIMITER=redis needs REDIS_URL")
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
    def send_rate_limiter(self) -> Literal["redis", "local"]:
        """SEND_RATE_LIMITER, or its default: redis when there is a Redis to share, else local."""
        return self.SEND_RATE_LIMITER or ("redis" if self.REDIS_URL else "local")

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def development(self) -> bool:
        """The outbox backend: no text reaches a patient, so this is a demo or a developer's machine, never
        a deployment patients rely on (which needs SMS_BACKEND=twilio)."""
        return self.SMS_BACKEND == "outbox"

    @property
    def embedded_default(self) -> bool:
        """The all-in-one demo that `pro-service run` starts with no settings: SQLite, outbox, no Redis. Only
        here are the demo accounts seeded without asking, and nurses may use the simulator by default."""
        return self.is_sqlite and self.SMS_BACKEND == "outbox" and self.REDIS_URL is None

    @property
    def simulator_for_nurses(self) -> bool:
        """Whether nurses (not only administrators) may use the patient-phone simulator."""
        if self.SIMULATOR_FOR_NURSES is not None:
            return self.SIMULATOR_FOR_NURSES
        return self.embedded_default

    @property
    def mfa_required_roles(self) -> frozenset[str]:
        """The roles ("admin", "nurse") whose password sign-in needs a confirmed second factor."""
        if self.MFA_REQUIRED_ROLES is None:
            return frozenset() if self.embedded_default else frozenset({"admin"})
        return frozenset(role for role in self.MFA_REQUIRED_ROLES.split(",") if role)

    @property
    def oidc_enabled(self) -> bool:
        return self.OIDC_ISSUER is not None

    @property
    def oidc_group_map(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        return parse_group_map(self.OIDC_GROUP_MAP) if self.OIDC_GROUP_MAP else {}

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


def parse_group_map(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """OIDC_GROUP_MAP's JSON → {group: (role, (care team name, ...))}; ValueError says what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError('must be JSON like {"onc-nurses": {"role": "nurse", "teams": ["Team A"]}}') from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError("must be a JSON object of group names")
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for group, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("role") not in STAFF_ROLES:
            raise ValueError(f"group {group!r}: needs a role, one of {', '.join(STAFF_ROLES)}")
        teams = entry.get("teams", [])
        if not isinstance(teams, list) or not all(isinstance(t, str) and t.strip() for t in teams):
            raise ValueError(f"group {group!r}: teams must be a list of care team names")
        if set(entry) - {"role", "teams"}:
            raise ValueError(f"group {group!r}: only role and teams may be given")
        found[str(group)] = (entry["role"], tuple(t.strip() for t in teams))
    return found


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
