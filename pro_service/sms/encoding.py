"""SMS length: GSM-7 or UCS-2, and how many segments a text costs."""

from __future__ import annotations

import math

_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = "^{}\\[~]|€\f"
_GSM7 = frozenset(_GSM7_BASIC)
_GSM7_EXT = frozenset(_GSM7_EXTENSION)


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 or ch in _GSM7_EXT for ch in text)


def septets(text: str) -> int:
    """GSM-7 length: extension characters take two septets."""
    return sum(2 if ch in _GSM7_EXT else 1 for ch in text)


def segments(text: str) -> int:
    if is_gsm7(text):
        n = septets(text)
        return 1 if n <= 160 else math.ceil(n / 153)
    # UCS-2 counts UTF-16 code units (an emoji is two).
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
