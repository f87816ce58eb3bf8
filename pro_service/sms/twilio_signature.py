"""Twilio's request signature (X-Twilio-Signature), checked against the public URL Twilio called.

The algorithm is Twilio's, as the `twilio` library's `RequestValidator.compute_signature` implements it:
HMAC-SHA1 keyed with the auth token over the URL followed by each distinct form name in sorted order with
each of its distinct values sorted, base64-encoded. `TwilioSignature.signed` computes it once for the exact
URL with the standard library's one-shot HMAC (the library's per-call set-up was a sixth of the inbound
webhook's Python time, benchmarks/bench_ingest.py), and only when that does not match asks the library's
own `validate`, which also tries the URL with the default port added or removed.
tests/unit/test_twilio_signature.py checks that both computations agree.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

FormPairs = Sequence[tuple[str, str]]


class TwilioSignature:
    def __init__(self, auth_token: str) -> None:
        self._key = auth_token.encode("utf-8")
        self._validator = RequestValidator(auth_token)

    def compute(self, url: str, pairs: FormPairs) -> str:
        """The signature Twilio sends for a request to `url` with these form fields."""
        values: dict[str, set[str]] = {}
        for name, value in pairs:
            values.setdefault(name, set()).add(value)
        text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
        return base64.b64encode(hmac.digest(self._key, text.encode("utf-8"), "sha1")).decode("ascii")

    def signed(self, url: str, pairs: FormPairs, signature: str) -> bool:
        """Whether `signature` is Twilio's for `url` (or the library's port variants of it) and the form.
        Malformed input (an undecodable value, a non-ASCII signature) is simply not signed."""
        if not signature:
            return False
        try:
            if hmac.compare_digest(self.compute(url, pairs), signature):
                return True
            return bool(self._validator.validate(url, MultiDict(pairs), signature))
        except (ValueError, TypeError, UnicodeError):
            return False
