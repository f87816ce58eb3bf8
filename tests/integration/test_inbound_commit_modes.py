"""INBOUND_GROUP_COMMIT on and off (ingest/store.py): the group path and the single-row reference path each
store every reply exactly once, repeats included, through the real handler under concurrent requests."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.ingest.handler import InboundSmsHandler
from pro_service.ingest.store import GroupInsert, SqlAlchemyInsert
from pro_service.models import Message
from tests.conftest import ACCOUNT_SID, FROM_NUMBER, run_concurrently
from tests.integration.helpers import call_wsgi, make_patient, make_team, signed_sms_environ

pytestmark = pytest.mark.integration

PATIENT, OTHER_PATIENT = "+15551230001", "+15551230002"


class _Wsgi:
    """What call_wsgi calls: the handler as `wsgi_app` (anything but POST /twilio/sms is a bug here)."""

    def __init__(self, handler: InboundSmsHandler) -> None:
        self.wsgi_app = handler


def _handler(rt: Any, group_commit: bool) -> InboundSmsHandler:
    settings = rt.settings.model_copy(update={"INBOUND_GROUP_COMMIT": group_commit})

    def not_here(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("only POST /twilio/sms is sent")

    return InboundSmsHandler(not_here, dataclasses.replace(rt, settings=settings))


@pytest.mark.parametrize("group_commit", [True, False])
def test_the_setting_chooses_the_store(rt: Any, group_commit: bool) -> None:
    store = _handler(rt, group_commit).store
    assert isinstance(store, GroupInsert if group_commit else SqlAlchemyInsert)


@pytest.mark.parametrize("group_commit", [True, False])
def test_every_reply_is_stored_exactly_once(rt: Any, signer: Any, group_commit: bool) -> None:
    """8 threads × 20 webhooks, each delivered twice (Twilio retries): every MessageSid stored once, in
    its sender's name, every answer 200."""
    team = make_team(rt)
    people = {
        PATIENT: make_patient(rt, team),
        OTHER_PATIENT: make_patient(rt, team, phone=OTHER_PATIENT, mrn="MRN002"),
    }
    app = _Wsgi(_handler(rt, group_commit))
    counter = iter(range(10_000))
    lock = threading.Lock()

    def post_many() -> list[str]:
        statuses = []
        for _ in range(20):
            with lock:
                n = next(counter)
            sender = PATIENT if n % 2 else OTHER_PATIENT
            params = {
                "MessageSid": f"SM{n:032x}",
                "AccountSid": ACCOUNT_SID,
                "From": sender,
                "To": FROM_NUMBER,
                "Body": str(n % 10),
            }
            for _delivery in range(2):
                statuses.append(call_wsgi(app, signed_sms_environ(signer, params))[0])
        return statuses

    results = run_concurrently(post_many, threads=8)
    assert [status for statuses in results for status in statuses] == ["200 OK"] * 320
    with rt.sessions() as session:
        stored = session.scalars(select(Message).where(Message.direction == "inbound")).all()
    assert sorted(m.twilio_sid for m in stored) == sorted(f"SM{n:032x}" for n in range(160))
    assert all(
        m.patient_id == people[PATIENT if int(m.twilio_sid[2:], 16) % 2 else OTHER_PATIENT] for m in stored
    )
