"""The webhook's own Twilio signature computation agrees with the `twilio` library's, whatever the form."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from pro_service.sms.twilio_signature import TwilioSignature

TOKEN = "0123456789abcdef0123456789abcdef"
URL = "https://pro.example.org/twilio/sms"

names = st.sampled_from(["Body", "From", "To", "MessageSid", "NumMedia", "MediaUrl0", "a", "A", "é"])
values = st.text(max_size=30)  # any Unicode, including emoji and combining marks
forms = st.lists(st.tuples(names, values), max_size=12)  # repeated names and values included


@settings(max_examples=400, deadline=None)
@given(forms, st.sampled_from([URL, URL + "?mid=7", "http://127.0.0.1:8000/twilio/sms"]))
def test_the_signature_is_the_one_the_twilio_library_computes(pairs: list[tuple[str, str]], url: str) -> None:
    library = RequestValidator(TOKEN).compute_signature(url, MultiDict(pairs))
    assert TwilioSignature(TOKEN).compute(url, pairs) == library


@settings(max_examples=200, deadline=None)
@given(forms)
def test_a_request_signed_by_twilio_is_accepted_and_a_changed_one_is_not(
    pairs: list[tuple[str, str]],
) -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, MultiDict(pairs))
    checker = TwilioSignature(TOKEN)
    assert checker.signed(URL, pairs, signature)
    assert not checker.signed(URL, [*pairs, ("Body", "changed")], signature)
    assert not checker.signed(URL + "?x=1", pairs, signature)
    assert not TwilioSignature("another-token").signed(URL, pairs, signature)


def test_the_library_port_variants_are_still_accepted() -> None:
    # Twilio may sign https://host/path while a proxy reports :443, or the other way round.
    pairs = [("Body", "yes"), ("From", "+15551230001")]
    with_port = "https://pro.example.org:443/twilio/sms"
    signature = RequestValidator(TOKEN).compute_signature(with_port, MultiDict(pairs))
    assert TwilioSignature(TOKEN).signed(URL, pairs, signature)


def test_malformed_signatures_are_simply_not_signed() -> None:
    checker = TwilioSignature(TOKEN)
    for signature in ["", "not base64", "ünïcode", "\x00"]:
        assert not checker.signed(URL, [("Body", "yes")], signature)
