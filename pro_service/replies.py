"""Reading patients' SMS replies: answers to questionnaire items, and control keywords (STOP, HELP...).

Pure functions, standard library only. English and Spanish words are always both accepted (patients
mix languages); the ``language`` argument only breaks ties. Anything that cannot be read safely comes
back as ``Unreadable`` so a person looks at it: guessing wrong about a symptom is worse than asking again.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

AnswerKind = Literal["yes_no", "integer", "multi_choice", "free_text"]


@dataclass(frozen=True)
class AnswerSpec:
    kind: AnswerKind
    minimum: int | None = None  # integer: inclusive bounds
    maximum: int | None = None
    choices: tuple[int, ...] = ()  # multi_choice: allowed numbers
    none_allowed: bool = False  # multi_choice: "0" / "none" / "nada" mean the empty list
    severity_words: bool = False  # integer: accept PRO-CTCAE words (mild, severe...)
    # multi_choice: words that name a choice ("back" for 1), folded (lower case, no accents). A word
    # ending in * is a stem ("constipat*"); several words are a phrase of adjacent words ("no change").
    choice_words: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Parsed:
    value: bool | int | list[int] | str | None


@dataclass(frozen=True)
class Unreadable:
    reason: str  # "empty", "not_yes_no", "not_a_number", "out_of_range", "unknown_choice", "ambiguous"
    detail: str  # short English explanation for staff


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    NURSE = "nurse"


# ---------------------------------------------------------------------------------------------- text
_APOSTROPHES = str.maketrans("", "", "'’‘`´ʼ")  # removed, not spaced, so "don't" and "dont" agree
_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # accents, emoji variation selectors, zero-width chars
_NON_WORD = re.compile(r"[\W_]+")


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


def _phrases(piped: str) -> frozenset[str]:
    return frozenset(piped.split("|"))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) not in _DROP_CATEGORIES)


def normalize(text: str) -> str:
    """Lower-case, accents folded, apostrophes dropped, other punctuation and symbols to spaces."""
    return " ".join(_NON_WORD.sub(" ", _fold(text)).split())


_POLITE = _words(
    "please pls plz thanks thank you thx ty gracias muchas por favor porfa porfavor ok okay now it ya"
)


def _strip_polite(norm: str) -> str:
    """Drop courtesy words from both ends: "no thank you" -> "no", "stop it please" -> "stop"."""
    words = norm.split()
    while words and words[0] in _POLITE:
        words.pop(0)
    while words and words[-1] in _POLITE:
        words.pop()
    return " ".join(words)


# -------------------------------------------------------------------------------------------- yes/no
_TOKEN = re.compile(r"[^\W_]+|\S")  # words, and each other visible character on its own
_EMOJI = {"👍": "yes", "✅": "yes", "✔": "yes", "☑": "yes", "👎": "no", "❌": "no", "✖": "no", "🤷": "maybe"}
_YES_RE = re.compile(r"y+e+s+|y+e+[ah]+|y+e+a*p+|y+u+p+|y+a+s+|yesh|yse|s+i+|s+i+p+|sure|true|correct")
_NO_RE = re.compile(r"n|n+o+|n+o+p+e*|n+a+h+|naw|nay|nel|none|nada|nothing|never|nunca|false|tampoco")
_YN_PHRASES: dict[tuple[str, ...], str] = {
    tuple(phrase.split()): polarity
    for polarity, phrases in {
        "yes": "i do|i have|i did|of course|for sure|definitely|absolutely|indeed|affirmative|"
        "claro|claro que si|por supuesto|cierto|correcto|afirmativo|asi es|efectivamente|exacto|seguro",
        "no": "no thanks|no thank you|not really|not at all|no gracias|para nada|de ninguna manera|"
        "negative|negativo|ninguno|ninguna|i dont|i do not|i didnt|i did not|i havent|i have not|"
        "i have no|i have none|i have nothing|i am not|im not|i dont think so|dont think so|ya no|no way",
        "maybe": "maybe|perhaps|possibly|probably|not sure|unsure|im not sure|i am not sure|not certain|"
        "no se|nose|no lo se|no estoy seguro|no estoy segura|quizas|quiza|tal vez|talvez|a lo mejor|"
        "puede ser|puede que|idk|dunno|i dunno|dont know|i dont know|i do not know|no idea|"
        "i have no idea|sometimes|a veces|kind of|kinda|sort of|sorta|more or less|mas o menos",
        # A yes only when alone: "y" is Spanish "and", "ya" "already"; "I am" is yes, "I am fine" is not.
        "weak": "y|ye|ya|yah|i am",
    }.items()
    for phrase in phrases.split("|")
}
_YN_MAX = max(len(p) for p in _YN_PHRASES)
_OK_WORDS = _words("ok okay okey okk k kk fine alright vale bien bueno")  # alone, "ok" says neither
_FILLERS = _OK_WORDS | _words("well um umm uh hmm oh ah so pues hi hello hey hola buenos buenas dias tardes")
_CONNECTORS = _words("and or but y o pero & / +")
_FULL_STOPS = _words(". ! ? ;")


def _yn_at(toks: list[str], i: int) -> tuple[str, int] | None:
    """The yes/no/maybe/weak phrase starting at toks[i] (longest wins) and how many tokens it spans."""
    for n in range(min(_YN_MAX, len(toks) - i), 0, -1):
        polarity = _YN_PHRASES.get(tuple(toks[i : i + n]))
        if polarity:
            return polarity, n
    if _YES_RE.fullmatch(toks[i]):
        return "yes", 1
    return ("no", 1) if _NO_RE.fullmatch(toks[i]) else None


def _is_punct(tok: str) -> bool:
    return not tok[0].isalnum()


def _parse_yes_no(text: str) -> Parsed | Unreadable:
    raw = _TOKEN.findall(_fold(text))
    toks = [_EMOJI.get(t, t) for t in raw]
    i, saw_ok = 0, False
    while i < len(toks) and (_is_punct(toks[i]) or toks[i] in _FILLERS):  # "Hi, yes", "ok no"
        saw_ok = saw_ok or toks[i] in _OK_WORDS
        i += 1
    lead = _yn_at(toks, i) if i < len(toks) else None
    if lead is None or lead[0] == "maybe":
        if lead is not None or saw_ok:
            return Unreadable("ambiguous", "the reply is neither clearly yes nor clearly no")
        return Unreadable("not_yes_no", "no yes or no found in the reply")
    polarity, k = lead[0], i + lead[1]
    if polarity == "weak":
        if not all(_is_punct(t) for t in toks[k:]):
            return Unreadable("not_yes_no", "no yes or no found in the reply")
        polarity = "yes"
    # "yes and no", "yes/no", "yes, no.", "yes maybe", "Yes. No wait": the opposite straight after the
    # answer (joined by a connector or a full stop, or ending the message) is a contradiction.
    # "Yes, no problem" stays a yes; so does "yes, my legs feel weak" (the caller keeps the raw text).
    joined = False
    while k < len(toks) and (_is_punct(toks[k]) or toks[k] in _CONNECTORS):
        joined = joined or toks[k] in _CONNECTORS or toks[k] in _FULL_STOPS
        k += 1
    following = _yn_at(toks, k) if k < len(toks) else None
    if (
        following is not None
        and following[0] not in (polarity, "weak")
        and (joined or all(_is_punct(t) for t in toks[k + following[1] :]))
    ):
        return Unreadable("ambiguous", "the reply says both yes and no")
    if polarity == "no" and _taken_back(raw, i + lead[1], accented_si=_ACCENTED_SI.search(text) is not None):
        return Unreadable("ambiguous", "the reply says no, then yes")
    return Parsed(polarity == "yes")


# A "yes" later in a reply that began "no" takes the no back ("no... I mean yes", "No sorry YES", "no, digo
# que si", "no... actually I do"). Not "sure", "true", "correct" ("no, I'm sure it's nothing" stays a no),
# and not an emoji: a thumbs-up signs off a plain no ("No. All working as it should 👍").
_LATER_YES = re.compile(
    r"y+e+s+|y+e+[ah]+|y+e+a*p+|y+u+p+|yesh|yws|yrs|yez|yeas|ues|yss|aye|m+h+m+|uhuh|s+i+p*"
)
_TAKING_BACK = _words("actually wait mean oops hang")  # "... I do" after these is a yes
# "sí" with its accent is always yes; folded, it is "si", which is also "if".
_ACCENTED_SI = re.compile(r"(?<!\w)s[íÍ](?!\w)", re.IGNORECASE)
# Spanish "si" is also "if": only where its clause goes on to a report-back ("no, si me duele le aviso",
# "no, y si noto algo te escribo"), or after "sé" ("no sé si fue de repente": whether) is it read as "if";
# "no. si lo tengo", "no, si doctor" take the no back.
_REPORT_BACK = _words(
    "aviso avisare avise avisa escribo escribire escriba llamo llamare llame digo dire diga "
    "comunico comunicare contacto contactare mando mandare cuento contare"
)


_WHETHER = _words("se sabe sabia saber pregunto pregunta preguntar")  # "no sé si fue de repente"


def _spanish_if(toks: list[str], j: int) -> bool:
    if j > 0 and toks[j - 1] in _WHETHER:
        return True
    clause: list[str] = []
    for tok in toks[j + 1 :]:
        if _is_punct(tok):
            break
        clause.append(tok)
    return bool(clause) and any(tok in _REPORT_BACK for tok in clause)


def _taken_back(raw: list[str], start: int, *, accented_si: bool) -> bool:
    """Whether a reply that began "no" says yes later (`raw`: the tokens before emoji were read)."""
    for j in range(start, len(raw)):
        tok = raw[j]
        if tok in _EMOJI:
            continue
        if tok == "uh" and j + 1 < len(raw) and raw[j + 1] == "huh":
            return True
        if _LATER_YES.fullmatch(tok) and (not tok.startswith("s") or accented_si or not _spanish_if(raw, j)):
            return True
        if tok in _TAKING_BACK:
            after = raw[j + 1 : j + 5]
            if any(_yn_at(after, n) == ("yes", 2) for n in range(len(after) - 1)):
                return True  # "... actually I do", "wait, I have"
            if any(tuple(after[n : n + 2]) in _IT_DID for n in range(len(after) - 1)):
                return True
    return False


_IT_DID = {("it", "has"), ("it", "did"), ("it", "does")}  # "Nope - oh hang on, it has"


# ------------------------------------------------------------------------------------------ numbers
class _Tok(NamedTuple):
    kind: str  # "num", "word", "dash", "slash", "other"
    text: str
    start: int
    end: int


_NUM_TOKEN = re.compile(
    r"(?P<num>[0-9]+(?:[.,][0-9]+)?)|(?P<word>[^\W\d_]+)|(?P<dash>[-‐‑‒–—−])|(?P<slash>[/⁄])|\S"
)
_SYMBOLS = {"dash": "-", "slash": "/"}  # every dash reads as "-"
_NUMBER_WORDS = {
    word: value
    for words in (
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty",
        "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
        "dieciseis diecisiete dieciocho diecinueve veinte",
    )
    for value, word in enumerate(words.split())
} | {"un": 1, "una": 1, "eigth": 8}
_HUGE = 10**18  # stands in for numbers too long to be worth converting
_O_FOR_ZERO = re.compile(r"(?<=[0-9])o\b")  # "1O" is a mistyped 10; reading it as 1 would under-read
_SEVERITY = {"none": 0, "nothing": 0, "ninguno": 0, "ninguna": 0, "nada": 0, "mild": 2, "leve": 2}
_SEVERITY |= dict.fromkeys(("moderate", "moderado", "moderada"), 5)
_SEVERITY |= dict.fromkeys(("severe", "sever", "severo", "severa", "intenso", "intensa", "fuerte"), 7)
_INTENSIFIERS = _words("very muy extremely extremadamente")  # "very severe" is 9, not 7
_NEGATORS = _words("not no isnt wasnt ni nor never nunca")
_DENOMINATOR_LINKS = frozenset({("/",), ("out", "of"), ("outta",), ("of",), ("de",), ("sobre",), ("over",)})
_RANGE_LINKS = frozenset({("-",), ("/",), ("to",), ("or",), ("o",), ("u",), ("a",), ("maybe",)})


def _tokenize(folded: str) -> list[_Tok]:
    toks = [_Tok(m.lastgroup or "other", m.group(), *m.span()) for m in _NUM_TOKEN.finditer(folded)]
    return [t._replace(text=_SYMBOLS[t.kind]) if t.kind in _SYMBOLS else t for t in toks]


def _link(toks: list[_Tok], first: int, second: int) -> tuple[str, ...]:
    """The words and symbols joining two numbers: ("out", "of") in "7 out of 10"."""
    return tuple(t.text for t in toks[first + 1 : second] if t.kind != "other")


def _word_number(toks: list[_Tok], i: int, language: str) -> int | None:
    word = toks[i].text
    if word == "once":  # English "once" is not eleven
        return 11 if language == "es" else None
    if (
        word in ("un", "una")
        and i + 1 < len(toks)
        and (toks[i + 1].kind == "num" or toks[i + 1].text in _NUMBER_WORDS)
    ):
        return None  # "una 6" is "a 6"; alone, "una" is one
    return _NUMBER_WORDS.get(word)


def _round_half_up(raw: str) -> int:
    # Decimals round half up ("6.5" -> 7): for a symptom score the higher reading is the safer one.
    whole, _, fraction = raw.replace(",", ".").partition(".")
    if len(whole.lstrip("0")) > 15:
        return _HUGE
    return int(whole) + (1 if fraction[:1] >= "5" else 0)


def _parse_integer(text: str, spec: AnswerSpec, language: str) -> Parsed | Unreadable:
    folded = _O_FOR_ZERO.sub("0", _fold(text))
    toks = _tokenize(folded)
    mentions: list[tuple[int, int]] = []  # (token position, value)
    for i, tok in enumerate(toks):
        if tok.kind == "num":
            raws = tok.text.split(",") if "," in tok.text and language != "es" else [tok.text]
            for raw in raws:  # "6,5" is a decimal in Spanish, two numbers in English
                dash = toks[i - 1] if i else None
                negative = (  # "-1" is negative; "6-7", "pain - 7" and "level-7" are not
                    dash is not None
                    and dash.kind == "dash"
                    and dash.end == tok.start
                    and (dash.start == 0 or not folded[dash.start - 1].isalnum())
                    and (i < 2 or toks[i - 2].kind != "num")
                )
                mentions.append((i, -_round_half_up(raw) if negative else _round_half_up(raw)))
        elif tok.kind == "word":
            number = _word_number(toks, i, language)
            if number is None and spec.severity_words and tok.text in _SEVERITY:
                number = _SEVERITY[tok.text]
                before = [t.text for t in toks[max(0, i - 2) : i] if t.kind == "word"]
                if number and _NEGATORS.intersection(before):
                    return Unreadable("ambiguous", f"negated severity word {tok.text!r}")
                if number == 7 and before and before[-1] in _INTENSIFIERS:
                    number = 9
            if number is not None:
                mentions.append((i, number))

    denominator = spec.maximum if spec.maximum is not None else 10
    groups: list[list[int]] = []  # numbers read together, e.g. the two ends of a range
    for n, (pos, value) in enumerate(mentions):
        previous = mentions[n - 1][0] if n else -1
        link = _link(toks, previous, pos) if n else None
        lead_in = _link(toks, max(-1, pos - 3), pos)
        if value == denominator and (
            link in _DENOMINATOR_LINKS or lead_in[-1:] in {("/",), ("outta",)} or lead_in == ("out", "of")
        ):
            continue  # "7/10", "7 out of 10", "8 de 10", "out of 10 I'd say 7"
        if groups and (
            link in _RANGE_LINKS
            or (
                link in {("and",), ("y",)}
                and previous > 0
                and toks[previous - 1].text in {"between", "entre"}
            )
        ):
            # A range ("6-7", "6 or 7", "between 6 and 7") reads as its higher end: for a symptom score,
            # under-reading is the dangerous mistake.
            groups[-1].append(value)
        else:
            groups.append([value])
    if len(groups) > 1:  # an echoed scale ("on a scale of 0 to 10, 7") is not an answer
        groups = [
            g for g in groups if not (len(g) == 2 and g[0] in {0, 1, spec.minimum} and g[1] == denominator)
        ]
    values = sorted({max(g) for g in groups})
    if not values:
        return Unreadable("not_a_number", "no number found in the reply")
    if len(values) > 1:
        shown = ", ".join(str(v) for v in values[:4])
        return Unreadable("ambiguous", f"more than one number in the reply: {shown}")
    value = values[0]
    too_low = spec.minimum is not None and value < spec.minimum
    too_high = spec.maximum is not None and value > spec.maximum
    if too_low or too_high or abs(value) >= _HUGE:  # never clipped: "12" is not a 10
        shown = "a very large number" if abs(value) >= _HUGE else str(value)
        low, high = ("..." if b is None else b for b in (spec.minimum, spec.maximum))
        return Unreadable("out_of_range", f"{shown} is outside {low}-{high}")
    return Parsed(value)


# ------------------------------------------------------------------------------------- multi choice
_NONE_PHRASES = _phrases(
    "0|none|no|nope|nothing|ninguno|ninguna|nada|none of them|none of the above|none of these|"
    "no thanks|no gracias|ninguno de ellos|ninguna de ellas|ninguna de las anteriores|nada de eso|cero|zero"
)
_NONE_WORDS = _words("none nothing ninguno ninguna nada")
_ALL_PHRASES = _phrases(
    "all|all of them|all of the above|all of these|todos|todas|todos ellos|todas ellas|"
    "todas las anteriores|todos los anteriores"
)
_CHOICE_RANGE_LINKS = frozenset({("-",), ("to",), ("a",), ("hasta",)})


def _choices_text(choices: tuple[int, ...]) -> str:
    ordered = sorted(set(choices))
    if len(ordered) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(c) for c in ordered) or "(no choices)"


# "one leg", "una pierna", "como un cinto": where choices have words, an article beside other words is not
# the number 1 (alone, "one" still is).
_ARTICLES = _words("one un una uno")


def _named_choices(toks: list[_Tok], choice_words: tuple[tuple[str, int], ...]) -> tuple[set[int], set[int]]:
    """Choices named in words ("my back and hip" -> 1, 3) and the token positions those words used."""
    picked: set[int] = set()
    used: set[int] = set()
    for entry, choice in choice_words:
        parts = entry.split()
        for start in range(len(toks) - len(parts) + 1):
            window = toks[start : start + len(parts)]
            if all(t.kind == "word" and _names(t.text, part) for t, part in zip(window, parts, strict=True)):
                picked.add(choice)
                used.update(range(start, start + len(parts)))
    return picked, used


# Words that may sit around a choice without saying anything more ("my left hip and the back").
_CHOICE_FILLERS = _words(
    "my the a an and in on of both left right upper lower side area mostly mainly also too plus or as ever "
    "mi mis el la los las y e en de del ambos ambas izquierda izquierdo derecha derecho lado zona tambien o "
    "que como"
)


def only_choices(text: str, spec: AnswerSpec) -> bool:
    """Whether a multiple-choice reply says nothing but its choices: numbers, choice words, "none" and
    fillers. "my leg" is only an answer; "my leg feels weird" says more, and the more is read for danger."""
    toks = _tokenize(_fold(text))
    _, named = _named_choices(toks, spec.choice_words)
    return all(
        i in named
        or tok.kind != "word"
        or tok.text in _CHOICE_FILLERS
        or tok.text in _NONE_WORDS
        or tok.text in _NUMBER_WORDS
        or tok.text in _POLITE
        for i, tok in enumerate(toks)
    )


def _names(word: str, part: str) -> bool:
    return word.startswith(part[:-1]) if part.endswith("*") else word == part


def _parse_multi_choice(text: str, spec: AnswerSpec, language: str) -> Parsed | Unreadable:
    core = _strip_polite(normalize(text))
    allowed = frozenset(spec.choices)
    if core in _ALL_PHRASES and allowed:  # "all" ticks every box: over-reporting is the safer error
        return Parsed(sorted(allowed))
    if core in _NONE_PHRASES:
        if spec.none_allowed:
            return Parsed([])
        return Unreadable("unknown_choice", f"{core!r} is not one of {_choices_text(spec.choices)}")
    toks = _tokenize(_fold(text))
    picked, named = _named_choices(toks, spec.choice_words)
    said_none = False
    last_number: int | None = None  # token position, to spot ranges like "1-3"
    for i, tok in enumerate(toks):
        if i in named:
            continue
        if tok.kind == "num":
            numbers = [(raw, int(raw) if len(raw) <= 15 else _HUGE) for raw in re.split(r"[.,]", tok.text)]
        elif (
            tok.kind == "word"
            and not (spec.choice_words and tok.text in _ARTICLES and len(toks) > 1)
            and (word_value := _word_number(toks, i, language)) is not None
        ):
            numbers = [(tok.text, word_value)]
        else:
            said_none = said_none or tok.text in _NONE_WORDS
            continue
        if last_number is not None and _link(toks, last_number, i) in _CHOICE_RANGE_LINKS:
            # "1-3": both ends, or everything between? Ask rather than guess.
            return Unreadable("ambiguous", "a range of choices; each number should be listed")
        last_number = i
        for raw, value in numbers:
            if value in allowed:
                picked.add(value)
            elif value == 0 and spec.none_allowed:
                said_none = True
            elif raw.isdigit() and len(raw) > 1 and all(int(d) in allowed for d in raw):
                # "13" when 13 is not a choice but 1 and 3 are: the patient left out the space.
                picked.update(int(d) for d in raw)
            else:
                shown = raw if len(raw) <= 12 else raw[:12] + "..."
                return Unreadable("unknown_choice", f"{shown} is not one of {_choices_text(spec.choices)}")
    if said_none and picked and spec.none_allowed:  # "0 2", "none, 2"
        return Unreadable("ambiguous", "the reply says none and also lists choices")
    if picked:
        return Parsed(sorted(picked))
    if said_none and spec.none_allowed:
        return Parsed([])
    return Unreadable("not_a_number", "no choice number or word found in the reply")


# ---------------------------------------------------------------------------------------- free text
_NOTHING = _phrases(
    "no|nope|nah|nothing|none|nada|ninguno|ninguna|no nothing|nothing else|nothing more|nothing new|"
    "nothing to report|not really|all good|all fine|all is well|no more|nada mas|no nada|nada nuevo|"
    "eso es todo|todo bien|thats all|thats it|n a|na|no gracias"
)


def parse_reply(text: str, spec: AnswerSpec, language: str = "en") -> Parsed | Unreadable:
    """Read one reply to one item. Never raises; what cannot be read safely is ``Unreadable``.

    ``language`` ("en"/"es") only breaks ties: "once" is eleven and "6,5" is six and a half in Spanish.
    """
    if not _fold(text).strip():
        return Unreadable("empty", "the reply has no text")
    if spec.kind == "yes_no":
        return _parse_yes_no(text)
    if spec.kind == "integer":
        return _parse_integer(text, spec, language)
    if spec.kind == "multi_choice":
        return _parse_multi_choice(text, spec, language)
    if spec.kind == "free_text":  # the original text, or None for "no" / "nothing else"
        return Parsed(None if _strip_polite(normalize(text)) in _NOTHING else text.strip())
    return Unreadable("ambiguous", f"unsupported answer kind {spec.kind!r}")


# ----------------------------------------------------------------------------------------- keywords
# Twilio-style keywords: the whole message (courtesy words aside) is the keyword.
_KEYWORDS: dict[str, Keyword] = {
    word: keyword
    for keyword, words in (
        (Keyword.STOP, "stop stopall unsubscribe cancel end quit optout revoke revocar"),
        # Not "alto" or "baja": they also mean "high" and "low", a plausible one-word pain answer.
        (Keyword.STOP, "parar pare para paren cancelar detener"),
        (Keyword.START, "start unstop subscribe resume restart optin comenzar inicio iniciar reanudar"),
        (Keyword.HELP, "help info information ayuda informacion"),
        (Keyword.NURSE, "nurse call callme callmeback callback nursecallme enfermera enfermero llamar"),
        (Keyword.NURSE, "llamenme llamame llameme llamarme"),
    )
    for word in words.split()
}
_MSG_NOUNS = r"(?:texts?|txts?|messages?|msgs?|sms|reminders?|notifications?|surveys?)"
_MSGS = rf"(?:{_MSG_NOUNS}|texting|messaging)"
_MENSAJES = r"(?:mensajes|textos|sms|recordatorios|notificaciones|encuestas)"
# Opt-out in the patient's own words (US rules, April 2025: any reasonable wording). Each pattern needs
# the messages themselves as the object, so "the pain won't stop" or "I quit smoking" never opt out.
_OPT_OUT = re.compile(
    r"\b(?:stop|quit|cease|end|halt|discontinue)\s+(?:(?:all|the|these|those|this|your|any|with|of|from)\s+)"
    rf"{{0,3}}(?:{_MSG_NOUNS}\b|(?:texting|txting|messaging|sending|contacting)"
    rf"(?:\s+(?:me|us)\b|\s+(?:\w+\s+)?{_MSGS}\b|$))"
    r"|\b(?:dont|do\s+not)\s+(?:text|txt|message|msg|sms|contact|send|email)\s+"
    r"(?:me|us|this\s+number|anymore|any\s+more|again)\b"
    rf"|\bnever\s+(?:text|message|contact)\s+me\s+again\b|\bno\s+more\s+{_MSGS}\b"
    r"|\bunsubscribe\b|\bopt\s*out\b|\bopt\s+me\s+out\b|\bremove\s+(?:my\s+)?(?:phone\s+)?number\b"
    r"|\b(?:take|remove|delete|drop)\s+me\s+(?:off|from|out\s+of)\s+(?:(?:this|the|your|my|that|all)\s+)?"
    rf"(?:\w+\s+)?(?:lists?|program|programme|study|system|service|{_MSGS})\b"
    rf"|\b(?:dont|do\s+not|no\s+longer)\s+want\s+(?:\w+\s+){{0,4}}?{_MSGS}\b"
    rf"|\bcancel(?:ar)?\s+(?:(?:my|the|all|these|mi|la|los|las|mis)\s+)?(?:subscription|suscripcion|"
    rf"subscripcion|{_MSGS}|{_MENSAJES})\b"
    r"|\b(?:deja|dejen|deje|dejar|para|paren|pare|parar|deten|detengan|detenga)\s+de\s+"
    rf"(?:enviar|mandar|escribir|contactar|textear)(?:me|nos|\s+(?:\w+\s+)?{_MENSAJES})\b"
    r"|\b(?:parar|paren|pare|detener|deten|detengan|detenga)\s+(?:(?:los|estos|esos|todos|mis|sus|las)\s+)"
    rf"{{0,2}}{_MENSAJES}\b"
    r"|\bno\s+(?:me|nos)\s+(?:envien|envies|envie|mandes|manden|mande|escriban|escribas|escriba|contacten|"
    rf"contactes|contacte)(?:\s+(?:mas|nada|nunca)\b|\s+{_MENSAJES}\b|$)"
    rf"|\bno\s+(?:quiero|deseo|necesito)\s+(?:\w+\s+){{0,4}}?{_MENSAJES}\b|\bno\s+mas\s+{_MENSAJES}\b"
    r"|\b(?:dar|darme|dame|denme|deme|darse|doy)\s+de\s+baja\b"
    r"|\b(?:quitar|quitarme|quitame|quitenme|sacar|sacarme|sacame|saquenme|borrar|borrarme|borrenme|"
    r"eliminar|eliminarme|eliminenme)\s+de\s+(?:(?:la|esta|este|el|los|su)\s+)?(?:lista|programa|estudio|"
    r"servicio|sistema)\b"
    r"|\b(?:desuscribir|desuscribirme|desuscribirse|desinscribirme)\b"
)
_NOT_BEFORE = _words("cant cannot wont couldnt didnt doesnt dont not never wouldnt shouldnt puedo")
_START_RE = re.compile(
    r"(?:i\s+want\s+to\s+)?(?:start|restart|resume)\s+(?:again|(?:texting|messaging|sending)(?:\s+me)?"
    r"(?:\s+(?:messages|texts))?(?:\s+again)?)"
    r"|(?:quiero\s+)?(?:volver\s+a\s+recibir|reanudar|reactivar)\s+(?:los\s+)?mensajes"
)
# Only short requests for a call back; a longer message that mentions the nurse is a message, not a keyword.
# Asking for help in words ("help me", "necesito ayuda") is a call back, not the HELP info keyword.
_NURSE_RE = re.compile(
    r"(?:(?:can|could|would|will)\s+(?:someone|somebody|anyone|anybody|you|(?:(?:a|the|my)\s+)?nurse)\s+)?"
    r"(?:please\s+)?call\s+me(?:\s+back)?(?:\s+(?:asap|soon|today|urgently|urgent))?"
    r"|(?:i\s+)?(?:need|want|would\s+like|d\s+like|wanna)\s+(?:a\s+)?(?:call|callback|call\s+back|nurse|"
    r"someone\s+to\s+call\s+me|nurse\s+to\s+call\s+me)"
    r"|(?:i\s+)?(?:need|want|would\s+like|wanna)\s+to\s+(?:talk|speak)\s+(?:to|with)\s+(?:(?:a|the|my)\s+)?"
    r"(?:nurse|someone|somebody)"
    r"|(?:talk|speak)\s+(?:to|with)\s+(?:(?:a|the|my)\s+)?nurse|(?:a\s+)?nurse\s+(?:call\s+me|needed|asap)"
    r"|(?:have|let|get)\s+(?:(?:a|the|my)\s+)?nurse\s+call\s+me(?:\s+back)?|(?:i\s+)?need\s+help|help\s+me"
    r"|(?:necesito|quiero|quisiera)\s+(?:que\s+)?(?:me\s+)?(?:llamen|llame|hablar\s+con\s+"
    r"(?:(?:la|una|el|un|mi)\s+)?(?:enfermer[ao]|alguien))(?:\s+(?:la|una|el|un)\s+enfermer[ao])?"
    r"|(?:pueden|puede|podrian|podria|puedes)\s+llamarme|me\s+(?:pueden|puede|podrian|podria)\s+llamar"
    r"|(?:que\s+)?me\s+llamen|(?:necesito\s+)?una\s+enfermera|necesito\s+ayuda|ayudenme|ayudame|ayudeme"
)


def _opts_out(norm: str) -> bool:
    for match in _OPT_OUT.finditer(norm):
        if not _NOT_BEFORE.intersection(norm[: match.start()].split()[-2:]):  # "don't stop texting me"
            return True
    return False


def classify_keyword(text: str) -> Keyword | None:
    """STOP/START/HELP/NURSE when the message is such a request, else None (an answer or a message)."""
    norm = normalize(text)
    words = _strip_polite(norm).split()
    if not words:
        return None
    single = words[0] if len(set(words)) == 1 else "".join(words)  # "STOP STOP", "opt out", "stop all"
    keyword = _KEYWORDS.get(single)
    if keyword is Keyword.STOP or _opts_out(norm):  # opting out wins over everything else
        return Keyword.STOP
    if keyword is not None:
        return keyword
    core = " ".join(words)
    if _START_RE.fullmatch(core):
        return Keyword.START
    return Keyword.NURSE if _NURSE_RE.fullmatch(core) else None
