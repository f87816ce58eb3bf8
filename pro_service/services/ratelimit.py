"""The sender's messages-per-second cap, shared by every worker through Redis.

Each send reserves the next free slot (a GCRA "theoretical arrival time" kept in one Redis key, advanced
atomically by a Lua script on Redis' own clock) and waits for it. No bursts: slots are 1/rate apart.
Without Redis (the embedded default, one worker) the same rule runs in-process.

Urgent sends (pages, safety texts) never wait behind a fan-out: they take a slot like any other send, so the
bulk behind them waits one interval more and the average stays at the cap, but they go at once. Measured:
with 10,000 questions going out at 10/s, a page waited 1.5-1.9 s for its slot, and the clinical worker's
processes, asleep in those waits, left patients' replies queued for 20 s (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
import time
from functools import cache

import redis

from pro_service.runtime import Runtime

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

_local_lock = threading.Lock()
_local_next = 0.0


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def acquire_send_slot(rt: Runtime, *, urgent: bool = False) -> float:
    """Block until this process may send one message; returns the seconds waited (0 when urgent)."""
    wait = reserve_slot(rt, urgent=urgent)
    if wait > 0:
        time.sleep(wait)
    return wait


def reserve_slot(rt: Runtime, *, urgent: bool = False) -> float:
    """Reserve the next free send slot; returns how many seconds from now it starts (0 when urgent)."""
    interval = 1.0 / rt.settings.SEND_RATE_PER_SECOND
    if rt.settings.REDIS_URL:
        try:
            reply = _client(rt.settings.REDIS_URL).eval(
                _RESERVE, 1, KEY, str(int(interval * 1_000_000)), "1" if urgent else "0"
            )
            wait_us = int(reply)  # type: ignore[arg-type]  # sync client: an int, not an Awaitable
        except redis.RedisError:
            wait_us = int(_local_wait(interval) * 1_000_000)
    else:
        wait_us = int(_local_wait(interval) * 1_000_000)
    return 0.0 if urgent else wait_us / 1_000_000


def _local_wait(interval: float) -> float:
    global _local_next
    with _local_lock:
        now = time.monotonic()
        slot = max(now, _local_next)
        _local_next = slot + interval
        return slot - now
