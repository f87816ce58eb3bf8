"""OutboxGateway: the embedded default. Nothing leaves the machine; the message rows are the outbox and
the patient-phone simulator page shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pro_service.sms.gateway import ReceivedSms, SendResult, SentMessage


class OutboxGateway:
    def send(
        self, *, to: str, body: str, status_callback: str | None, validity_period: int | None
    ) -> SendResult:
        return SendResult(sid="SMoutbox" + uuid.uuid4().hex[:24], status="delivered")

    def recent_to(self, to: str, since: datetime) -> list[SentMessage]:
        # An outbox send cannot be half done: it never reached anyone, so nothing to reconcile.
        return []

    def recent_inbound(self, since: datetime) -> list[ReceivedSms]:
        # The simulator posts straight to the webhook; there is no provider-side copy to reconcile with.
        return []
