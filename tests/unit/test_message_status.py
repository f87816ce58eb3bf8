"""The outbound message state machine against every status Twilio reports (issue 13).

Twilio's `queued` and `sending` are not ours: ours mean "not with the provider yet, a worker may send it";
Twilio's mean "Twilio has it". A report must never make a message sendable again."""

from __future__ import annotations

import pytest
from twilio.rest.api.v2010.account.message import MessageInstance

from pro_service.models import MessageStatus as S

# Every value of the API's `message_enum_status`, as the twilio library itself lists them.
TWILIO_STATUSES = sorted(v for k, v in vars(MessageInstance.Status).items() if not k.startswith("_"))
OUTBOUND = [s for s in S if s not in (S.RECEIVED, S.PROCESSED)]


def test_the_library_lists_the_thirteen_statuses_of_the_spec() -> None:
    assert len(TWILIO_STATUSES) == 13


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("accepted", S.ACCEPTED),
        ("scheduled", S.ACCEPTED),
        ("queued", S.ACCEPTED),  # Twilio has it: not our `queued` (waiting for a worker to send it)
        ("sending", S.ACCEPTED),  # Twilio hands it to the carrier: not our `sending` (a worker mid-call)
        ("sent", S.SENT),
        ("partially_delivered", S.SENT),
        ("delivered", S.DELIVERED),
        ("read", S.DELIVERED),
        ("undelivered", S.UNDELIVERED),
        ("failed", S.FAILED),
        ("canceled", S.CANCELLED),
        ("receiving", None),  # inbound only
        ("received", None),
        ("bogus", None),
        (" Queued ", S.ACCEPTED),
    ],
)
def test_twilio_statuses_in_our_states(twilio: str, ours: S | None) -> None:
    assert S.from_provider(twilio) is ours


def test_every_twilio_status_is_mapped_or_deliberately_not() -> None:
    unmapped = [t for t in TWILIO_STATUSES if S.from_provider(t) is None]
    assert unmapped == ["received", "receiving"]


@pytest.mark.parametrize("copy_known", [False, True])
@pytest.mark.parametrize("twilio", TWILIO_STATUSES)
@pytest.mark.parametrize("current", list(S))
def test_no_report_makes_a_message_sendable_again(current: S, twilio: str, copy_known: bool) -> None:
    reported = S.from_provider(twilio)
    if reported is None:
        return
    after = current.after_report(reported, copy_known=copy_known)
    assert after is None or not after.sendable
    if current.sendable:
        assert after is reported  # the report is proof the provider has it: its state, whatever it is


@pytest.mark.parametrize(
    ("current", "twilio", "copy_known", "after"),
    [
        # Issue 13: after an ambiguous 5xx, Twilio's callbacks for the copy it accepted.
        (S.UNCERTAIN, "queued", False, S.ACCEPTED),
        (S.UNCERTAIN, "sending", False, S.ACCEPTED),
        (S.UNCERTAIN, "sent", False, S.SENT),
        (S.UNCERTAIN, "delivered", False, S.DELIVERED),
        (S.UNCERTAIN, "undelivered", False, S.UNDELIVERED),
        (S.UNCERTAIN, "failed", False, S.FAILED),
        # A send whose answer was lost to a crash, or a 429-requeued row of an earlier accepted attempt.
        (S.SENDING, "accepted", False, S.ACCEPTED),
        (S.SENDING, "delivered", False, S.DELIVERED),
        (S.QUEUED, "queued", False, S.ACCEPTED),
        (S.QUEUED, "sent", False, S.SENT),
        # Forward only, out of order or repeated.
        (S.ACCEPTED, "queued", True, None),
        (S.ACCEPTED, "sending", True, None),
        (S.ACCEPTED, "sent", True, S.SENT),
        (S.SENT, "queued", True, None),
        (S.SENT, "sent", True, None),
        (S.SENT, "delivered", True, S.DELIVERED),
        (S.SENT, "undelivered", True, S.UNDELIVERED),
        (S.SENT, "failed", True, S.FAILED),
        (S.DELIVERED, "sent", True, None),
        (S.DELIVERED, "undelivered", True, None),
        (S.UNDELIVERED, "delivered", True, None),
        (S.FAILED, "delivered", True, None),
        # Stood down by us (expired, superseded, opted out; or failed after the last retry) before
        # learning that an earlier attempt had reached the provider: the provider's word is the truth.
        (S.CANCELLED, "delivered", False, S.DELIVERED),
        (S.CANCELLED, "queued", False, S.ACCEPTED),
        (S.FAILED, "sent", False, S.SENT),
        (S.CANCELLED, "delivered", True, None),
        # Inbound rows never take an outbound status.
        (S.RECEIVED, "delivered", False, None),
        (S.PROCESSED, "sent", True, None),
    ],
)
def test_transitions_on_a_provider_report(current: S, twilio: str, copy_known: bool, after: S | None) -> None:
    reported = S.from_provider(twilio)
    assert reported is not None
    assert current.after_report(reported, copy_known=copy_known) is after


def test_only_states_before_the_provider_are_sendable() -> None:
    assert [s for s in S if s.sendable] == [S.QUEUED, S.SENDING, S.UNCERTAIN]


def test_a_state_that_is_not_the_providers_is_never_reported() -> None:
    for current in OUTBOUND:
        for ours in (S.QUEUED, S.SENDING, S.UNCERTAIN, S.RECEIVED, S.PROCESSED):
            assert current.after_report(ours, copy_known=False) is None
