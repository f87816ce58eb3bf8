"""TwilioGateway: sends through the real `twilio` library; base URL configurable for local servers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException

from pro_service.sms.gateway import SendError, SendResult, SentMessage
from pro_service.sms.twilio_client import make_twilio_client


class TwilioGateway:
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base_url: str,
        from_number: str | None,
        messaging_service_sid: str | None,
    ) -> None:
        self._client = make_twilio_client(account_sid, auth_token, api_base_url)
        self._from = from_number
        self._service = messaging_service_sid

    def send(
        self, *, to: str, body: str, status_callback: str | None, validity_period: int | None
    ) -> SendResult:
        params: dict[str, Any] = {"to": to, "body": body}
        if self._service:
            params["messaging_service_sid"] = self._service
        else:
            params["from_"] = self._from
        if status_callback:
            params["status_callback"] = status_callback
        if validity_period:
            params["validity_period"] = validity_period
        try:
            message = self._client.messages.create(**params)
        except TwilioRestException as exc:
            raise SendError(str(exc.msg), code=exc.code, http_status=exc.status) from None
        except (TwilioException, OSError) as exc:
            # Network trouble: we don't know the HTTP status, so it is retryable.
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        return SendResult(sid=str(message.sid), status=str(message.status))

    def recent_to(self, to: str, since: datetime) -> list[SentMessage]:
        found = self._client.messages.list(to=to, date_sent_after=since, limit=50)
        return [
            SentMessage(sid=str(m.sid), to=str(m.to), body=str(m.body or ""), date_created=m.date_created)
            for m in found
        ]
