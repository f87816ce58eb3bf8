"""The SMS gateway port. Implementations are picked by SMS_BACKEND: TwilioGateway or OutboxGateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Twilio error codes that mean something to us.
UNSUBSCRIBED = 21610  # the recipient texted STOP to the sender: they are opted out
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21614, 30005, 30006})  # not a reachable mobile number


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str


class SendError(Exception):
    """A send that did not happen. `retryable` errors (429, 5xx, network) are tried again with backoff."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        return self.http_status is None or self.http_status == 429 or self.http_status >= 500


@dataclass(frozen=True)
class SentMessage:
    sid: str
    to: str
    body: str
    date_created: datetime | None


@dataclass(frozen=True)
class ReceivedSms:
    """An inbound message as the provider lists it (for reconciliation of missed webhooks)."""

    sid: str
    from_: str
    to: str
    body: str
    num_media: int
    date_sent: datetime | None


class SmsGateway(Protocol):
    def send(
        self, *, to: str, body: str, status_callback: str | None, validity_period: int | None
    ) -> SendResult: ...

    def recent_to(self, to: str, since: datetime) -> list[SentMessage]:
        """Messages sent to `to` since `since` (did a send interrupted by a crash go out?)."""
        ...

    def recent_inbound(self, since: datetime) -> list[ReceivedSms]:
        """Inbound messages the provider received since `since` (Twilio does not redeliver a webhook)."""
        ...
