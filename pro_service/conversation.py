"""The check-in conversation as a pure function: state + one reply → what to store and what to send.

No database, no clock: services load the state, call `start` / `advance` / `expire`, and persist the Step.
Keywords (STOP, HELP, NURSE…) are handled before a reply gets here and never reach `advance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pro_service.instruments import Instrument, Item
from pro_service.replies import Parsed, Unreadable, parse_reply

# A reply the parser cannot read gets one re-prompt; the second miss is stored as unreadable and we move on.
MAX_MISSES = 2


@dataclass(frozen=True)
class KnownAnswer:
    status: str  # answered | unreadable | missing | skipped
    value: object = None


@dataclass(frozen=True)
class State:
    current_item: str | None
    misses_on_current: int
    answers: Mapping[str, KnownAnswer]


@dataclass(frozen=True)
class StoredAnswer:
    item_code: str
    status: str
    value: object
    raw_text: str | None
    question: str | None
    detail: str | None = None  # why it was unreadable, for the nurse


@dataclass(frozen=True)
class Outgoing:
    kind: str  # question | reprompt
    text: str
    item_code: str | None


@dataclass(frozen=True)
class Step:
    answers: tuple[StoredAnswer, ...] = ()
    send: tuple[Outgoing, ...] = ()
    current_item: str | None = None
    misses_on_current: int = 0
    completed: bool = False
    unreadable: tuple[str, ...] = field(default=())  # item codes stored as unreadable in this step


def _skipped(item: Item, answers: Mapping[str, KnownAnswer]) -> bool:
    # Skip only on a definite answer: an unreadable or missing pain score asks the follow-ups (safety).
    if item.skip_if is None:
        return False
    known = answers.get(item.skip_if.item)
    return known is not None and known.status == "answered" and known.value == item.skip_if.equals


def _next(
    instrument: Instrument, after: str | None, answers: Mapping[str, KnownAnswer], language: str
) -> tuple[str | None, tuple[StoredAnswer, ...]]:
    """The next item to ask after `after` (None = from the start) and the items skipped on the way."""
    codes = instrument.item_codes
    start = 0 if after is None else codes.index(after) + 1
    skipped: list[StoredAnswer] = []
    for code in codes[start:]:
        if code in answers:
            continue
        item = instrument.item(code)
        if _skipped(item, answers):
            skipped.append(StoredAnswer(code, "skipped", None, None, None))
            continue
        return code, tuple(skipped)
    return None, tuple(skipped)


def start(instrument: Instrument, language: str) -> Step:
    code, skipped = _next(instrument, None, {}, language)
    if code is None:
        return Step(answers=skipped, completed=True)
    question = Outgoing("question", instrument.render_question(code, language), code)
    return Step(answers=skipped, send=(question,), current_item=code)


def advance(
    instrument: Instrument,
    language: str,
    state: State,
    reply: str,
    reprompt_text: str,
    *,
    unclear: str | None = None,
) -> Step:
    """Apply one reply to the item last asked.

    `reprompt_text` is the language's re-prompt for this item's kind (texts live in config).
    `unclear` (from `message_reading`): why a reply to a red-flag question is not a clean answer ("no, but
    my legs are numb", "a little", or unreadable). It is stored as unreadable at once, without a re-prompt:
    a nurse has been alerted and resolves it; asking again would only delay that, and a later "yes" to the
    same question would be the same evidence and notify nobody.
    """
    if state.current_item is None:
        raise ValueError("no item is awaiting a reply")
    item = instrument.item(state.current_item)
    question = instrument.render_question(item.code, language)
    result = parse_reply(reply, item.spec, language)
    if unclear is not None:
        result = Unreadable("ambiguous", unclear)
        state = State(state.current_item, MAX_MISSES - 1, state.answers)

    if isinstance(result, Unreadable):
        misses = state.misses_on_current + 1
        if misses < MAX_MISSES:
            return Step(
                send=(Outgoing("reprompt", f"{reprompt_text} {question}"[:300], item.code),),
                current_item=item.code,
                misses_on_current=misses,
            )
        stored = StoredAnswer(item.code, "unreadable", None, reply, question, result.detail)
        unreadable: tuple[str, ...] = (item.code,)
    else:
        assert isinstance(result, Parsed)
        stored = StoredAnswer(item.code, "answered", result.value, reply, question)
        unreadable = ()

    answers = dict(state.answers)
    answers[item.code] = KnownAnswer(stored.status, stored.value)
    code, skipped = _next(instrument, item.code, answers, language)
    stored_all = (stored, *skipped)
    if code is None:
        return Step(answers=stored_all, completed=True, unreadable=unreadable)
    next_question = Outgoing("question", instrument.render_question(code, language), code)
    return Step(answers=stored_all, send=(next_question,), current_item=code, unreadable=unreadable)


def expire(instrument: Instrument, answers: Mapping[str, KnownAnswer]) -> tuple[StoredAnswer, ...]:
    """Items never answered when the check-in expires are recorded as missing (unknown, never fine)."""
    out: list[StoredAnswer] = []
    known = dict(answers)
    for item in instrument.items:
        if item.code in known:
            continue
        status = "skipped" if _skipped(item, known) else "missing"
        out.append(StoredAnswer(item.code, status, None, None, None))
        known[item.code] = KnownAnswer(status)
    return tuple(out)
