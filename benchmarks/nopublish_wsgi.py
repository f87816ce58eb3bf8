"""The real app with the broker publish switched off, to measure what the after-commit publish costs.

`gunicorn -c config/gunicorn.conf.py benchmarks.nopublish_wsgi:app`. Only the benchmark uses this: the
webhook then stores and commits exactly as in production, and the task it would publish is dropped.
"""

from __future__ import annotations

from typing import Any

from pro_service.queue import TaskQueue


def _no_publish(self: TaskQueue, name: str, *args: Any, queue_name: str | None = None) -> bool:
    return True


TaskQueue.publish = _no_publish  # type: ignore[method-assign]

from pro_service.wsgi import app  # noqa: E402  (after the patch, so every worker has it)

__all__ = ["app"]
