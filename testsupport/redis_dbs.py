"""Redis db numbers claimed by a test process, so parallel test processes never share one.

A test process (one pytest, or one pytest-xdist worker) needs Redis dbs of its own: one its Celery worker
listens to, one that no worker listens to. Picking a db from the process id collided (two processes whose ids
agree modulo 15 flushed each other's queues). Here each db holds a claim key naming its holder (host, pid
namespace, pid); a claim whose holder has died in this pid namespace, or that has outlived its expiry, is
taken over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import redis

CLAIM_KEY = "pro-service:test-claim"
CLAIM_SECONDS = 6 * 3600  # outlives any test run; a claim from another machine is trusted until then
FIRST_DB, LAST_DB = 1, 15  # db 0 is left to people; 16 dbs is Redis' default


def _pid_namespace() -> str:
    """Which pids this process can see: containers sharing a host name (host networking) do not share it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def _holder() -> str:
    return f"{socket.gethostname()}|{_pid_namespace()}|{os.getpid()}"


def _stale(holder: bytes) -> bool:
    """Only a holder this process could see die is stale; any other waits for its claim's expiry."""
    host, namespace, pid = [*holder.decode().split("|"), "", "", ""][:3]
    if (host, namespace) != (socket.gethostname(), _pid_namespace()) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _try_claim(client: redis.Redis, holder: str) -> bool:
    if client.set(CLAIM_KEY, holder, nx=True, ex=CLAIM_SECONDS):
        return True
    with client.pipeline() as pipe:
        try:
            pipe.watch(CLAIM_KEY)
            current = cast(bytes | None, pipe.get(CLAIM_KEY))
            if current is not None and not _stale(current):
                return False
            pipe.multi()
            pipe.set(CLAIM_KEY, holder, ex=CLAIM_SECONDS)
            pipe.execute()
        except redis.WatchError:  # someone else took it over first
            return False
    return True


def _empty_but_the_claim(client: redis.Redis) -> None:
    # Not FLUSHDB: between a flush and a new claim another process could take the db.
    for key in client.scan_iter(count=500):
        if key != CLAIM_KEY.encode():
            client.delete(key)


def claim(base_url: str, count: int) -> list[str]:
    """Claim `count` free dbs at `base_url` (redis://host:port), empty them, and return their URLs."""
    holder = _holder()
    urls: list[str] = []
    for db in range(FIRST_DB, LAST_DB + 1):
        url = f"{base_url}/{db}"
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            if _try_claim(client, holder):
                _empty_but_the_claim(client)
                urls.append(url)
        finally:
            client.close()
        if len(urls) == count:
            return urls
    release(urls)
    raise RuntimeError(f"no {count} free Redis dbs at {base_url}: {LAST_DB} are held by other test processes")


def release(urls: list[str]) -> None:
    """Give back dbs claimed by this process (a claim another process took over is left alone)."""
    holder = _holder().encode()
    for url in urls:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            if client.get(CLAIM_KEY) == holder:
                client.delete(CLAIM_KEY)
        finally:
            client.close()


@contextmanager
def claimed(base_url: str, count: int) -> Iterator[list[str]]:
    urls = claim(base_url, count)
    try:
        yield urls
    finally:
        release(urls)
