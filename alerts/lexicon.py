"""Load and validate the symptom reader's vocabulary (config/reading/*.yaml) into an `alerts.reading.Lexicon`.

Errors name the file, the concept or section and the pattern, so a clinician editing the vocabulary can
act on them. Pattern syntax (documented in the YAML's header): words in order; `a|b` alternatives in one
slot (`a_b` is the two words "a b" as one alternative); `stem*`; `$SET`; a trailing `?` makes a slot
optional; `~N` is up to N other words inside the clause; `.` is a clause boundary or the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from alerts.reading import BREAK, SOFT, Concept, Lexicon, ModelNet, Negation, Others, Pattern, Tier, fold
from alerts.reading_model import ReadingModelError, load_reading_model

LANGUAGES = ("en", "es")
# The texts (config/texts.yaml) an urgent finding may send the patient.
PATIENT_TEXTS = frozenset({"safety", "crisis", "unsure"})


class LexiconError(ValueError):
    pass


def _words(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, str):
        raise LexiconError(f"{where}: expected words separated by spaces or |")
    return frozenset(fold(w) for w in re.split(r"[\s|]+", value) if w)


class _Compiler:
    def __init__(self, sets: Mapping[str, frozenset[str]], where: str) -> None:
        self.sets = sets
        self.where = where
        self.words: set[str] = set()
        self.stems: set[str] = set()
        self.anchor: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())  # of the last body

    def _alternative(self, alt: str, source: str) -> list[str]:
        if alt.startswith("$"):
            if alt[1:] not in self.sets:
                raise LexiconError(f"{self.where}: unknown set {alt} in {source!r}")
            self.words.update(self.sets[alt[1:]])
            return [re.escape(w) + " " for w in sorted(self.sets[alt[1:]], key=lambda w: (-len(w), w))]
        words = [fold(w) for w in alt.split("_") if w]
        if not words or not all(re.fullmatch(r"[a-z0-9]+\*?", w) for w in words):
            raise LexiconError(f"{self.where}: {alt!r} in {source!r} is not a word, a stem* or a $SET")
        out = ""
        for word in words:
            if word.endswith("*"):
                self.stems.add(word[:-1])
                out += re.escape(word[:-1]) + f"[^ {BREAK}{SOFT}]* "
            else:
                self.words.add(word)
                out += re.escape(word) + " "
        return [out]

    def body(self, source: str) -> str:
        slots = source.split()
        if not slots or all(s.startswith("~") for s in slots):
            raise LexiconError(f"{self.where}: pattern {source!r} has no words")
        out = ""
        self.anchor = (frozenset(), ())
        for slot in slots:
            if slot == ".":  # a clause boundary or the end of the message
                out += f"(?:[{BREAK}{SOFT}] |$)"
                continue
            gap = re.fullmatch(r"~([0-9])", slot)
            if gap:
                out += f"(?:[^ {BREAK}{SOFT}]+ ){{0,{gap.group(1)}}}"
                continue
            optional = slot.endswith("?") and len(slot) > 1
            alts = [a for alt in slot.rstrip("?").split("|") if alt for a in self._alternative(alt, source)]
            alts.sort(key=len, reverse=True)  # the longest first: "cleared up", not "cleared" then "up"
            if not alts:
                raise LexiconError(f"{self.where}: empty slot in {source!r}")
            out += "(?:" + "|".join(alts) + ")" + ("?" if optional else "")
            if not optional and not self.anchor[0] and not self.anchor[1]:
                self.anchor = self._anchor(slot)
        return out

    def _anchor(self, slot: str) -> tuple[frozenset[str], tuple[str, ...]]:
        """The words (and stems) one of which a text must contain for the pattern to match: its first slot."""
        words: set[str] = set()
        stems: list[str] = []
        for alt in slot.split("|"):
            if alt.startswith("$"):
                words |= self.sets[alt[1:]]
                continue
            first = fold(alt.split("_")[0])
            if first.endswith("*"):
                stems.append(first[:-1])
            else:
                words.add(first)
        return frozenset(words), tuple(stems)


def _sets(raw: object, language: str, path: Path) -> dict[str, frozenset[str]]:
    table = raw.get(language, {}) if isinstance(raw, dict) else {}
    return {
        name: _words(words, f"{path.name}: sets.{language}.{name}") for name, words in (table or {}).items()
    }


def _list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LexiconError(f"{where}: expected a list of patterns")
    return value


def load_lexicon(path: Path, *, known_words: frozenset[str] = frozenset()) -> Lexicon:
    """Read one vocabulary file. `known_words` are dictionary words the typo correction leaves alone."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(f"{path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: expected a mapping")
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not isinstance(version, int) or version < 1:
        raise LexiconError(f"{path.name}: needs a name and a whole-number version")

    concepts: dict[str, Concept] = {}
    for code, spec in (data.get("concepts") or {}).items():
        where = f"{path.name}: concept {code}"
        try:
            tier = Tier(spec["tier"])
        except (KeyError, TypeError, ValueError):
            raise LexiconError(f"{where}: tier must be one of {[t.value for t in Tier]}") from None
        if not spec.get("category") or not spec.get("rationale"):
            raise LexiconError(f"{where}: needs a category and a rationale")
        crisis = bool(spec.get("crisis"))
        patient_text = str(spec.get("patient_text") or ("crisis" if crisis else "safety"))
        if patient_text not in PATIENT_TEXTS:
            raise LexiconError(f"{where}: patient_text must be one of {sorted(PATIENT_TEXTS)}")
        concepts[code] = Concept(
            code,
            tier,
            str(spec["category"]),
            str(spec["rationale"]).strip(),
            crisis=crisis,
            fallback=bool(spec.get("fallback")),
            patient_text=patient_text,
            blocked_by=_words(spec.get("blocked_by", ""), where),
        )
    if not concepts:
        raise LexiconError(f"{path.name}: no concepts")

    patterns: list[Pattern] = []
    vocabulary: set[str] = set()
    stems: set[str] = set()
    raw_patterns = data.get("patterns") or {}
    for code in concepts:
        by_language = raw_patterns.get(code)
        for language in LANGUAGES:
            where = f"{path.name}: patterns.{code}.{language}"
            sources = _list((by_language or {}).get(language), where)
            compiler = _Compiler(_sets(data.get("sets"), language, path), where)
            for source in sources:
                regex = re.compile("(?<= )" + compiler.body(source))
                patterns.append(Pattern(code, language, source, regex, *compiler.anchor))
            vocabulary |= compiler.words
            stems |= compiler.stems
    unknown = set(raw_patterns) - set(concepts)
    if unknown:
        raise LexiconError(f"{path.name}: patterns for unknown concepts {sorted(unknown)}")

    negation: dict[str, Negation] = {}
    idioms: list[re.Pattern[str]] = []
    softeners: list[re.Pattern[str]] = []
    clean_phrases: list[re.Pattern[str]] = []
    hedges: list[re.Pattern[str]] = []
    apart: list[re.Pattern[str]] = []
    for language in LANGUAGES:
        where = f"{path.name}: negation.{language}"
        spec = (data.get("negation") or {}).get(language)
        if not isinstance(spec, dict):
            raise LexiconError(f"{where}: missing")
        compiler = _Compiler({}, where)
        negation[language] = Negation(
            before=tuple(
                re.compile("(?<= )" + compiler.body(s) + r"\Z") for s in _list(spec.get("before"), where)
            ),
            fillers=_words(spec.get("fillers"), f"{where}.fillers"),
            after=tuple(re.compile(compiler.body(s)) for s in _list(spec.get("after"), where)),
            after_fillers=_words(spec.get("after_fillers"), f"{where}.after_fillers"),
            after_blockers=_words(spec.get("after_blockers"), f"{where}.after_blockers"),
            recurring=tuple(
                re.compile("(?<= )" + compiler.body(s)) for s in _list(spec.get("recurring"), where)
            ),
            subjects=_words(spec.get("subjects"), f"{where}.subjects"),
            history_before=tuple(
                re.compile("(?<= )" + compiler.body(s) + r"\Z") for s in _list(spec.get("history"), where)
            ),
            history_after=tuple(re.compile(compiler.body(s)) for s in _list(spec.get("history"), where)),
        )
        others_where = f"{path.name}: others.{language}"
        others_spec = (data.get("others") or {}).get(language)
        if not isinstance(others_spec, dict):
            raise LexiconError(f"{others_where}: missing")
        apart_compiler = _Compiler({}, others_where)
        apart.extend(
            re.compile("(?<= )" + apart_compiler.body(s))
            for s in _list(others_spec.get("apart"), others_where)
        )
        hedge_compiler = _Compiler({}, f"{path.name}: hedges.{language}")
        for source in _list((data.get("hedges") or {}).get(language, []), f"{path.name}: hedges"):
            hedges.append(re.compile("(?<= )" + hedge_compiler.body(source)))
        phrase_compiler = _Compiler({}, f"{path.name}: clean_phrases.{language}")
        for source in _list(
            (data.get("clean_phrases") or {}).get(language, []), f"{path.name}: clean_phrases"
        ):
            clean_phrases.append(re.compile("(?<= )" + phrase_compiler.body(source)))
        idiom_compiler = _Compiler(_sets(data.get("sets"), language, path), f"{path.name}: idioms.{language}")
        for source in _list((data.get("idioms") or {}).get(language, []), f"{path.name}: idioms.{language}"):
            idioms.append(re.compile("(?<= )" + idiom_compiler.body(source)))
        soft_spec: dict[str, Any] = data["softeners"] if isinstance(data.get("softeners"), dict) else {}
        soft_compiler = _Compiler(
            _sets(data.get("sets"), language, path), f"{path.name}: softeners.{language}"
        )
        for source in _list(soft_spec.get(language, []), f"{path.name}: softeners.{language}"):
            softeners.append(re.compile("(?<= )" + soft_compiler.body(source)))

    breaks_single: set[str] = set()
    breaks_multi: list[tuple[str, ...]] = []
    weak_single: set[str] = set()
    weak_multi: list[tuple[str, ...]] = []
    for language in LANGUAGES:
        for section, single, multi in (
            ("clause_breaks", breaks_single, breaks_multi),
            ("weak_breaks", weak_single, weak_multi),
        ):
            for phrase in str((data.get(section) or {}).get(language, "")).split("|"):
                words = tuple(fold(phrase.replace("_", " ")).split())
                if len(words) == 1:
                    single.add(words[0])
                elif words:
                    multi.append(words)

    def merged(section: str) -> frozenset[str]:
        table = data.get(section) or {}
        return frozenset().union(
            *(_words(table.get(lang, ""), f"{path.name}: {section}.{lang}") for lang in LANGUAGES)
        )

    def others_words(key: str) -> frozenset[str]:
        table = data.get("others") or {}
        return frozenset().union(
            *(_words(table[lang].get(key, ""), f"{path.name}: others.{lang}.{key}") for lang in LANGUAGES)
        )

    concern_words = merged("concerns")
    net = _model_net(data.get("model"), path, concepts)
    shorthand: dict[str, str] = {}
    for language in LANGUAGES:
        table = (data.get("shorthand") or {}).get(language) or {}
        if not isinstance(table, dict):
            raise LexiconError(f"{path.name}: shorthand.{language} must map text-speak to words")
        shorthand.update({fold(str(k)): fold(str(v)) for k, v in table.items()})
    return Lexicon(
        name=name,
        version=version,
        concepts=concepts,
        patterns=tuple(patterns),
        negation=negation,
        others=Others(
            people=others_words("people"),
            distant=others_words("distant"),
            first_person=others_words("first_person"),
            apart=tuple(apart),
        ),
        idioms=tuple(idioms),
        clause_breaks=frozenset(breaks_single),
        multiword_breaks=tuple(breaks_multi),
        weak_breaks=frozenset(weak_single),
        multiword_weak_breaks=tuple(weak_multi),
        clause_openers=merged("clause_openers"),
        qualifiers=merged("qualifiers"),
        concerns=frozenset(w for w in concern_words if not w.endswith("*")),
        concern_stems=tuple(sorted(w[:-1] for w in concern_words if w.endswith("*"))),
        clean_phrases=tuple(clean_phrases),
        hedges=tuple(hedges),
        vocabulary=frozenset(vocabulary),
        stems=tuple(sorted(stems, key=lambda stem: (-len(stem), stem))),  # ties: the same in every process
        known_words=known_words,
        shorthand=shorthand,
        net=net,
        softeners=tuple(softeners),
        soften_to=_soften_to(data.get("softeners"), path, concepts),
    )


def _soften_to(spec: object, path: Path, concepts: Mapping[str, Concept]) -> str | None:
    """`softeners: {to: <concept>, en: [...], es: [...]}`: the concept a softened crisis finding becomes."""
    if spec is None:
        return None
    where = f"{path.name}: softeners"
    if not isinstance(spec, dict) or "to" not in spec:
        raise LexiconError(f"{where}: needs `to` (the concept a softened finding becomes)")
    target = spec["to"]
    if target not in concepts or concepts[target].crisis:
        raise LexiconError(f"{where}: `to` must be a defined concept without the crisis text, not {target!r}")
    return str(target)


def _model_net(spec: object, path: Path, concepts: Mapping[str, Concept]) -> ModelNet | None:
    """`model: {file, threshold, concept[, beside_warnings]}`: the text model beside this vocabulary."""
    if spec is None:
        return None
    where = f"{path.name}: model"
    if not isinstance(spec, dict) or not {"file", "threshold", "concept"} <= set(spec):
        raise LexiconError(f"{where}: needs file, threshold and concept")
    if spec["concept"] not in concepts:
        raise LexiconError(f"{where}: concept {spec['concept']!r} is not defined")
    threshold = spec["threshold"]
    if not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise LexiconError(f"{where}: threshold must be a probability between 0 and 1")
    try:
        model = load_reading_model(path.parent / str(spec["file"]))
    except ReadingModelError as exc:
        raise LexiconError(f"{where}: {exc}") from None
    beside = spec.get("beside_warnings", False)
    if not isinstance(beside, bool):
        raise LexiconError(f"{where}: beside_warnings must be true or false")
    return ModelNet(model, float(threshold), str(spec["concept"]), beside_warnings=beside)


@cache
def dictionary_words() -> frozenset[str]:
    """English and Spanish dictionary words, folded: pyspellchecker's lists, and the Spanish words wordfreq
    counts at least once per million words of real use (both ship their data; nothing is downloaded).

    A word in them is never "corrected": "felt" must not become "fell". pyspellchecker's Spanish list lacks
    most verb forms, so "quiso" was corrected to "quito" (it went away, negating the symptom before it) and
    "busqué" to a word for vomiting; wordfreq's frequency lists hold the forms people write, and Spanish
    misspellings are rare enough to stay out ("ormigueo"). Not for English: its list is complete, and
    wordfreq's counts include text-speak ("throwin", "nothin") that must still be corrected.
    Loaded once per process (~1 s).
    """
    from spellchecker import SpellChecker
    from wordfreq import get_frequency_dict

    words: set[str] = set()
    for language in LANGUAGES:
        words.update(fold(w) for w in SpellChecker(language=language, distance=1).word_frequency.dictionary)
    words.update(fold(w) for w, share in get_frequency_dict("es").items() if share >= COMMON_SHARE)
    return frozenset(words)


COMMON_SHARE = 1e-6  # once per million words (Zipf 3)


def load_lexicons(folder: Path, *, with_dictionary: bool = True) -> dict[tuple[str, int], Lexicon]:
    known = dictionary_words() if with_dictionary else frozenset()
    lexicons: dict[tuple[str, int], Lexicon] = {}
    for path in sorted(folder.glob("*.yaml")):
        lexicon = load_lexicon(path, known_words=known)
        key = (lexicon.name, lexicon.version)
        if key in lexicons:
            raise LexiconError(f"{path.name}: {lexicon.label} is defined twice")
        lexicons[key] = lexicon
    if not lexicons:
        raise LexiconError(f"{folder}: no symptom vocabulary (*.yaml)")
    return lexicons
