"""Wake-up for stored replies: each worker polls for replies the webhook stored and publishes their tasks.

The webhook only stores and commits (no broker call on the hot path: a publish cost the web more CPU than
the rest of the request). A consumer bootstep runs `inbound.wake_received` on the worker's own timer: with
prefork on Redis that is the main process's event loop, so no thread of ours lives in the parent that forks
replacement children (a thread holding a lock at fork time would leave it held in the child); pools without
an event loop (the embedded `--pool=solo` on the SQLite broker) run Celery's timer thread, and fork nothing
after it starts. No extra process to deploy.
Several workers poll safely: each row is claimed once. While the database or broker is failing, polling
backs off; the beat sweep re-publishes anything claimed whose task was lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, bootsteps

from pro_service.runtime import Runtime
from pro_service.services import inbound

log = logging.getLogger(__name__)
BACKOFF_SECONDS = 5.0


class InboundPoller:
    """One poll; after a failure, skip polls for BACKOFF_SECONDS instead of hammering a sick dependency."""

    def __init__(self, rt: Runtime, clock: Any = time.monotonic) -> None:
        self.rt = rt
        self.clock = clock
        self.paused_until = 0.0

    def __call__(self) -> int:
        if self.clock() < self.paused_until:
            return 0
        try:
            with self.rt.engine.connect() as connection:
                return inbound.wake_received(connection, self.rt)
        except Exception:  # the database or broker is down: the rows wait, nothing is lost
            log.warning("inbound wake-up failed; retrying", exc_info=True)
            self.paused_until = self.clock() + BACKOFF_SECONDS
            return 0


def install(app: Celery, rt: Runtime) -> None:
    interval = rt.settings.INBOUND_POLL_SECONDS
    poll = InboundPoller(rt)

    class InboundWakeStep(bootsteps.StartStopStep):
        """Runs while the consumer is connected to the broker (publishing needs it)."""

        def __init__(self, consumer: Any, **kwargs: Any) -> None:
            super().__init__(consumer, **kwargs)
            self.timer_entry: Any = None

        def start(self, consumer: Any) -> None:
            self.timer_entry = consumer.timer.call_repeatedly(interval, poll, priority=10)

        def stop(self, consumer: Any) -> None:
            if self.timer_entry is not None:
                self.timer_entry.cancel()
                self.timer_entry = None

        shutdown = stop

    app.steps["consumer"].add(InboundWakeStep)
