"""TwilioGateway: sends through the real `twilio` library; base URL configurable for local servers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException

from pro_service.sms.gateway import ReceivedSms, SendError, SendResult, SentMessage
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

    def recent_inbound(self, since: datetime) -> list[ReceivedSms]:
        params: dict[str, Any] = {"date_sent_after": since, "page_size": 200, "limit": 5000}
        if self._from:
            params["to"] = self._from
        return [
            ReceivedSms(
                sid=str(m.sid),
                from_=str(m.from_ or ""),
                to=str(m.to or ""),
                body=str(m.body or ""),
                num_media=int(m.num_media or 0),
                date_sent=m.date_sent,
            )
            for m in self._client.messages.stream(**params)
            if str(m.direction) == "inbound"
        ]
