"""Reconciliation: Twilio does not redeliver an inbound webhook that failed (our outage, a proxy error), so
beat periodically lists recent inbound messages through the API and ingests any MessageSid we never stored.
The same `store_inbound` path is used, so a message ingested here is woken and processed exactly like a
webhook one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from pro_service.models import Message
from pro_service.runtime import Runtime
from pro_service.services.inbound import store_inbound

log = logging.getLogger(__name__)
LOOKBACK = timedelta(hours=2)


def reconcile_inbound(rt: Runtime, now: datetime, lookback: timedelta = LOOKBACK) -> int:
    """Ingest inbound messages the provider has and we do not; returns how many were missing."""
    listed = rt.gateway.recent_inbound(now - lookback)
    if not listed:
        return 0
    sids = [m.sid for m in listed]
    with rt.unit_of_work() as session:
        known = set(session.scalars(select(Message.twilio_sid).where(Message.twilio_sid.in_(sids))))
        missing = [m for m in listed if m.sid not in known]
        # Oldest first, so a patient's replies keep their order.
        for sms in sorted(missing, key=lambda m: (m.date_sent or now, m.sid)):
            store_inbound(
                session,
                {
                    "MessageSid": sms.sid,
                    "From": sms.from_,
                    "To": sms.to,
                    "Body": sms.body,
                    "NumMedia": str(sms.num_media),
                },
                now,
            )
    if missing:
        log.warning(
            "reconciliation ingested inbound messages the webhook never delivered",
            extra={"count": len(missing)},
        )
    return len(missing)
