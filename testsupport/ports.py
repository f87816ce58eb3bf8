"""A free TCP port on the loopback interface, for a server a test or benchmark starts."""

from __future__ import annotations

import os
import random
import socket

# Under pytest-xdist each test process takes ports from its own block, below the kernel's ephemeral range
# (32768-60999 on Linux). A port the kernel hands out (bind to 0) may be one another process has just let
# go: a fault test that stops its private PostgreSQL found its port taken by the other process's web server.
FIRST_PORT, LAST_PORT = 20_000, 32_000


def _bound(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _block() -> range | None:
    """This test process's ports, or None outside pytest-xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit()):
        return None
    size = (LAST_PORT - FIRST_PORT) // max(int(count), 1)
    start = FIRST_PORT + int(worker[2:]) * size
    return range(start, start + size)


def free_port() -> int:
    block = _block()
    if block is not None:
        for port in random.sample(block, len(block)):
            if _bound(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
