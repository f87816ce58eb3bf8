"""PostgreSQL crashes (immediate shutdown: no checkpoint, WAL recovery at start) under a stream of replies.

While it is down the webhook must answer 5xx, so the provider knows the delivery failed and retries; what
was acknowledged (200) before the crash must be there after recovery; re-posting what got a 5xx stores it
once. The patients here are a provider that retries: each keeps re-posting the same MessageSid until it
gets a 200, then sends its next reply (so one patient's replies stay in order)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from .harness import SCRIPT, Enrolled, Stack, wait_for

pytestmark = pytest.mark.faults
PATIENTS, SENDERS = 12, 4


@dataclass
class Delivery:
    sid: str
    statuses: list[int] = field(default_factory=list)
    acked_at: float | None = None


def test_postgres_crash_under_load_acknowledged_replies_survive_and_none_is_stored_twice(
    stack: Stack,
) -> None:
    started = time.monotonic()
    stack.start_worker("a")
    patients = stack.enrol(PATIENTS)
    stack.twilio.state.wait_for_messages(PATIENTS, timeout=30)

    deliveries: list[Delivery] = []
    lock = threading.Lock()
    failures: list[str] = []
    crash = threading.Event()  # set once PostgreSQL is down
    restarted = threading.Event()  # set once it answers again

    def provider(mine: list[Enrolled]) -> None:
        http = requests.Session()
        try:
            for round_ in range(len(SCRIPT)):
                if round_ == len(SCRIPT) - 1:
                    # The last round waits for the crash: otherwise a fast stream can finish before it,
                    # and nothing is refused (seen under two test processes). Earlier rounds may be in flight.
                    crash.wait(60)
                for p in mine:
                    params = stack.reply_params(p.phone, SCRIPT[round_])
                    delivery = Delivery(params["MessageSid"])
                    with lock:
                        deliveries.append(delivery)
                    deadline = time.monotonic() + 60
                    while True:  # the provider's retries: same MessageSid until acknowledged
                        status, _ = stack.post_reply(params, http=http, timeout=15)
                        delivery.statuses.append(status)
                        if status == 200:
                            delivery.acked_at = time.monotonic()
                            break
                        if status not in (0, 500, 502, 503, 504):
                            failures.append(f"{params['MessageSid']}: unexpected {status}")
                            return
                        if time.monotonic() > deadline:
                            failures.append(f"{params['MessageSid']}: never acknowledged")
                            return
                        restarted.wait(60)  # the provider retries once the database is back
        finally:
            http.close()

    threads = [
        threading.Thread(target=provider, args=(patients[i::SENDERS],), daemon=True) for i in range(SENDERS)
    ]
    for t in threads:
        t.start()

    def acked() -> int:
        with lock:
            return sum(1 for d in deliveries if d.acked_at is not None)

    wait_for(lambda: acked() >= PATIENTS, timeout=30, message="the stream to be under way")
    crashed_at = time.monotonic()
    stack.pg.stop("immediate")
    crash.set()
    acked_before_crash = [
        d.sid for d in list(deliveries) if d.acked_at is not None and d.acked_at < crashed_at
    ]

    def refused() -> int:
        with lock:
            return sum(1 for d in deliveries for s in d.statuses if s != 200)

    # Each sender's next reply after the crash is refused; it retries once PostgreSQL is back.
    wait_for(lambda: refused() >= SENDERS, timeout=30, message="the webhook to refuse deliveries while down")
    stack.pg.start()  # waits until it accepts connections (pg_ctl -w)
    restarted.set()
    stack.reconnect()  # the test's own reads: their pooled connections died with the server
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a sender is still retrying"
    assert failures == []

    # Acknowledged before the crash: durable across it.
    survived = stack.inbound_by_sid(acked_before_crash)
    assert sorted(survived) == sorted(acked_before_crash)
    refused_then_acked = [d.sid for d in deliveries if any(s != 200 for s in d.statuses)]
    statuses_seen = sorted({s for d in deliveries for s in d.statuses})
    assert refused_then_acked, "no delivery was refused: the crash came too late"

    sids = [d.sid for d in deliveries]
    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="every reply processed after PostgreSQL recovered",
        sids=sids,
    )
    figures = stack.figures(sids)
    figures.detail.update(
        {
            "acknowledged before the crash": len(acked_before_crash),
            "refused then re-posted": len(refused_then_acked),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    figures.detail["webhook statuses seen"] = "/".join(str(s) for s in statuses_seen)
    stack.report("PostgreSQL crash", figures)
    assert all(s == 200 or s >= 500 or s == 0 for s in statuses_seen)
    assert stack.conversation_problems(patients, len(SCRIPT)) == []
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail
