"""What a patient's message says on arrival, before anything else is done with it (pure).

Every inbound text is read for danger (ARCHITECTURE rule 10): the symptom reader's findings, and, when the
text answers a red-flag question, whether it is a clean answer. Only a plain yes or no is an answer to a
red-flag question; a qualified reply ("a little", "not sure"), a "no" with more words ("no, but my legs
are numb") or an unreadable one is an urgent unknown for a nurse to resolve now.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.reading import Lexicon, Reading, Tier, clean_answer, read
from alerts.rules import Evidence, Finding, Urgency
from pro_service.instruments import Item
from pro_service.replies import Parsed, only_choices, parse_reply


@dataclass(frozen=True)
class MessageReading:
    reading: Reading
    red_flag_category: str | None = None  # set when a red-flag question got anything but a clean answer
    red_flag_reason: str | None = None
    # The reply is nothing but choices of the question it answers ("my back and hip"): words that named a
    # choice are not unknown wording, so the loose fallback does not flag them. Any other word is read.
    answered_choice: bool = False

    @property
    def unclear_red_flag(self) -> bool:
        return self.red_flag_category is not None


def read_message(
    text: str, lexicon: Lexicon, *, item: Item | None = None, language: str = "en"
) -> MessageReading:
    """Read a message; `item` is the question it answers (None: outside a check-in, or a keyword)."""
    reading = read(text, lexicon)
    if item is None or not text.strip():
        return MessageReading(reading)
    parsed = parse_reply(text, item.spec, language)
    answered_choice = (
        item.kind == "multi_choice" and isinstance(parsed, Parsed) and only_choices(text, item.spec)
    )
    if item.red_flag is None:
        return MessageReading(reading, answered_choice=answered_choice)
    if not isinstance(parsed, Parsed):
        reason = f"The reply to a red-flag question could not be read ({parsed.detail})."
    elif parsed.value is True:
        return MessageReading(reading, answered_choice=answered_choice)  # the ruleset's rule fires on the yes
    elif isinstance(parsed.value, list) and parsed.value:
        if answered_choice:
            return MessageReading(reading, answered_choice=True)  # only choices: the rules judge them
        # "not the same", "same but now both legs", "maybe as usual": a choice named among other words is
        # not a clean answer to a red flag (the words may change or deny it).
        reason = "A reply to a red-flag question named a choice among other words: not a clean one."
    elif clean_answer(text, lexicon) and not reading.findings:
        return MessageReading(reading, answered_choice=answered_choice)
    else:
        reason = "A 'no' to a red-flag question came with more words, so it is not a clean no."
    return MessageReading(reading, item.red_flag, reason)


def findings_of(
    message: MessageReading, lexicon: Lexicon, *, text: str, item: Item | None, question: str | None
) -> list[Finding]:
    """Alert findings for what a message says: one per category, its most urgent concept first.

    Emergency concepts are urgent, warning concepts same day; an unclear reply to a red-flag question is
    urgent in that question's category. Each finding keeps the patient's words as evidence.
    """
    by_category: dict[str, list[tuple[Urgency, str, str]]] = {}
    for found in message.reading.findings:
        concept = lexicon.concepts[found.concept]
        if concept.fallback and item is not None and message.answered_choice:
            continue  # "my leg" to "where is the pain?" is an answer, not unknown wording
        if concept.fallback and item is not None and item.red_flag is not None:
            # A red-flag question's reply is either its yes (the ruleset's urgent rule) or an urgent
            # unknown in the question's own category: one alert and one text, never a second "unsure".
            continue
        urgency = Urgency.URGENT if found.tier is Tier.EMERGENCY else Urgency.SAME_DAY
        rationale = f'{concept.rationale} The patient wrote "{found.words}" ({found.language}).'
        by_category.setdefault(found.category, []).append((urgency, f"reading.{found.concept}", rationale))
    if message.red_flag_category is not None and item is not None:
        rationale = (
            f"{message.red_flag_reason} Question: {item.code}. Only a plain yes or no answers a red-flag "
            "question; unknown on a red flag is urgent for a nurse to resolve now."
        )
        by_category.setdefault(message.red_flag_category, []).append(
            (Urgency.URGENT, f"red-flag-unclear.{item.code}", rationale)
        )
    evidence = Evidence(
        item_code=item.code if item is not None else None,
        question=question,
        raw_text=text,
        value={
            "read_by": f"{lexicon.name}-v{lexicon.version}",
            "concepts": [f.concept for f in message.reading.findings],
            "words": [f.words for f in message.reading.findings],
            "negated": list(message.reading.negated),
        },
    )
    findings = []
    for category, hits in by_category.items():
        hits.sort(key=lambda hit: -hit[0].rank)
        urgency, rule_id, rationale = hits[0]
        findings.append(
            Finding(
                category=category,
                urgency=urgency,
                rule_id=rule_id,
                rationale=" ".join(dict.fromkeys(h[2] for h in hits)),
                ruleset=lexicon.name,
                ruleset_version=lexicon.version,
                evidence=(evidence,),
                other_rule_ids=tuple(h[1] for h in hits[1:]),
            )
        )
    # Crisis categories first: a message is answered with one safety text, and when it speaks of self-harm
    # that must be the crisis text ("I can't breathe and I want to die").
    crisis = {c.category for c in lexicon.concepts.values() if c.crisis}
    return sorted(findings, key=lambda f: (-f.urgency.rank, f.category not in crisis, f.category))
