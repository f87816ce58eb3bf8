"""Sign-in throttling: failed attempts per (email, IP) and per IP in a sliding window.

Counted in Redis when REDIS_URL is set (shared by every web process), in this process's memory otherwise
(the embedded default has one web process). A Redis error falls back to memory: sign-in never hangs on
Redis and never stops being throttled. Keys are hashes: no email address or IP is stored in clear.

Why not flask-limiter: it limits requests per route; here the key is the email in the form and only
*failures* count (a nurse who signs in fine is never slowed), which is a few lines with a sorted set.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass

import redis

PREFIX = "pro:login:"


@dataclass(frozen=True)
class Limits:
    per_account: int = 5  # failures per (email, IP) in the window
    per_ip: int = 100  # failures per IP, any email (a ward behind one NAT must not lock itself out)
    window_seconds: int = 15 * 60


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


class LoginLimiter:
    def __init__(self, redis_url: str | None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._redis = (
            redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1) if redis_url else None
        )
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, deque[float]] = OrderedDict()

    def _keys(self, email: str, ip: str) -> list[tuple[str, int]]:
        email = email.strip().lower()
        return [
            (PREFIX + "acct:" + _key(email, ip), self.limits.per_account),
            (PREFIX + "ip:" + _key(ip), self.limits.per_ip),
        ]

    def retry_after(self, email: str, ip: str) -> int:
        """0 when a sign-in may be tried; otherwise the seconds until the oldest failure leaves the window."""
        now = time.time()
        wait = 0.0
        for key, limit in self._keys(email, ip):
            stamps = self._recent(key, now)
            if len(stamps) >= limit:
                wait = max(wait, stamps[-limit] + self.limits.window_seconds - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, email: str, ip: str) -> None:
        now = time.time()
        for key, _limit in self._keys(email, ip):
            self._add(key, now)

    def succeeded(self, email: str, ip: str) -> None:
        key = self._keys(email, ip)[0][0]  # the per-IP count stays: it is about the address, not the nurse
        if self._redis is not None:
            with contextlib.suppress(redis.RedisError):
                self._redis.delete(key)
        with self._lock:
            self._memory.pop(key, None)

    def clear(self) -> None:
        """Forget everything (tests)."""
        if self._redis is not None:
            try:
                for key in self._redis.scan_iter(PREFIX + "*"):
                    self._redis.delete(key)
            except redis.RedisError:
                pass
        with self._lock:
            self._memory.clear()

    # --- storage ------------------------------------------------------------------------------------

    def _recent(self, key: str, now: float) -> list[float]:
        low = now - self.limits.window_seconds
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.zremrangebyscore(key, 0, low)
                pipe.zrange(key, 0, -1, withscores=True)
                _removed, rows = pipe.execute()
                return sorted(float(score) for _member, score in rows)
            except redis.RedisError:
                pass
        with self._lock:
            stamps = self._memory.get(key)
            if not stamps:
                return []
            while stamps and stamps[0] <= low:
                stamps.popleft()
            return list(stamps)

    def _add(self, key: str, now: float) -> None:
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.zadd(key, {uuid.uuid4().hex: now})
                pipe.expire(key, self.limits.window_seconds + 60)
                pipe.execute()
                return
            except redis.RedisError:
                pass
        with self._lock:
            stamps = self._memory.setdefault(key, deque(maxlen=max(self.limits.per_ip, 16)))
            self._memory.move_to_end(key)
            stamps.append(now)
            while len(self._memory) > 50_000:  # bounded memory under a flood of made-up emails
                self._memory.popitem(last=False)
