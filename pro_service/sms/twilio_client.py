"""A real `twilio.rest.Client` whose REST calls can be pointed at a local stand-in (dev/twilio_server.py).

twilio-python 9.x builds every request URL from a domain's base_url ("https://api.twilio.com"),
then hands the absolute URL to `client.http_client.request(...)`. Swapping in a TwilioHttpClient
subclass that rewrites scheme+host at that last step keeps everything else real: request building,
Basic auth, headers, paging (next_page_uri is made absolute against the same base and rewritten
again), and error handling (TwilioRestException with .status/.code from the JSON error body).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

TWILIO_API_BASE_URL = "https://api.twilio.com"
REQUEST_TIMEOUT = 15.0  # seconds for one REST call; a timeout is a retryable send error


def _is_twilio_api_host(host: str | None) -> bool:
    # api.twilio.com, or the api.<edge>.<region>.twilio.com form the client makes when
    # TWILIO_EDGE/TWILIO_REGION are set; other Twilio products (verify., lookups., ...) are left alone.
    return host is not None and host.startswith("api.") and host.endswith(".twilio.com")


class RedirectingHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends api.twilio.com requests to `base_url` instead. No retries added."""

    def __init__(self, base_url: str, logger: logging.Logger | None = None) -> None:
        super().__init__(logger=logger or logging.getLogger("twilio.http_client"), timeout=REQUEST_TIMEOUT)
        target = urlsplit(base_url)
        if target.scheme not in ("http", "https") or not target.netloc:
            raise ValueError(f"api_base_url must be http(s)://host[:port], got {base_url!r}")
        self._scheme, self._netloc, self._path = target.scheme, target.netloc, target.path.rstrip("/")

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not _is_twilio_api_host(parts.hostname):
            return url
        return urlunsplit((self._scheme, self._netloc, self._path + parts.path, parts.query, parts.fragment))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def make_twilio_client(account_sid: str, auth_token: str, api_base_url: str) -> Client:
    """A real twilio Client; requests go to `api_base_url` (stock client when it is https://api.twilio.com)."""
    if api_base_url.rstrip("/") == TWILIO_API_BASE_URL:
        # A hung connection must not hold a worker (and the row it locked) forever.
        return Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=REQUEST_TIMEOUT))
    return Client(account_sid, auth_token, http_client=RedirectingHttpClient(api_base_url))
