"""The symptom reader: any patient text → findings by clinical concept and tier, English and Spanish.

Pure and versioned (the vocabulary is `config/reading/symptoms-v*.yaml`, loaded by `alerts.lexicon`):
the same text and lexicon always give the same findings, and each finding names the lexicon version.

Written by hand rather than on spaCy/medspaCy's ConText, because SMS replies need rules ConText's
defaults get wrong: a leading "no" is often the answer to the question, not a negation of what follows
("no I can't walk"), and in Spanish "no puedo caminar" is the symptom itself. Here a pattern may contain
its own negation, and a negation trigger only reaches a finding across filler words inside one clause.
A finding is also quiet when a resolution or an old episode follows it ("the numbness I had has gone",
"a rib last year"), when it is said of a thing, or of another person the writer sets themselves apart
from ("my sister's legs give way, not me"); carers' words for the patient ("Mum can't walk") never are.
Patterns are pre-filtered by the words they need, so a read costs well under a millisecond with nothing
downloaded (benchmarks/bench_reading.py).
Misspellings are corrected with rapidfuzz (optimal string alignment) against this vocabulary only, and
only for words that are in neither the English nor the Spanish dictionary (pyspellchecker's word lists)
nor already a form of a vocabulary stem.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

from alerts.reading_model import ReadingModel


class Tier(StrEnum):
    EMERGENCY = "emergency"  # urgent: alert, safety text and page at once
    WARNING = "warning"  # same day (within 24 hours)

    @property
    def rank(self) -> int:
        return 2 if self is Tier.EMERGENCY else 1


@dataclass(frozen=True)
class Concept:
    code: str
    tier: Tier
    category: str  # the alert category it raises
    rationale: str
    crisis: bool = False  # the patient gets the crisis text instead of the safety text
    patient_text: str = "safety"  # the text an urgent alert in its category sends: safety|crisis|unsure
    blocked_by: frozenset[str] = frozenset()  # a match with one of these words inside it is no finding
    # A net for wording no pattern knows: found only when no other concept was found.
    fallback: bool = False


@dataclass(frozen=True)
class Pattern:
    concept: str
    language: str
    source: str  # as written in the lexicon, for the evidence
    regex: re.Pattern[str]
    anchor_words: frozenset[str] = frozenset()  # a text can only match if it has one of these words…
    anchor_stems: tuple[str, ...] = ()  # …or a word starting with one of these (none: always tried)


@dataclass(frozen=True)
class Negation:
    before: tuple[re.Pattern[str], ...]
    fillers: frozenset[str]
    after: tuple[re.Pattern[str], ...]
    after_fillers: frozenset[str]
    after_blockers: frozenset[str]  # a resolution followed by these is not one ("gone into my legs")
    recurring: tuple[re.Pattern[str], ...]  # anywhere in the text, no resolution counts ("keeps happening")
    subjects: frozenset[str]  # things, never the patient ("the dog can't walk", "my phone cracked")
    history_before: tuple[re.Pattern[str], ...]  # an old episode ("last year I fell"), ending before it
    history_after: tuple[re.Pattern[str], ...]  # the same after it ("cracked a rib years ago")


@dataclass(frozen=True)
class Others:
    """Other people named as the one with the symptom, and what shows the writer is not that person."""

    people: frozenset[str]  # close family: "my husband", "my sister's legs", "mi cuñado" (need `apart`)
    distant: frozenset[str]  # never the patient: "my neighbour", "my friend's mum", "mi vecina"
    first_person: frozenset[str]  # "i", "me", "yo", "puedo": the finding is the writer's own
    apart: tuple[re.Pattern[str], ...]  # "not me", "yo estoy bien", "should I worry", "he's fine"


@dataclass(frozen=True)
class ModelNet:
    """The text model as a net: above `threshold` a message the vocabulary read nothing in is `concept`."""

    model: ReadingModel
    threshold: float
    concept: str
    min_words: int = 2  # "no", "7", "yes please" are answers, not messages to second-guess
    # Also read a message whose vocabulary findings are all warnings: a same-day word (a funeral, a
    # hospital) must not stop the model reading the rest of a message that may be an emergency. Measured on
    # development-6 held out from training: +3 points of emergency sensitivity, no quiet cost.
    beside_warnings: bool = False


@dataclass(frozen=True, eq=False)  # hashed by identity: the typo cache is per lexicon
class Lexicon:
    name: str
    version: int
    concepts: Mapping[str, Concept]
    patterns: tuple[Pattern, ...]
    negation: Mapping[str, Negation]
    others: Others
    idioms: tuple[re.Pattern[str], ...]
    clause_breaks: frozenset[str]  # single words; multi-word breaks are folded into one token
    multiword_breaks: tuple[tuple[str, ...], ...]
    weak_breaks: frozenset[str]  # a break only before a clause opener: "so my son…", not "so weak"
    multiword_weak_breaks: tuple[tuple[str, ...], ...]
    clause_openers: frozenset[str]
    qualifiers: frozenset[str]
    concerns: frozenset[str]  # words that make a "no" more than an answer ("no, feeling weak")
    concern_stems: tuple[str, ...]  # the same, as stems ("cansad*", "worr*")
    clean_phrases: tuple[re.Pattern[str], ...]  # reassurance removed before qualifiers are looked for
    hedges: tuple[re.Pattern[str], ...]  # phrases that make any reply unclear ("no sé", "not sure")
    vocabulary: frozenset[str]  # every whole word the patterns name (typo targets)
    stems: tuple[str, ...]  # every stem the patterns name
    known_words: frozenset[str] = field(default=frozenset(), repr=False)  # dictionary words: never corrected
    shorthand: Mapping[str, str] = field(default_factory=dict)  # text-speak read as the word: "cnt" → "cant"
    net: ModelNet | None = None  # the second reader, for messages the vocabulary reads nothing in
    # Frames in which words of a crisis concept may be ordinary talk of death ("mum wants to die at home",
    # "¿me voy a morir de esto?"): such a finding becomes `soften_to` (an urgent unsure for a nurse, with a
    # gentler text), never silence and never the crisis text.
    softeners: tuple[re.Pattern[str], ...] = ()
    soften_to: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def candidates(self, words: Iterable[str]) -> list[Pattern]:
        """The patterns worth trying on a text with these words, in lexicon order (a fast pre-filter)."""
        by_word, by_prefix, always = _anchor_index(self)
        chosen = set(always)
        for word in set(words):
            chosen.update(by_word.get(word, ()))
            for stem, index in by_prefix.get(word[:3], ()):
                if word.startswith(stem):
                    chosen.add(index)
        return [self.patterns[i] for i in sorted(chosen)]


@lru_cache(maxsize=16)
def _anchor_index(
    lexicon: Lexicon,
) -> tuple[dict[str, list[int]], dict[str, list[tuple[str, int]]], list[int]]:
    by_word: dict[str, list[int]] = {}
    by_prefix: dict[str, list[tuple[str, int]]] = {}
    always: list[int] = []
    for index, pattern in enumerate(lexicon.patterns):
        if (not pattern.anchor_words and not pattern.anchor_stems) or any(
            len(s) < 3 for s in pattern.anchor_stems
        ):
            always.append(index)
            continue
        for word in pattern.anchor_words:
            by_word.setdefault(word, []).append(index)
        for stem in pattern.anchor_stems:
            by_prefix.setdefault(stem[:3], []).append((stem, index))
    return by_word, by_prefix, always


@dataclass(frozen=True)
class SymptomFinding:
    concept: str
    tier: Tier
    category: str
    words: str  # the patient's words that matched (normalised)
    pattern: str
    language: str


@dataclass(frozen=True)
class Reading:
    lexicon: str
    version: int
    findings: tuple[SymptomFinding, ...]
    negated: tuple[str, ...] = ()  # normalised words of findings read as negated, for the evidence

    @property
    def tier(self) -> Tier | None:
        if not self.findings:
            return None
        return max((f.tier for f in self.findings), key=lambda t: t.rank)

    @property
    def emergencies(self) -> tuple[SymptomFinding, ...]:
        return tuple(f for f in self.findings if f.tier is Tier.EMERGENCY)


def patient_text_for(lexicon: Lexicon, category: str) -> str:
    """The text an urgent alert of this category sends the patient: the crisis text if any concept of the
    category is a crisis, "unsure" when only the reader's nets for unknown wording raise it, else safety."""
    keys = {c.patient_text for c in lexicon.concepts.values() if c.category == category}
    if "crisis" in keys:
        return "crisis"
    return "unsure" if keys == {"unsure"} else "safety"


