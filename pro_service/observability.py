"""Structured logs with a request id and no PHI, and Prometheus metrics.

Logs: one JSON object per line; fields are the message, level, logger, request id and the `extra=` ids a
caller passes. Never phone numbers, names or reply text: callers log ids only (reviewed in tests).
Metrics: request latency, task durations and failures, time to acknowledge, and gauges read from the
database at scrape time (queue depths, open alerts by urgency). With gunicorn or Celery prefork set
PROMETHEUS_MULTIPROC_DIR so every process contributes (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
import traceback
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from werkzeug.datastructures import Authorization

from pro_service.metrics import REQUEST_LATENCY

# Set by handlers that run outside Flask's request context (ingest/handler.py); Flask requests use `g`.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _current_request_id()
        if request_id:
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            # Frames only, never the exception's message: database errors quote the values they failed on.
            payload["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))[-4000:]
        return json.dumps(payload, ensure_ascii=False)


def _current_request_id() -> str | None:
    outside_flask = request_id_var.get()
    if outside_flask:
        return outside_flask
    try:
        return g.get("request_id")
    except RuntimeError:  # outside a request
        return None


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    # The twilio library logs request bodies (with phone numbers) at INFO/DEBUG: keep it quiet.
    logging.getLogger("twilio").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class DatabaseGauges(Collector):
    """Queue depths and open alerts, read at scrape time (the rows are the truth, not counters)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from pro_service.models import Alert, AlertStatus, CheckIn, Direction, Message, MessageStatus

        rt = self.app.extensions["pro"]
        depth = GaugeMetricFamily("pro_queue_depth", "Rows waiting for a worker", labels=["kind"])
        alerts = GaugeMetricFamily(
            "pro_alerts_open", "Open or acknowledged alerts", labels=["urgency", "status"]
        )
        try:
            with rt.sessions() as session:
                inbound = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.direction == Direction.INBOUND, Message.status == MessageStatus.RECEIVED)
                )
                outbound = session.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.direction == Direction.OUTBOUND, Message.status == MessageStatus.QUEUED)
                )
                due = session.scalar(
                    select(func.count())
                    .select_from(CheckIn)
                    .where(
                        CheckIn.status.in_(("pending", "in_progress")), CheckIn.next_deadline_at <= rt.now()
                    )
                )
                rows = session.execute(
                    select(Alert.urgency, Alert.status, func.count())
                    .where(Alert.status != AlertStatus.RESOLVED)
                    .group_by(Alert.urgency, Alert.status)
                ).all()
        except Exception:  # a scrape must not fail because the database is down; healthz says that
            return
        depth.add_metric(["inbound_unprocessed"], inbound or 0)
        depth.add_metric(["outbound_queued"], outbound or 0)
        depth.add_metric(["check_in_timers_due"], due or 0)
        yield depth
        for urgency, status, count in rows:
            alerts.add_metric([urgency, status.value], count)
        yield alerts


def scrape_refusal(configured: str | None, given: Authorization | None) -> Response | None:
    """None when the scrape may go on. /metrics is off (404) without METRICS_TOKEN and otherwise answers only
    `Authorization: Bearer <METRICS_TOKEN>` (401): it is reachable without a staff session (issue 15)."""
    if configured is None:
        return Response("Not Found\n", status=404, mimetype="text/plain")
    offered = given.token if given is not None and given.type == "bearer" else None
    if offered is None or not hmac.compare_digest(offered.encode("utf-8"), configured.encode("utf-8")):
        return Response(
            "Unauthorized\n", status=401, mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"}
        )
    return None


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        started = g.get("started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            # Any token is a valid HTTP method name: an unknown one must not become a new label value each
            # time (a flood of random methods grew /metrics without bound, issue 15).
            method = request.method if request.method in HTTP_METHODS else "OTHER"
            REQUEST_LATENCY.labels(endpoint, method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    gauges = DatabaseGauges(app)

    @app.get("/metrics")
    def metrics() -> Response:
        refused = scrape_refusal(app.extensions["pro"].settings.METRICS_TOKEN, request.authorization)
        if refused is not None:
            return refused
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        output = generate_latest(registry)
        extra = CollectorRegistry()
        extra.register(gauges)
        return Response(output + generate_latest(extra), mimetype=CONTENT_TYPE_LATEST)
