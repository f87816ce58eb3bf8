"""The views' one-line call into the disclosure audit (services/disclosure.py): this request's address,
the runtime's clock and the configured window. The caller names the actor (a staff member's, a token's);
the request's unit of work keeps the rows with a successful answer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from flask import request

from pro_service.services import disclosure
from pro_service.web.common import db, runtime


def window() -> timedelta:
    return timedelta(minutes=runtime().settings.AUDIT_DISCLOSURE_WINDOW_MINUTES)


def disclosed(actor: str, view: str, patient_ids: Iterable[int | None], **detail: Any) -> list[int]:
    """Record that this request showed `patient_ids` to `actor` through `view` (once per window), in the
    request's unit of work. (A streamed response's rows: services/disclosure.record_streamed.)"""
    return disclosure.record(
        db(),
        actor=actor,
        view=view,
        patient_ids=patient_ids,
        now=runtime().now(),
        window=window(),
        ip=request.remote_addr,
        detail=detail or None,
    )
