"""The inbound webhook's form checks (ingest/handler.py `checked_form`) against re-cut signatures.

Twilio signs the URL followed by the sorted names and values, concatenated without separators, so a signed
request can be cut into other names and values under the same signature. Here a sender crafts the text of
their message (the one value anyone chooses), and every re-cut of Twilio's signed request into names the
webhook accepts is searched: none that passes the checks carries another MessageSid.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pro_service.ingest.handler import MEDIA_FIELD, TWILIO_FIELDS, Refused, checked_form

ACCOUNT = "AC" + "0" * 31 + "1"
OURS = "+15550000000"
PATIENT = "+15551230001"
SENDER = "+15559990000"
ORIGINAL_SID = "SM" + "a" * 32
NEW_SID = "SM" + "b" * 32
NAMES = sorted(TWILIO_FIELDS | {f"Media{kind}{n}" for kind in ("Url", "ContentType") for n in range(10)})
assert all(name in TWILIO_FIELDS or MEDIA_FIELD.fullmatch(name) for name in NAMES)


def twilio_form(body: str, sid: str = ORIGINAL_SID) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": SENDER,
        "FromCity": "NEW YORK",
        "FromCountry": "US",
        "FromState": "NY",
        "FromZip": "10001",
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": OURS,
        "ToCity": "NEW YORK",
        "ToCountry": "US",
        "ToState": "NY",
        "ToZip": "10001",
    }


def concatenation(pairs: list[tuple[str, str]]) -> str:
    return "".join(name + value for name, value in sorted(pairs))


REQUIRED = ("AccountSid", "From", "MessageSid", "To")
EXACTLY_34 = ("AccountSid", "MessageSid", "SmsMessageSid", "SmsSid")


def recuts(text: str, keep: str) -> Iterator[list[tuple[str, str]]]:
    """Every cut of `text` into name, value, name, value… with accepted names in ascending order (the order
    the signature puts them in; a name twice is refused anyway) that carries a MessageSid other than `keep`.

    Branches the checks refuse whatever follows are not followed: a value other than Body holding
    "MessageSid", a sid not 34 characters, a required name skipped. Nor is a branch whose MessageSid is
    `keep`: however it goes on, it cannot carry another."""
    starts: dict[int, list[str]] = {}
    for name in NAMES:
        at = text.find(name)
        while at != -1:
            starts.setdefault(at, []).append(name)
            at = text.find(name, at + 1)
    positions = sorted(starts)

    def walk(at: int, previous: str, used: frozenset[str]) -> Iterator[list[tuple[str, str]]]:
        for name in starts.get(at, []):
            if name <= previous or any(r < name and r not in used for r in REQUIRED):
                continue
            begin = at + len(name)
            ends = [begin + 34] if name in EXACTLY_34 else [p for p in positions if p >= begin]
            for end in [*ends, len(text)]:
                value = text[begin:end]
                if name != "Body" and "MessageSid" in value:
                    break  # a longer value holds it too
                if (name in EXACTLY_34 and len(value) != 34) or (name == "MessageSid" and value == keep):
                    continue
                if end == len(text):
                    if all(r in used or r == name for r in REQUIRED):
                        yield [(name, value)]
                elif end in starts:
                    for rest in walk(end, name, used | {name}):
                        yield [(name, value), *rest]

    yield from walk(0, "", frozenset())


def accepted(pairs: list[tuple[str, str]]) -> dict[str, str] | None:
    try:
        return checked_form(pairs, ACCOUNT)
    except Refused:
        return None


fragments = st.sampled_from(
    [
        "I am fine",
        "From",
        PATIENT,
        "MessageSid",
        NEW_SID,
        "SmsSid",
        "SmsMessageSid",
        "NumMedia",
        "0",
        "To",
        OURS,
        "ToZip",
        "ToCity",
        "FromZip",
        "AccountSid",
        ACCOUNT,
        "MediaUrl0",
        "Body",
        "x",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(fragments, max_size=9).map("".join))
def test_no_re_cut_of_a_signed_request_passes_with_another_message_sid(body: str) -> None:
    original = list(twilio_form(body).items())
    assert accepted(original) is not None  # Twilio's own request passes
    text = concatenation(original)
    for pairs in recuts(text, keep=ORIGINAL_SID):
        assert concatenation(pairs) == text
        assert accepted(pairs) is None, pairs


def test_the_search_finds_re_cuts_with_another_message_sid() -> None:
    """The search itself works: without the value check it would find the attack below."""
    text = concatenation(list(twilio_form(f"okFrom{PATIENT}MessageSid{NEW_SID}To{OURS}ToZip").items()))
    assert list(recuts(text, keep=ORIGINAL_SID)) == []  # every branch to it is cut by the value check
    plain = concatenation(list(twilio_form("ok").items()))
    assert list(recuts(plain, keep="")) != []  # the original MessageSid, found when it is not kept


def test_the_search_finds_the_attack_the_value_check_stops() -> None:
    """A crafted text re-cuts into a fresh MessageSid in a patient's name, every name one Twilio sends: the
    search finds it, and only the value check (the original "MessageSid…" swallowed by ToZip) refuses it."""
    text = concatenation(list(twilio_form(f"okFrom{PATIENT}MessageSid{NEW_SID}To{OURS}ToZip").items()))
    rest = text[text.index("ToZip") + len("ToZip") :]
    recut = [
        ("AccountSid", ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("Body", "ok"),
        ("From", PATIENT),
        ("MessageSid", NEW_SID),
        ("To", OURS),
        ("ToZip", rest),
    ]
    assert concatenation(recut) == text
    with pytest.raises(Refused, match="ToZip contains the text MessageSid"):
        checked_form(recut, ACCOUNT)


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([("MessageSid", "SM1")], "MessageSid"),
        ([("MessageSid", ORIGINAL_SID), ("MessageSid", NEW_SID)], "twice"),
        ([("MessageSid", ORIGINAL_SID), ("SmsSid", NEW_SID)], "SmsSid"),
        ([("MessageSid", ORIGINAL_SID), ("SmsMessageSid", NEW_SID)], "SmsMessageSid"),
        ([("MessageSid", ORIGINAL_SID), ("AccountSid", "AC" + "f" * 32)], "account"),
        ([("MessageSid", ORIGINAL_SID), ("AccountSid", "AC" + "0" * 31)], "AccountSid"),
        ([("MessageSid", ORIGINAL_SID), ("MediaUrl٣", "x")], "unexpected"),
        ([("MessageSid", ORIGINAL_SID), ("FromCity", "xMessageSid" + NEW_SID)], "FromCity"),
    ],
)
def test_each_check_names_its_problem(pairs: list[tuple[str, str]], problem: str) -> None:
    form = dict(twilio_form("hi"))
    form.pop("SmsSid"), form.pop("SmsMessageSid")
    for name, _ in pairs:
        form.pop(name, None)
    with pytest.raises(Refused, match=problem) as refused:
        checked_form([*form.items(), *pairs], ACCOUNT)
    assert refused.value.status == 400


def test_a_body_may_say_anything_and_media_fields_go_to_nine() -> None:
    form = twilio_form(f"MessageSid{NEW_SID} is just text in a message")
    form.update(NumMedia="10", MediaUrl9="https://api.twilio.com/m/1", MediaContentType9="image/png")
    assert checked_form(list(form.items()), ACCOUNT)["Body"].startswith("MessageSid")
    assert checked_form(list(form.items()), None)["MessageSid"] == ORIGINAL_SID  # outbox: any account
    mms = "MM" + secrets.token_hex(16).upper()  # Twilio's pattern allows either case
    assert checked_form(list(twilio_form("x", mms).items()), ACCOUNT)["MessageSid"] == mms
