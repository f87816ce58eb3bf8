"""Prometheus metrics (no Flask or Celery here, so `alerts` may record into them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_LATENCY = Histogram(
    "pro_http_request_seconds",
    "Web request latency",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TASK_DURATION = Histogram(
    "pro_task_seconds",
    "Celery task duration",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASK_FAILURES = Counter("pro_task_failures_total", "Celery tasks that raised", ["task"])
TIME_TO_ACK = Histogram(
    "pro_alert_time_to_acknowledge_seconds",
    "From alert opened to acknowledged",
    ["urgency"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400),
)
INBOUND_GROUP_SIZE = Histogram(
    "pro_inbound_group_rows",
    "Inbound SMS stored per INSERT by one web process (concurrent webhooks share one; ingest/store.py)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
INBOUND_STORED = Counter(
    "pro_inbound_messages_total",
    "Inbound SMS webhooks answered 200: stored, or a repeat delivery of a MessageSid already stored",
    ["outcome"],
)
