"""The sender's messages-per-second cap: a port (`SendRateLimiter`) chosen by SEND_RATE_LIMITER.

`RedisRateLimiter`: shared by every worker. Each send reserves the next free slot (a GCRA "theoretical
arrival time" kept in one Redis key, advanced atomically by a Lua script on Redis' own clock) and waits for
it. No bursts: slots are 1/rate apart. `LocalRateLimiter`: the same rule in-process (the embedded default,
one worker). `make_rate_limiter` is called once, by runtime.build_runtime (held as `Runtime.rate_limiter`);
services/outbound.py takes a slot before each send. A port beside the SMS gateway, below the services.

Urgent sends (pages, safety texts) never wait behind a fan-out: they take a slot like any other send, so the
bulk behind them waits one interval more and the average stays at the cap, but they go at once. Measured:
with 10,000 questions going out at 10/s, a page waited 1.5-1.9 s for its slot, and the clinical worker's
processes, asleep in those waits, left patients' replies queued for 20 s (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

import redis

if TYPE_CHECKING:
    from config.settings import Settings

KEY = "pro:ratelimit:sms"
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], tat + interval, 'PX', 60000)
if ARGV[2] == '1' then return 0 end
return tat - now
"""


class SendRateLimiter(Protocol):
    """The send cap's port: hands out send slots 1/rate apart."""

    def reserve(self, *, urgent: bool = False) -> float:
        """Reserve the next free send slot; returns how many seconds from now it starts (0 when urgent)."""
        ...


class LocalRateLimiter:
    """The cap kept in this process: right for one worker (the embedded default), or Redis' stand-in."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._lock = threading.Lock()
        self._next = 0.0

    def reserve(self, *, urgent: bool = False) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        return 0.0 if urgent else slot - now


class RedisRateLimiter:
    """The cap shared by every worker through one Redis key. While Redis cannot be reached, this process
    keeps the cap alone (LocalRateLimiter) rather than stop sending."""

    def __init__(self, url: str, per_second: float) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.interval_us = str(int(1_000_000 / per_second))
        self.fallback = LocalRateLimiter(per_second)

    def reserve(self, *, urgent: bool = False) -> float:
        try:
            reply = self.client.eval(_RESERVE, 1, KEY, self.interval_us, "1" if urgent else "0")
        except redis.RedisError:
            return self.fallback.reserve(urgent=urgent)
        return int(reply) / 1_000_000  # type: ignore[arg-type]  # sync client: an int, not an Awaitable


def make_rate_limiter(settings: Settings) -> SendRateLimiter:
    """The limiter SEND_RATE_LIMITER names (unset: redis when REDIS_URL is set, else local)."""
    if settings.send_rate_limiter == "redis":
        assert settings.REDIS_URL  # checked by Settings
        return RedisRateLimiter(settings.REDIS_URL, settings.SEND_RATE_PER_SECOND)
    return LocalRateLimiter(settings.SEND_RATE_PER_SECOND)
