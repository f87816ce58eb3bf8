"""Inbound webhooks signed as Twilio signs them, so the app's signature check passes."""

from __future__ import annotations

import secrets

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


class Signer:
    """X-Twilio-Signature over PUBLIC_BASE_URL + path and the POST params, as Twilio computes it."""

    def __init__(self, public_base: str, token: str) -> None:
        self.public_base = public_base
        self.validator = RequestValidator(token)

    def sign(self, path: str, params: dict[str, str]) -> str:
        return str(self.validator.compute_signature(self.public_base + path, params))

    def headers(self, path: str, params: dict[str, str]) -> dict[str, str]:
        return {SIGNATURE_HEADER: self.sign(path, params)}


def inbound_sms(
    from_: str, body: str, *, account_sid: str, to: str, sid: str | None = None, **extra: str
) -> dict[str, str]:
    """The POST params of an inbound SMS, the fields the app reads (a fresh MessageSid unless given)."""
    return {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": account_sid,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
