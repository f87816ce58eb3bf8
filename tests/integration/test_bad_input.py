"""Bad input everywhere: arbitrary bodies, headers and encodings at the Twilio webhooks never yield a 5xx,
nothing is stored from an unsigned request, and every signed inbound message is stored."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pro_service.models import Message
from tests.conftest import ACCOUNT_SID, FROM_NUMBER

pytestmark = pytest.mark.integration
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
keys = st.sampled_from(
    [
        "MessageSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "SmsStatus",
        "MessageStatus",
        "ErrorCode",
        "AccountSid",
    ]
) | st.text(min_size=1, max_size=20)
forms = st.dictionaries(keys, st.text(max_size=300), max_size=8)
# Fields Twilio sends beside the ones a test sets, with any value but the text "MessageSid" (the webhook
# refuses it outside Body: the mark of a signature re-cut, issue 15 item 9).
twilio_extras = st.dictionaries(
    st.sampled_from(
        ["NumMedia", "MediaUrl0", "MediaContentType0", "SmsStatus", "FromCity", "ToZip", "ApiVersion"]
    ),
    st.text(max_size=300).filter(lambda v: "MessageSid" not in v),
    max_size=6,
)
headers = st.dictionaries(
    st.sampled_from(
        ["X-Twilio-Signature", "Content-Type", "X-Forwarded-Proto", "Host-Ish", "Accept-Charset"]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    max_size=4,
)


def _count(rt: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


@FUZZ
@given(
    form=forms,
    extra_headers=headers,
    path=st.sampled_from(["/twilio/sms", "/twilio/status?mid=1", "/twilio/status"]),
)
def test_unsigned_requests_are_refused_and_store_nothing(
    client: Any, rt: Any, form: dict[str, str], extra_headers: dict[str, str], path: str
) -> None:
    before = _count(rt)
    extra_headers.pop("Content-Type", None)
    response = client.post(path, data=form, headers=extra_headers)
    assert response.status_code == 403
    assert _count(rt) == before


@FUZZ
@given(
    raw=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "multipart/form-data",
            "application/json",
            "text/plain",
            "",
        ]
    ),
)
def test_arbitrary_bytes_never_cause_a_server_error(
    client: Any, rt: Any, raw: bytes, content_type: str
) -> None:
    before = _count(rt)
    for path in ("/twilio/sms", "/twilio/status?mid=1"):
        response = client.post(
            path, data=raw, headers={"Content-Type": content_type, "X-Twilio-Signature": "bm9wZQ=="}
        )
        assert response.status_code < 500
    assert _count(rt) == before


@FUZZ
@given(body=st.text(max_size=1600), sender=st.text(max_size=40), extra=twilio_extras)
def test_every_signed_inbound_message_is_stored_once(
    client: Any, rt: Any, signer: Any, body: str, sender: str, extra: dict[str, str]
) -> None:
    sid = "SM" + secrets.token_hex(16)
    params = {
        **extra,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": FROM_NUMBER,
        "Body": body,
    }
    before = _count(rt)
    response = client.post("/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params))
    assert response.status_code == 200
    again = client.post("/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params))
    assert again.status_code == 200
    assert _count(rt) == before + 1
    with rt.sessions() as session:
        stored = session.scalar(select(Message).where(Message.twilio_sid == sid))
        # Kept as sent; only NUL (which PostgreSQL text cannot hold) becomes U+FFFD.
        assert stored is not None and stored.body == body.replace("\x00", "\ufffd")


@FUZZ
@given(form=forms)
def test_a_signed_form_twilio_would_not_send_is_refused_never_a_server_error(
    client: Any, rt: Any, signer: Any, form: dict[str, str]
) -> None:
    before = _count(rt)
    response = client.post("/twilio/sms", data=form, headers=signer.headers("/twilio/sms", form))
    assert response.status_code in (200, 400)
    assert _count(rt) == before + (response.status_code == 200)


@FUZZ
@given(form=forms, mid=st.integers(min_value=-5, max_value=2**40) | st.text(max_size=12).map(str))
def test_signed_status_callbacks_with_anything_in_them_never_fail(
    client: Any, rt: Any, signer: Any, form: dict[str, str], mid: object
) -> None:
    path = f"/twilio/status?mid={mid}"
    response = client.post(path, data=form, headers=signer.headers(path, form))
    assert response.status_code in (204, 403)  # 403 only when the URL itself cannot be signed as sent


def test_long_bodies_emoji_and_mms_without_text_are_kept(client: Any, rt: Any, signer: Any) -> None:
    cases = [
        ("x" * 1600, "0"),
        ("dolor 🦴😣 en la espalda 10/10 ‼️", "0"),
        ("", "2"),
        ("\u202e\u0000 odd control characters \ufeff", "0"),
    ]
    for body, media in cases:
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": "+15551230001",
            "To": FROM_NUMBER,
            "Body": body,
            "NumMedia": media,
            "MediaUrl0": "https://api.twilio.com/m/1",
            "MediaUrl1": "https://api.twilio.com/m/2",
        }
        assert (
            client.post("/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params)).status_code
            == 200
        )
        with rt.sessions() as session:
            stored = session.scalar(select(Message).where(Message.twilio_sid == sid))
            assert stored is not None and stored.num_media == int(media)
    before = _count(rt)
    too_big = client.post(
        "/twilio/sms", data={"Body": "x" * (2 * 1024 * 1024)}, headers={"X-Twilio-Signature": "bm9wZQ=="}
    )
    assert too_big.status_code == 413  # over MAX_CONTENT_LENGTH: refused before anything is parsed
    assert _count(rt) == before