# --------------------------------------------------------------------------------------------- text
BREAK = "§"  # a clause boundary token: punctuation, a line break, "but", "pero"…
SOFT = "¦"  # a comma: a boundary for patterns and negation, but a resolution may follow it ("…, gone now")
BREAKS = frozenset((BREAK, SOFT))
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018\u02bc`\u00b4\u2032")
_TOKEN = re.compile(r"[^\W_]+|[.;:!?¡¿,\n()]")
# "can not" / "cannot" / "can t" all read as "cant"; the same for the other common "n't" forms. Shared with
# the ruleset's warning phrases (alerts/rules.py).
NOT_FORMS = {
    "can": "cant",
    "could": "couldnt",
    "do": "dont",
    "does": "doesnt",
    "did": "didnt",
    "will": "wont",
    "would": "wouldnt",
    "should": "shouldnt",
    "must": "mustnt",
    "is": "isnt",
    "are": "arent",
    "was": "wasnt",
    "were": "werent",
    "has": "hasnt",
    "have": "havent",
    "had": "hadnt",
}
_CONTRACTED = frozenset(NOT_FORMS.values())


def fold(text: str) -> str:
    """Lower case, accents and apostrophes removed ("Can’t" → "cant", "caí" → "cai", "niño" → "nino")."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _raw_tokens(text: str, shorthand: Mapping[str, str] | None = None) -> list[str]:
    out: list[str] = []
    words = _TOKEN.findall(fold(text))
    if shorthand:  # text-speak first, so "cnt" + "not" forms read like "can" + "not"
        words = [shorthand.get(word, word) for word in words]
    i = 0
    while i < len(words):
        word, following = words[i], words[i + 1] if i + 1 < len(words) else None
        if not word[0].isalnum():
            out.append(SOFT if word == "," else BREAK)
        elif word == "cannot":
            out.append("cant")
        elif following == "not" and word in NOT_FORMS:  # "can not" reads as "cant"
            out.append(NOT_FORMS[word])
            i += 1
        elif following == "t" and word + "t" in _CONTRACTED:  # "can t": the apostrophe typed as a space
            out.append(word + "t")
            i += 1
        else:
            out.append(word)
        i += 1
    return out


def tokens(text: str, lexicon: Lexicon) -> list[str]:
    """Normalised words of a text, typos corrected, with clause boundaries as BREAK tokens."""
    raw = [_correct(word, lexicon) for word in _raw_tokens(text, lexicon.shorthand)]
    out: list[str] = []
    i = 0
    while i < len(raw):
        length = _break_at(raw, i, lexicon)
        if length:
            out.append(BREAK)
            i += length
        else:
            out.append(raw[i])
            i += 1
    return out


def _break_at(raw: list[str], i: int, lexicon: Lexicon) -> int:
    """How many words from `i` make a clause break (0 if none)."""
    for phrase in lexicon.multiword_breaks:
        if tuple(raw[i : i + len(phrase)]) == phrase:
            return len(phrase)
    if raw[i] in lexicon.clause_breaks:
        return 1
    weak = [p for p in lexicon.multiword_weak_breaks if tuple(raw[i : i + len(p)]) == p]
    length = len(weak[0]) if weak else 1 if raw[i] in lexicon.weak_breaks else 0
    following = raw[i + length] if length and i + length < len(raw) else None
    if following is not None and (following in lexicon.clause_openers or following in BREAKS):
        return length
    return 0


def _correct(word: str, lexicon: Lexicon) -> str:
    if (
        word in BREAKS
        or len(word) < 4
        or not word.isalpha()
        or word in lexicon.vocabulary
        or word in lexicon.known_words
    ):
        return word
    return _closest(word, lexicon)


@lru_cache(maxsize=8192)
def _closest(word: str, lexicon: Lexicon) -> str:
    # One edit (a transposition counts as one) for words up to 7 letters, two beyond: "cnat" → "cant".
    # The first letter is kept ("anos" is not "manos", "volviendo" is not "devolviendo").
    if word.startswith(lexicon.stems):  # already a form of a vocabulary stem: "dormidas" stays
        return word
    allowed = 1 if len(word) < 8 else 2
    # Sorted, so a tie ("wlak": "walk" or "weak") is broken the same way in every process.
    choices = sorted(w for w in lexicon.vocabulary if w[0] == word[0])
    best = extractOne(word, choices, scorer=OSA.distance, score_cutoff=allowed)
    if best is not None:
        return str(best[0])
    for stem in lexicon.stems:  # "tnigling" → "tingling", "ormigueo" → "hormigueo": the stem one edit away
        if len(stem) < 5:  # "tantas" is not "pant…"
            continue
        cuts = (len(stem), len(stem) - 1, len(stem) + 1) if len(stem) >= 6 else (len(stem),)
        for cut in cuts:  # a letter swapped, or in a long stem dropped or doubled
            if cut <= len(word) and OSA.distance(word[:cut], stem) <= 1:
                return stem + word[cut:]
    return word


# ------------------------------------------------------------------------------------------ reading
def read(text: str, lexicon: Lexicon) -> Reading:
    """Findings in a patient's text (every language is read: patients mix them)."""
    toks = tokens(text, lexicon)
    joined, starts = _join(toks)
    idiom_spans = [_span(m, starts) for rx in lexicon.idioms for m in rx.finditer(joined)]
    named: list[tuple[int, int, Pattern]] = []
    loose: list[tuple[int, int, Pattern]] = []  # the fallback concept's matches, settled after the named ones
    set_aside: list[tuple[int, int]] = []  # spans the vocabulary read as not a symptom: the model skips them
    for pattern in lexicon.candidates(toks):
        concept = lexicon.concepts[pattern.concept]
        for match in pattern.regex.finditer(joined):
            start, end = _span(match, starts)
            if end <= start or any(s <= start and end <= e for s, e in idiom_spans):
                continue
            if concept.blocked_by and any(t in concept.blocked_by for t in toks[start + 1 : end - 1]):
                set_aside.append((start, end))  # "my legs are NOT strange": a negation inside a loose match
                continue
            (loose if concept.fallback else named).append((start, end, pattern))
    named.sort(key=lambda f: (f[0], -f[1]))
    loose.sort(key=lambda f: (f[0], -f[1]))
    negated_spans: list[tuple[int, int]] = []
    findings: list[SymptomFinding] = []
    negated_words: list[str] = []
    read_spans: list[tuple[int, int]] = []  # named findings that stand
    # Crisis words inside a talk-of-death frame ("mum wants to die at home"): an urgent unsure unless the
    # same concept is also found outside any frame (Lexicon.softeners).
    frames = [_span(m, starts) for rx in lexicon.softeners for m in rx.finditer(joined)]
    softened: list[tuple[str, str, str]] = []  # (words, source, language)
    recurs = bool(named or loose) and any(
        rx.search(joined) for n in lexicon.negation.values() for rx in n.recurring
    )
    apart: bool | None = None  # whether the writer sets themselves apart ("not me"), read when needed
    for group in (named, loose):
        for start, end, pattern in group:
            fallback = group is loose
            if fallback and (
                any(f.tier is Tier.EMERGENCY for f in findings)
                or any(s < end and start < e for s, e in read_spans)
            ):
                continue  # the words were read as a named symptom, or an emergency was already named
            words = " ".join(toks[start:end])
            crisis = lexicon.concepts[pattern.concept].crisis
            negated = _negated(toks, start, end, lexicon, joined, starts, negated_spans, recurs, crisis)
            whose = None if negated else _someone_else(toks, start, end, lexicon.others)
            if whose == "distant":
                negated = True
            elif whose == "close":
                if apart is None:
                    apart = any(rx.search(joined) for rx in lexicon.others.apart)
                negated = apart
            if negated:
                set_aside.append((start, end))
                if not fallback:  # a loose match never carries a negation on to the next words
                    negated_spans.append((start, end))
                if words not in negated_words:
                    negated_words.append(words)
                continue
            concept = lexicon.concepts[pattern.concept]
            if not fallback:
                read_spans.append((start, end))
            if concept.crisis and any(fs <= start and end <= fe for fs, fe in frames):
                softened.append((words, f"softened ({concept.code}): {pattern.source}", pattern.language))
                continue
            if not any(f.concept == concept.code for f in findings):
                findings.append(
                    SymptomFinding(
                        concept.code, concept.tier, concept.category, words, pattern.source, pattern.language
                    )
                )
    if softened and not any(
        f.tier is Tier.EMERGENCY and lexicon.concepts[f.concept].crisis for f in findings
    ):
        soft = lexicon.concepts[str(lexicon.soften_to)]
        words, source, language = softened[0]
        if not any(f.concept == soft.code for f in findings):
            findings.append(SymptomFinding(soft.code, soft.tier, soft.category, words, source, language))
    net = lexicon.net
    if net is not None and (
        not findings or (net.beside_warnings and all(f.tier is Tier.WARNING for f in findings))
    ):
        set_aside += [(s, e) for s, e in idiom_spans if e - s > 1]  # one-word idioms only guard a word
        set_aside += [_span(m, starts) for rx in lexicon.clean_phrases for m in rx.finditer(joined)]
        findings = findings + _second_reading(toks, set_aside, lexicon, net)
    findings.sort(key=lambda f: (-f.tier.rank, f.concept))
    return Reading(lexicon.name, lexicon.version, tuple(findings), tuple(negated_words))


def model_text(text: str, lexicon: Lexicon) -> str:
    """What the text model reads of a whole message: its normalised words (the model is trained on this)."""
    return " ".join(t for t in tokens(text, lexicon) if t not in BREAKS)


def _unread_clauses(toks: list[str], set_aside: list[tuple[int, int]]) -> list[list[str]]:
    """The clauses (between full stops, "but"…) in which the vocabulary set nothing aside."""
    clauses: list[list[str]] = []
    current: list[str] = []
    touched = False
    for i, tok in enumerate([*toks, BREAK]):
        if tok == BREAK:
            if current and not touched:
                clauses.append(current)
            current, touched = [], False
            continue
        touched = touched or any(s <= i < e for s, e in set_aside)
        if tok != SOFT:
            current.append(tok)
    return clauses


def _second_reading(
    toks: list[str], set_aside: list[tuple[int, int]], lexicon: Lexicon, net: ModelNet
) -> list[SymptomFinding]:
    """The text model's opinion on the clauses the vocabulary read nothing in (alerts/reading_model.py).

    A clause holding a denied or resolved symptom, someone else's, a figure of speech or reassurance ("no
    numbness", "legs feel normal") is left out, so the rest of the message is still read ("no numbness.
    I just want to stop existing"). Not on an answer of a word ("no", "7", "yes please")."""
    words = [w for clause in _unread_clauses(toks, set_aside) for w in clause]
    if len(words) < net.min_words:
        return []
    text = " ".join(words)
    probability = net.model.emergency_probability(text)
    if probability < net.threshold:
        return []
    concept = lexicon.concepts[net.concept]
    source = f"{net.model.label} p={probability:.2f} (threshold {net.threshold})"
    return [SymptomFinding(concept.code, concept.tier, concept.category, text[:80], source, "any")]


def _join(toks: list[str]) -> tuple[str, list[int]]:
    """' tok tok § tok ' and the character offset where each token starts."""
    starts: list[int] = []
    parts = [" "]
    offset = 1
    for tok in toks:
        starts.append(offset)
        parts.append(tok + " ")
        offset += len(tok) + 1
    return "".join(parts), starts


def _span(match: re.Match[str], starts: list[int]) -> tuple[int, int]:
    first = bisect.bisect_left(starts, match.start())
    last = bisect.bisect_left(starts, match.end())
    return first, last


def _negated(
    toks: list[str],
    start: int,
    end: int,
    lexicon: Lexicon,
    joined: str,
    starts: list[int],
    negated_spans: list[tuple[int, int]],
    recurs: bool = False,
    crisis: bool = False,
) -> bool:
    covered = {i for s, e in negated_spans for i in range(s, e)}
    for negation in lexicon.negation.values():
        # Before: trigger, then only fillers (or findings already negated, "no numbness or tingling").
        i = start - 1
        between = 0
        while i >= 0 and toks[i] not in BREAKS and between <= 4:
            if _member(toks[i], negation.subjects) and not crisis:
                # "the dog can't walk", "my phone screen cracked"; but "looked on the internet how many
                # pills it takes" is still about the writer: no thing wants to die
                return True
            if _trigger_ends_at(negation.before, joined, starts, i):
                return True
            if _trigger_ends_at(negation.history_before, joined, starts, i):
                return True  # "last year I cracked a rib"
            if toks[i] not in negation.fillers and i not in covered:
                break
            between += 0 if i in covered else 1
            i -= 1
        # After: fillers, then a resolution ("the tingling I mentioned has gone", "…, fine now") or an old
        # episode ("a rib last year"); a comma may stand between, a full stop or "but" may not.
        j = end
        skipped = 0
        while j < len(toks) and toks[j] != BREAK and skipped <= 10:
            if toks[j] == SOFT:
                j += 1
                continue
            stop = None if recurs else _trigger_end(negation.after, joined, starts, j)
            if stop is not None and (stop >= len(toks) or toks[stop] not in negation.after_blockers):
                return True
            if toks[j - 1] not in ("since", "desde") and _trigger_end(
                negation.history_after, joined, starts, j
            ):
                return True
            if toks[j] not in negation.after_fillers:
                break
            skipped += 1
            j += 1
    return False


def _someone_else(toks: list[str], start: int, end: int, others: Others) -> str | None:
    """Whether the finding is said of another person named just before it ("my sister's legs give way").

    The nearest person word before it in the clause decides ("distant" or "close" family), unless the
    writer's own words ("I", "my", "puedo") come first: "Mum can't walk" is a carer writing about the
    patient, "my husband says I can't walk" is the patient. None when it is the patient's.
    """
    if any(t in others.first_person for t in toks[start:end]):
        return None
    for i in range(start - 1, max(start - 9, -1), -1):
        if toks[i] == BREAK or toks[i] in others.first_person:
            return None
        if _member(toks[i], others.distant):
            return "distant"
        if _member(toks[i], others.people):
            return "close"
    return None


def _member(word: str, words: frozenset[str]) -> bool:
    """In the set, or its plural or possessive ("sisters", "neighbour's" folds to "neighbours")."""
    return word in words or (word.endswith("s") and word[:-1] in words)


def _trigger_ends_at(triggers: Iterable[re.Pattern[str]], joined: str, starts: list[int], index: int) -> bool:
    """A trigger whose last word is token `index` (the trigger regexes end in \\Z)."""
    head = joined[: starts[index + 1]] if index + 1 < len(starts) else joined
    return any(rx.search(head) is not None for rx in triggers)


def _trigger_end(
    triggers: Iterable[re.Pattern[str]], joined: str, starts: list[int], index: int
) -> int | None:
    """The token index just after a trigger that starts at token `index`, if one does."""
    tail = joined[starts[index] :]
    for rx in triggers:
        match = rx.match(tail)
        if match is not None:
            return bisect.bisect_left(starts, starts[index] + match.end())
    return None


# ------------------------------------------------------------------------------ red-flag questions
def clean_answer(text: str, lexicon: Lexicon) -> bool:
    """Whether a "no" to a red-flag question is a plain answer, reassurance aside ("No, legs working fine").

    Open-ended on purpose: the reply is clean unless it asks something ("?"), hedges or qualifies (a
    qualifier word: "a little", "not sure", "just tired", "but", "still") or names a concern ("weak",
    "tired", "worried", "call me"). Reassuring phrases ("nothing like that", "I can still walk", "igual
    que siempre") are set aside before qualifiers are looked for. Whether the reader finds a symptom is
    checked by the caller. Anything unclear is for a nurse to resolve.
    """
    if "?" in text or "¿" in text:
        return False
    toks = [_correct(word, lexicon) for word in _raw_tokens(text, lexicon.shorthand)]  # "but", "still" kept
    words = [t for t in toks if t not in BREAKS]
    if not words or any(w in lexicon.clause_breaks for w in words):  # "no but…", "no, pero…"
        return False
    joined, starts = _join(toks)
    covered = {
        i for rx in lexicon.clean_phrases for m in rx.finditer(joined) for i in range(*_span(m, starts))
    }
    if any(rx.search(joined) for rx in lexicon.hedges):  # "no sé", "not sure", "ni idea"
        return False
    rest = [t for i, t in enumerate(toks) if i not in covered and t not in BREAKS]
    flagged = {
        t
        for t in rest
        if t in lexicon.qualifiers or t in lexicon.concerns or t.startswith(lexicon.concern_stems)
    }
    if flagged:  # unless they are words of a symptom the reader read as denied ("no numbness or tingling")
        flagged -= {w for words in read(text, lexicon).negated for w in words.split()}
    return not flagged
