"""The webhook's form parser reads exactly what `urllib.parse.parse_qsl` reads."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from pro_service.ingest.handler import form_pairs

pieces = st.sampled_from(
    ["Body", "=", "&", "+", "%", "%2", "%20", "%C3%A9", "%ZZ", "%FF", "é", "a", " ", ";"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(pieces, max_size=20).map("".join))
def test_any_string_is_read_as_parse_qsl_reads_it(raw: str) -> None:
    assert form_pairs(raw) == parse_qsl(raw, keep_blank_values=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=15), st.text(max_size=30)), max_size=10))
def test_an_encoded_form_reads_back_as_sent(pairs: list[tuple[str, str]]) -> None:
    raw = urlencode(pairs)
    assert form_pairs(raw) == parse_qsl(raw, keep_blank_values=True)
    assert form_pairs(raw) == pairs
