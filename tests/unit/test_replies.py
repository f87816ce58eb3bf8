"""Reading SMS replies: tables of real-world wordings (English and Spanish) plus property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pro_service.replies import (
    AnswerSpec,
    Keyword,
    Parsed,
    Unreadable,
    classify_keyword,
    normalize,
    parse_reply,
)

YES_NO = AnswerSpec("yes_no")
PAIN = AnswerSpec("integer", minimum=0, maximum=10, severity_words=True)  # PRO-CTCAE words allowed
SCORE = AnswerSpec("integer", minimum=0, maximum=10)
SITES = AnswerSpec("multi_choice", choices=(1, 2, 3, 4, 5))
SYMPTOMS = AnswerSpec("multi_choice", choices=(1, 2, 3, 4, 5, 6), none_allowed=True)
FREE = AnswerSpec("free_text")
ALL_SPECS = (YES_NO, PAIN, SCORE, SITES, SYMPTOMS, FREE)


def reason(result: Parsed | Unreadable) -> str:
    assert isinstance(result, Unreadable), f"expected Unreadable, got {result!r}"
    return result.reason


# ------------------------------------------------------------------------------------------- empty
@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.kind}")
@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u200b", "  \r\n"])
def test_empty_or_blank_is_unreadable_for_every_kind(text: str, spec: AnswerSpec) -> None:
    assert reason(parse_reply(text, spec)) == "empty"


# ------------------------------------------------------------------------------------------ yes/no
@pytest.mark.parametrize(
    "text",
    [
        "y",
        "Y",
        "yes",
        "YES",
        "Yes.",
        "yes!",
        "yes!!!",
        "yeah",
        "Yea",
        "yep",
        "yup",
        "ya",
        "ye",
        "yess",
        "yesss",
        "yse",
        "sure",
        "Sure!",
        "i do",
        "I do.",
        "I have",
        "true",
        "of course",
        "absolutely",
        "yes please",
        "Yes, my legs feel weak since tuesday",
        "yes and my back hurts",
        "yes, no problem",
        "Yes I do",
        "I do have pain",
        "I have had some",
        "ok yes",
        "Hi, yes",
        "well yes",
        "👍",
        "👍🏽",
        "yes 👍",
        "✅",
        "sí",
        "Sí",
        "si",
        "SI",
        "sii",
        "sip",
        "claro",
        "Claro que sí",
        "por supuesto",
        "si, me duele la espalda",
        "Sí, no me deja dormir",
        "bueno, si",
        "hola si",
        "correcto",
    ],
)
def test_yes(text: str) -> None:
    assert parse_reply(text, YES_NO) == Parsed(True)


@pytest.mark.parametrize(
    "text",
    [
        "n",
        "N",
        "no",
        "No.",
        "NO!",
        "nope",
        "Nope!",
        "nah",
        "noo",
        "nooo",
        "no thanks",
        "No, thank you",
        "not really",
        "not at all",
        "none",
        "nothing",
        "never",
        "I don't",
        "I dont",
        "i do not",
        "I have not",
        "i havent",
        "I have no pain",
        "I'm not",
        "false",
        "👎",
        "no 👎",
        "❌",
        "no gracias",
        "No, gracias",
        "tampoco",
        "nada",
        "para nada",
        "nunca",
        "no, se me quitó",
        "no me duele",
        "ya no",
        "ya no me duele",
        "no, no pain at all",
        "No no",
        "well no",
        "no way",
        # A later "si" that is "if", and "sure" after a no, leave the no standing.
        "no, si me duele te aviso",
        "no, si noto algo le escribo",
        "no, no sé si le entendí la pregunta",
        "No. All working as it should 👍",  # a thumbs-up signs off a no
        "no, actually I am fine",
        "no, I'm sure it's nothing",
        "No, nothing like that, pretty sure",
    ],
)
def test_no(text: str) -> None:
    assert parse_reply(text, YES_NO) == Parsed(False)


@pytest.mark.parametrize(
    "text",
    [
        "yes and no",
        "Yes no",
        "yes/no",
        "yes, no",
        "Yes. No.",
        "no, yes",
        "no and yes",
        "si y no",
        "sí o no",
        "yes or no",
        "yes maybe",
        "Yes. No wait",
        "no. yes",
        "👍👎",
        # A no taken back by a later yes (self-corrections, a slip of the thumb), English and Spanish.
        "no... I mean yes",
        "No sorry, meant to say YES",
        "nope. wait, actually yeah",
        "no, my mistake, yep",
        "no wrong button yes",
        "no perdón, sí",
        "No. Digo que si",
        "no me equivoqué de tecla, si si",
        "not at all... actually yes",
        "no yws",
        "no, aye",
        "no mhm",
        "no uh huh",
        "no... actually I do",
        "Nope - oh hang on, it has",
        "No, sí tengo eso",
        "no, si doctor",
        "no. si lo tengo",
        "No, Sí le aviso",  # written with its accent, "sí" is yes whatever follows
        "not sure",
        "Not sure.",
        "I'm not sure",
        "unsure",
        "maybe",
        "Maybe?",
        "perhaps",
        "no sé",
        "no se",
        "No lo sé",
        "nose",
        "no estoy segura",
        "quizás",
        "quizas",
        "tal vez",
        "idk",
        "I don't know",
        "dunno",
        "sometimes",
        "a veces",
        "kind of",
        "más o menos",
        "ok",
        "OK",
        "okay",
        "k",
        "Ok thanks",
        "fine",
        "vale",
        "🤷",
    ],
)
def test_yes_no_ambiguous(text: str) -> None:
    assert reason(parse_reply(text, YES_NO)) == "ambiguous"


@pytest.mark.parametrize(
    "text",
    ["1", "0", "7", "hello", "my legs hurt", "?", "😊", "ya me siento mejor", "y el dolor", "I am fine"],
)
def test_not_yes_no(text: str) -> None:
    assert reason(parse_reply(text, YES_NO)) == "not_yes_no"


@pytest.mark.parametrize("language", ["en", "es"])
def test_yes_no_accepts_both_languages_whatever_the_patient_language(language: str) -> None:
    assert parse_reply("sí", YES_NO, language) == Parsed(True)
    assert parse_reply("yes", YES_NO, language) == Parsed(True)
    assert parse_reply("no gracias", YES_NO, language) == Parsed(False)


# ----------------------------------------------------------------------------------------- integer
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7),
        ("0", 0),
        ("10", 10),
        (" 5 ", 5),
        ("7/10", 7),
        ("7 / 10", 7),
        ("7 out of 10", 7),
        ("7 of 10", 7),
        ("10/10", 10),
        ("0/10", 0),
        ("seven", 7),
        ("Seven!", 7),
        ("siete", 7),
        ("zero", 0),
        ("cero", 0),
        ("ten", 10),
        ("diez", 10),
        ("about 6", 6),
        ("around 6", 6),
        ("like a 6", 6),
        ("6ish", 6),
        ("10!!", 10),
        ("its an 8", 8),
        ("it's an 8", 8),
        ("8 de 10", 8),
        ("una 6", 6),
        ("un 6", 6),
        ("es un 4", 4),
        ("uno", 1),
        ("una", 1),
        ("nueve", 9),
        ("seven (7)", 7),
        ("7... I said 7", 7),
        ("out of 10 I'd say 7", 7),
        ("on a scale of 0 to 10, 7", 7),
        ("de 0 a 10 un 8", 8),
        ("from 1-10 its a 6", 6),
        ("Pain - 7", 7),
        ("level-7", 7),
        ("７", 7),
        ("pain is 5 today", 5),
        ("1O", 10),
        ("seven out of ten", 7),
        ("dolor de 10", 10),
        # ranges read as their higher end (conservative for a symptom score)
        ("6-7", 7),
        ("6 - 7", 7),
        ("6–7", 7),
        ("6 or 7", 7),
        ("6 o 7", 7),
        ("6 to 7", 7),
        ("5/6", 6),
        ("between 6 and 7", 7),
        ("entre 6 y 7", 7),
        ("6-7/10", 7),
        ("seis o siete", 7),
        ("7 or 6", 7),
        # decimals round half up
        ("6.5", 7),
        ("6.4", 6),
        ("6.5/10", 7),
        ("0.5", 1),
        ("9.9", 10),
        ("7.0", 7),
    ],
)
def test_integer(text: str, expected: int) -> None:
    result = parse_reply(text, SCORE)
    assert result == Parsed(expected)
    assert type(result.value) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", 0),
        ("None.", 0),
        ("nada", 0),
        ("ninguno", 0),
        ("ninguna", 0),
        ("mild", 2),
        ("Mild", 2),
        ("leve", 2),
        ("moderate", 5),
        ("moderado", 5),
        ("moderada", 5),
        ("severe", 7),
        ("SEVERE!", 7),
        ("severo", 7),
        ("severa", 7),
        ("intenso", 7),
        ("intensa", 7),
        ("fuerte", 7),
        ("very severe", 9),
        ("Very severe", 9),
        ("very, very severe", 9),
        ("muy severo", 9),
        ("muy severa", 9),
        ("muy intenso", 9),
        ("muy fuerte", 9),
        ("extremely severe", 9),
        ("moderate, about 5", 5),
        ("very mild", 2),
        ("it's severe", 7),
        ("7", 7),
    ],
)
def test_integer_severity_words(text: str, expected: int) -> None:
    assert parse_reply(text, PAIN) == Parsed(expected)


@pytest.mark.parametrize("text", ["severe", "mild", "none", "muy fuerte"])
def test_severity_words_only_when_the_item_allows_them(text: str) -> None:
    assert reason(parse_reply(text, SCORE)) == "not_a_number"


@pytest.mark.parametrize(
    ("text", "spec", "why"),
    [
        ("12", SCORE, "out_of_range"),
        ("-1", SCORE, "out_of_range"),
        ("11", PAIN, "out_of_range"),
        ("veinte", SCORE, "out_of_range"),
        ("100", SCORE, "out_of_range"),
        ("6-12", SCORE, "out_of_range"),
        ("10.5", SCORE, "out_of_range"),
        ("99999999999999999999999999", SCORE, "out_of_range"),
        ("3 7", SCORE, "ambiguous"),
        ("3, 7", SCORE, "ambiguous"),
        ("3 and 7", SCORE, "ambiguous"),
        ("3 y 7", SCORE, "ambiguous"),
        ("7 today, 9 yesterday", SCORE, "ambiguous"),
        ("3 out of 5", SCORE, "ambiguous"),
        ("severe, 8", PAIN, "ambiguous"),
        ("not severe", PAIN, "ambiguous"),
        ("not very severe", PAIN, "ambiguous"),
        ("no es fuerte", PAIN, "ambiguous"),
        ("6,5", SCORE, "ambiguous"),
        ("pain", SCORE, "not_a_number"),
        ("bad", PAIN, "not_a_number"),
        ("yes", SCORE, "not_a_number"),
        ("no", PAIN, "not_a_number"),
        ("??", SCORE, "not_a_number"),
        ("out of 10", SCORE, "not_a_number"),
        ("it happened once", SCORE, "not_a_number"),
    ],
)
def test_integer_unreadable(text: str, spec: AnswerSpec, why: str) -> None:
    assert reason(parse_reply(text, spec)) == why


def test_out_of_range_detail_is_readable_and_never_clipped() -> None:
    assert parse_reply("12", SCORE) == Unreadable("out_of_range", "12 is outside 0-10")
    assert parse_reply("-1", SCORE) == Unreadable("out_of_range", "-1 is outside 0-10")


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("6,5", "es", Parsed(7)),  # a Spanish decimal comma
        ("once", "es", Unreadable("out_of_range", "11 is outside 0-10")),
        ("once", "en", Unreadable("not_a_number", "no number found in the reply")),
    ],
)
def test_language_only_breaks_ties(text: str, language: str, expected: Parsed | Unreadable) -> None:
    assert parse_reply(text, SCORE, language) == expected


def test_other_scales_use_their_own_maximum_as_denominator() -> None:
    four = AnswerSpec("integer", minimum=0, maximum=4)
    assert parse_reply("3/4", four) == Parsed(3)
    assert reason(parse_reply("3/10", four)) == "out_of_range"
    assert parse_reply("15", AnswerSpec("integer")) == Parsed(15)  # no bounds: nothing is out of range


# ------------------------------------------------------------------------------------ multi choice
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", [1]),
        ("1 3", [1, 3]),
        ("1,3", [1, 3]),
        ("1, 3", [1, 3]),
        ("1 and 3", [1, 3]),
        ("1 y 3", [1, 3]),
        ("1, 3 & 4", [1, 3, 4]),
        ("1;3", [1, 3]),
        ("1.3", [1, 3]),
        ("3 1", [1, 3]),
        ("13", [1, 3]),
        ("135", [1, 3, 5]),
        ("31", [1, 3]),
        ("3 3 1", [1, 3]),
        ("one and three", [1, 3]),
        ("uno y tres", [1, 3]),
        ("dos, cuatro", [2, 4]),
        ("five", [5]),
        ("#2 and #4", [2, 4]),
        ("2 and 4 mostly", [2, 4]),
        ("1 2 3 4 5", [1, 2, 3, 4, 5]),
        ("all", [1, 2, 3, 4, 5]),
        ("todas", [1, 2, 3, 4, 5]),
        ("1)back 3)hip", [1, 3]),
        ("1 and 3 please", [1, 3]),
    ],
)
def test_multi_choice(text: str, expected: list[int]) -> None:
    assert parse_reply(text, SITES) == Parsed(expected)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "none",
        "None.",
        "no",
        "No",
        "nothing",
        "ninguno",
        "ninguna",
        "nada",
        "cero",
        "none of them",
        "no thanks",
        "zero",
        "nothing at all",
    ],
)
def test_multi_choice_none(text: str) -> None:
    assert parse_reply(text, SYMPTOMS) == Parsed([])


def test_two_digit_choice_is_kept_when_it_is_a_choice() -> None:
    twelve = AnswerSpec("multi_choice", choices=tuple(range(1, 13)))
    assert parse_reply("12", twelve) == Parsed([12])
    assert parse_reply("1 12", twelve) == Parsed([1, 12])


@pytest.mark.parametrize(
    ("text", "spec", "why"),
    [
        ("7", SYMPTOMS, "unknown_choice"),
        ("6", SITES, "unknown_choice"),
        ("0", SITES, "unknown_choice"),
        ("1 9", SITES, "unknown_choice"),
        ("10", SITES, "unknown_choice"),
        ("17", SITES, "unknown_choice"),
        ("none", SITES, "unknown_choice"),
        ("0 2", SYMPTOMS, "ambiguous"),
        ("2, 0", SYMPTOMS, "ambiguous"),
        ("none, 2", SYMPTOMS, "ambiguous"),
        ("1-3", SITES, "ambiguous"),
        ("1 to 3", SITES, "ambiguous"),
        ("my back", SITES, "not_a_number"),
        ("yes", SITES, "not_a_number"),
        ("??", SYMPTOMS, "not_a_number"),
    ],
)
def test_multi_choice_unreadable(text: str, spec: AnswerSpec, why: str) -> None:
    assert reason(parse_reply(text, spec)) == why


def test_unknown_choice_detail() -> None:
    six = AnswerSpec("multi_choice", choices=(1, 2, 3, 4, 5, 6))
    assert parse_reply("7", six) == Unreadable("unknown_choice", "7 is not one of 1-6")
    odd = AnswerSpec("multi_choice", choices=(1, 3, 5))
    assert parse_reply("2", odd) == Unreadable("unknown_choice", "2 is not one of 1, 3, 5")


# --------------------------------------------------------------------------------------- free text
@pytest.mark.parametrize(
    "text",
    [
        "no",
        "No.",
        "NO!",
        "nope",
        "nothing",
        "Nothing.",
        "none",
        "no thanks",
        "No, thank you",
        "nada",
        "no gracias",
        "No, gracias.",
        "ninguno",
        "all good",
        "All good!",
        "nothing else",
        "Nothing else, thanks",
        "nada más",
        "todo bien",
        "that's all",
        "no 👍",
    ],
)
def test_free_text_nothing(text: str) -> None:
    assert parse_reply(text, FREE) == Parsed(None)


@pytest.mark.parametrize(
    "text",
    [
        "My legs feel weak since Tuesday",
        "  I fell yesterday  ",
        "no appetite",
        "Nothing helps the pain",
        "Me duele la cadera",
        "yes",
        "Thank you",
        "7",
        "no puedo dormir por el dolor",
        "???",
    ],
)
def test_free_text_keeps_the_original_text(text: str) -> None:
    assert parse_reply(text, FREE) == Parsed(text.strip())


# ---------------------------------------------------------------------------------------- keywords
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Twilio-style single keywords, any case and punctuation
        ("STOP", Keyword.STOP),
        ("stop", Keyword.STOP),
        ("Stop.", Keyword.STOP),
        (" stop! ", Keyword.STOP),
        ("STOP STOP", Keyword.STOP),
        ("stop please", Keyword.STOP),
        ("Please stop", Keyword.STOP),
        ("STOPALL", Keyword.STOP),
        ("stop all", Keyword.STOP),
        ("UNSUBSCRIBE", Keyword.STOP),
        ("cancel", Keyword.STOP),
        ("END", Keyword.STOP),
        ("quit", Keyword.STOP),
        ("OPTOUT", Keyword.STOP),
        ("opt-out", Keyword.STOP),
        ("revoke", Keyword.STOP),
        ("PARAR", Keyword.STOP),
        ("pare", Keyword.STOP),
        ("baja", None),
        ("alto", None),
        ("cancelar", Keyword.STOP),
        ("DETENER", Keyword.STOP),
        ("stop it", Keyword.STOP),
        # opt-out in the patient's own words
        ("please stop texting me", Keyword.STOP),
        ("Stop texting me!", Keyword.STOP),
        ("stop sending me messages", Keyword.STOP),
        ("don't text me anymore", Keyword.STOP),
        ("Dont text me anymore", Keyword.STOP),
        ("do not contact me", Keyword.STOP),
        ("no more texts", Keyword.STOP),
        ("No more messages please", Keyword.STOP),
        ("unsubscribe me", Keyword.STOP),
        ("how do I unsubscribe?", Keyword.STOP),
        ("take me off this list", Keyword.STOP),
        ("remove me from your mailing list", Keyword.STOP),
        ("I don't want these messages anymore", Keyword.STOP),
        ("cancel my subscription", Keyword.STOP),
        ("deja de enviarme mensajes", Keyword.STOP),
        ("dejen de mandarme mensajes", Keyword.STOP),
        ("no me envíen más mensajes", Keyword.STOP),
        ("No quiero más mensajes", Keyword.STOP),
        ("no quiero recibir mensajes", Keyword.STOP),
        ("quiero darme de baja", Keyword.STOP),
        ("sáquenme de la lista", Keyword.STOP),
        ("para ya", Keyword.STOP),
        ("deten los mensajes", Keyword.STOP),
        ("no me escriban más", Keyword.STOP),
        ("stop texting", Keyword.STOP),
        ("end these reminders", Keyword.STOP),
        # opting back in
        ("START", Keyword.START),
        ("start", Keyword.START),
        ("Unstop", Keyword.START),
        ("comenzar", Keyword.START),
        ("INICIO", Keyword.START),
        ("reanudar", Keyword.START),
        ("start please", Keyword.START),
        ("start texting me again", Keyword.START),
        # help
        ("HELP", Keyword.HELP),
        ("help?", Keyword.HELP),
        ("info", Keyword.HELP),
        ("AYUDA", Keyword.HELP),
        # call-back requests
        ("nurse", Keyword.NURSE),
        ("NURSE", Keyword.NURSE),
        ("nurse please", Keyword.NURSE),
        ("call", Keyword.NURSE),
        ("call me", Keyword.NURSE),
        ("Call me please", Keyword.NURSE),
        ("please call me", Keyword.NURSE),
        ("can someone call me?", Keyword.NURSE),
        ("could the nurse call me back", Keyword.NURSE),
        ("I need to talk to a nurse", Keyword.NURSE),
        ("help me", Keyword.NURSE),
        ("I need help", Keyword.NURSE),
        ("enfermera", Keyword.NURSE),
        ("Enfermero", Keyword.NURSE),
        ("llamar", Keyword.NURSE),
        ("LLAMENME", Keyword.NURSE),
        ("llámenme", Keyword.NURSE),
        ("llámenme por favor", Keyword.NURSE),
        ("necesito que me llamen", Keyword.NURSE),
        ("necesito hablar con la enfermera", Keyword.NURSE),
        ("necesito ayuda", Keyword.NURSE),
        ("me pueden llamar?", Keyword.NURSE),
        ("please have the nurse call me", Keyword.NURSE),
        ("pueden llamarme", Keyword.NURSE),
    ],
)
def test_keyword(text: str, expected: Keyword) -> None:
    assert classify_keyword(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "the pain won't stop",
        "I can't stop shaking",
        "the pain is nonstop",
        "it hurts at the end of the day",
        "I had to cancel my appointment",
        "I quit smoking",
        "please make the pain stop",
        "I can't stop texting my daughter about it",
        "please don't stop texting me",
        "the nurse said to rest",
        "I spoke to the nurse yesterday and she said to call me if worse",
        "my nurse called me",
        "el dolor no para",
        "no puedo parar de temblar",
        "estoy de baja en el trabajo",
        "yes",
        "YES",
        "no",
        "si",
        "7",
        "1 3",
        "0",
        "",
        "   ",
        "👍",
        "thank you",
        "ok",
        "stopped taking my pills",
        "I don't text much",
        "I have a question",
        "stop texting my mom",
        "don't call me, text",
        "no me mande la receta",
        "I stopped texting",
        "the end",
    ],
)
def test_not_a_keyword(text: str) -> None:
    assert classify_keyword(text) is None


# --------------------------------------------------------------------------------------- normalize
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello,   WORLD!! ", "hello world"),
        ("¿Sí?", "si"),
        ("Llámenme", "llamenme"),
        ("ÑANDÚ", "nandu"),
        ("don't", "dont"),
        ("can’t  walk", "cant walk"),
        ("7/10", "7 10"),
        ("opt-out", "opt out"),
        ("yes👍", "yes"),
        ("", ""),
        ("a\tb\nc", "a b c"),
        ("Straße", "strasse"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


# --------------------------------------------------------------------------------------- properties
SPECS = st.builds(
    AnswerSpec,
    kind=st.sampled_from(["yes_no", "integer", "multi_choice", "free_text"]),
    minimum=st.none() | st.integers(-5, 5),
    maximum=st.none() | st.integers(0, 20),
    choices=st.lists(st.integers(0, 15), max_size=8).map(tuple),
    none_allowed=st.booleans(),
    severity_words=st.booleans(),
)
REPLY_TEXT = st.text() | st.lists(
    st.sampled_from(
        [
            "1",
            "3",
            "7",
            "10",
            "-",
            "/",
            ",",
            ".",
            "6.5",
            "or",
            "y",
            "de",
            "out of",
            "very",
            "severe",
            "muy",
            "fuerte",
            "none",
            "no",
            "yes",
            "si",
            "👍",
            "👎",
            "una",
            "once",
            "between",
            "entre",
            "and",
            "0",
            " ",
            "stop",
            "texting",
            "me",
            "nurse",
            "call",
            "12345678901234567890",
        ]
    ),
    max_size=12,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=REPLY_TEXT, spec=SPECS, language=st.sampled_from(["en", "es", "fr", ""]))
def test_parse_reply_never_raises(text: str, spec: AnswerSpec, language: str) -> None:
    result = parse_reply(text, spec, language)
    assert isinstance(result, Parsed | Unreadable)
    if isinstance(result, Unreadable):
        assert result.reason in {
            "empty",
            "not_yes_no",
            "not_a_number",
            "out_of_range",
            "unknown_choice",
            "ambiguous",
        }
        assert result.detail


@settings(max_examples=300, deadline=None)
@given(text=REPLY_TEXT)
def test_classify_keyword_never_raises(text: str) -> None:
    assert classify_keyword(text) in {None, *Keyword}


@settings(max_examples=300, deadline=None)
@given(text=REPLY_TEXT, low=st.integers(-5, 5), span=st.integers(0, 15), words=st.booleans())
def test_integer_values_are_within_bounds(text: str, low: int, span: int, words: bool) -> None:
    spec = AnswerSpec("integer", minimum=low, maximum=low + span, severity_words=words)
    result = parse_reply(text, spec)
    if isinstance(result, Parsed):
        assert type(result.value) is int
        assert low <= result.value <= low + span


@settings(max_examples=300, deadline=None)
@given(
    text=REPLY_TEXT,
    choices=st.lists(st.integers(0, 15), min_size=1, max_size=8).map(tuple),
    none_allowed=st.booleans(),
)
def test_multi_choice_values_are_sorted_unique_choices(
    text: str, choices: tuple[int, ...], none_allowed: bool
) -> None:
    result = parse_reply(text, AnswerSpec("multi_choice", choices=choices, none_allowed=none_allowed))
    if isinstance(result, Parsed):
        assert isinstance(result.value, list)
        assert set(result.value) <= set(choices)
        assert result.value == sorted(set(result.value))


@settings(max_examples=300, deadline=None)
@given(
    value=st.integers(0, 10), decoration=st.sampled_from(["{}", "{}/10", "about {}", "{} out of 10", "{}!!"])
)
def test_any_in_range_digit_reply_reads_back(value: int, decoration: str) -> None:
    assert parse_reply(decoration.format(value), SCORE) == Parsed(value)


def test_long_replies_are_read_without_error() -> None:
    # How fast is measured by benchmarks/bench_parsing.py; here, that a 10,000-character reply is handled.
    long_text = "my pain was 7 and then the nurse said stop but no " * 200
    for spec in ALL_SPECS:
        assert isinstance(parse_reply(long_text, spec), (Parsed, Unreadable))
    assert classify_keyword(long_text) is None
