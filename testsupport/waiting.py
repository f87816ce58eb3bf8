"""Bounded waits: every wait for another process or thread ends, with a message that says what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str = "condition",
    *,
    error: type[Exception] = AssertionError,
) -> Any:
    """Poll until `condition()` is truthy, at most `timeout` seconds; return its value. On time-out raise
    `error` (tests fail with AssertionError; the benchmarks raise their own BenchError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)
