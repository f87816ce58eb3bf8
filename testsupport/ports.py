"""A free TCP port on the loopback interface, for a server a test or benchmark starts."""

from __future__ import annotations

import os
import random
import socket

# Under pytest-xdist each test process takes ports from its own block, below the kernel's ephemeral range
# (32768-60999 on Linux). A port the kernel hands out (bind to 0) may be one another process has just let
# go: a fault test that stops its private PostgreSQL found its port taken by the other process's web server.
FIRST_BLOCK_PORT, BLOCK_SIZE = 20_000, 1_500


def _bound(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest-xdist
    if worker.startswith("gw") and worker[2:].isdigit():
        start = FIRST_BLOCK_PORT + int(worker[2:]) * BLOCK_SIZE
        for port in random.sample(range(start, start + BLOCK_SIZE), BLOCK_SIZE):
            if _bound(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
