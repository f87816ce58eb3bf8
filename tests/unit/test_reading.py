"""The symptom reader on held-out wording: sentences written for these tests, not taken from the corpus.

Each case is a way of speaking (a class), not a corpus sentence: breathing difficulty, self-harm, retention,
legs failing, carers writing in the third person, pain at night or on coughing, resolution and history,
other people's symptoms, figures of speech, and clean or unclear answers to red-flag questions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.lexicon import load_lexicons
from alerts.reading import Lexicon, Tier, clean_answer, read

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    lexicons = load_lexicons(ROOT / "config" / "reading")
    return max(lexicons.values(), key=lambda lx: lx.version)


EMERGENCIES = [
    # breathing, English and Spanish
    ("breathing_chest", "I can't get my breath at all today"),
    ("breathing_chest", "she's gasping for air and her lips look grey"),
    ("breathing_chest", "breathing feels really laboured this morning"),
    ("breathing_chest", "totally winded after brushing my teeth"),
    ("breathing_chest", "chest feels crushed, like an elephant sitting on it"),
    ("breathing_chest", "a mi papá no le entra aire"),
    ("breathing_chest", "respira con mucha dificultad desde anoche"),
    ("breathing_chest", "me cuesta un montón respirar acostada"),
    # self-harm
    ("self_harm", "i keep thinking everyone would be happier without me"),
    ("self_harm", "been stockpiling my oxycodone just in case"),
    ("self_harm", "sometimes I just want to disappear for good"),
    ("self_harm", "I want to end my life"),
    ("self_harm", "me quiero matar"),
    ("self_harm", "ya no quiero seguir viviendo así"),
    ("self_harm", "está juntando las pastillas de la morfina"),
    # bladder and bowel
    ("bladder_bowel", "haven't managed a wee since last night"),
    ("bladder_bowel", "only a trickle when I try and my belly feels tight"),
    ("bladder_bowel", "I wet the bed last night and didn't even notice"),
    ("bladder_bowel", "llevo todo el día sin orinar"),
    ("bladder_bowel", "solo me salen unas gotitas"),
    # legs failing, numbness, typos
    ("neuro", "my thigh buckled on the stairs"),
    ("neuro", "legs wont hold me up this morning"),
    ("neuro", "cant feel my toes at all"),
    ("neuro", "tingling creeping up both legs"),
    ("neuro", "my legs just won't obey me"),
    ("neuro", "cant wlak today"),
    ("neuro", "se me durmieron las dos piernas y no las siento"),
    ("neuro", "siento las piernas como de gelatina"),
    ("neuro", "me tiemblan las piernas y no me sostienen"),
    ("neuro", "no me puedo tener en pie"),
    ("neuro", "tengo hormigeo en los pies"),
    ("bladder_bowel", "numbnes around my bum"),
    # fracture and consciousness, carers
    ("fracture", "heard a snap in my arm when I lifted the kettle"),
    ("fracture", "escuché un crujido en la cadera y no puedo apoyar el pie"),
    ("consciousness", "mum won't wake up properly and is mumbling"),
    ("consciousness", "mi mamá casi no despierta"),
    ("consciousness", "está muy confundida, no sabe dónde está"),
    # carers writing about the patient stay emergencies
    ("neuro", "my wife can't stand up this morning"),
    ("bladder_bowel", "mi esposa no puede orinar desde ayer"),
    ("consciousness", "my husband says my speech is confused"),
    ("breathing_chest", "my sister can't breathe properly, should I call 999"),
    ("neuro", "dad's feet have gone numb"),
    # negation has a scope
    ("neuro", "no, my legs are weak"),
    ("neuro", "no tengo debilidad pero sí hormigueo en los pies"),
    ("neuro", "not numb, but my legs keep giving way"),
    ("neuro", "the tingling has gone into my legs now"),
    ("neuro", "the tingling went away but now my legs are weak"),
    ("neuro", "legs numb and the pain has gone"),
    ("neuro", "el hormigueo sigue y ahora no puedo caminar"),
    # "so", "still" are intensifiers here, not clause breaks
    ("neuro", "my legs are still weak"),
    ("consciousness", "she is so sleepy she can barely talk"),
    ("neuro", "las piernas todavía dormidas"),
    # a place is not a thing: "in bed" must not hide the finding
    ("neuro", "in bed cant walk"),
    # other people's words around the patient's own
    ("neuro", "my brother in law drove me home because my legs were so weak"),
    ("neuro", "mi esposo dice que no puedo caminar bien"),
    ("consciousness", "my son says I'm not making sense"),
    ("fracture", "mi esposo me tuvo que levantar del suelo"),
    ("bladder_bowel", "can't stop peeing myself"),
    ("self_harm", "I'd rather be dead"),
    ("self_harm", "no tengo ganas de vivir"),
    ("neuro", "tengo las piernas dormidas, no se me pasa"),
    ("neuro", "pins & needles in both hands since this morning"),
    ("consciousness", "my mum has gone very quiet and won't respond"),
    ("breathing_chest", "tengo presión en el pecho"),
    ("neuro", "my legs went numb, fine now but they keep doing it"),
    ("fracture", "my husband found me on the bathroom floor"),
    ("bladder_bowel", "no tengo control de la orina"),
    ("consciousness", "mi mamá está como ida"),
    ("self_harm", "honestly I'd be better off gone"),
    ("self_harm", "can't face another day"),
    ("self_harm", "no le veo sentido a seguir"),
    ("neuro", "yo estoy bien pero no siento las piernas"),
]

WARNINGS = [
    ("severe_pain", "the pain is through the roof tonight"),
    ("severe_pain", "worst pain I've ever had in my hip"),
    ("severe_pain", "el dolor es un martirio"),
    ("severe_pain", "mi mamá se queja de dolor todo el día"),
    ("spinal_pain", "I can't sleep for the pain in my spine"),
    ("spinal_pain", "my back is agony when I sneeze"),
    ("spinal_pain", "neck is at its worst in bed"),
    ("spinal_pain", "me duele la espalda cuando estornudo"),
    ("spinal_pain", "me duele la espalda sobre todo de noche"),
    ("severe_pain", "nothing is touching the pain"),
    ("severe_pain", "ni la morfina me quita el dolor"),
    ("spinal_pain", "la columna me molesta más de noche, me despierta"),
    ("vomiting_fluids", "keep being sick, can't keep any water down"),
    ("vomiting_fluids", "todo lo que tomo lo devuelvo"),
    ("thirst", "my tongue feels like sandpaper all day"),
    ("thirst", "tengo la boca reseca y mucha sed"),
]

QUIET = [
    # resolved, old, unchanged
    "the numbness has totally cleared up",
    "the tingling I told you about went away by itself",
    "el hormigueo ya se me pasó",
    "la debilidad que le comenté ya se fue",
    "fell off my bike when I was a kid, just remembered for the form",
    "me fracturé la muñeca hace años, nada nuevo",
    "numbness in my toes from chemo, same as always",
    # other people
    "my brother broke his leg skiing, I'm fine",
    "my neighbour fell in the garden yesterday",
    "mi vecino se cayó de la bici",
    "mi hermano no puede caminar desde el accidente, yo estoy bien",
    # things, not people
    "the tv remote is broken again",
    "our washing machine broke, nightmare",
    # figures of speech
    "I'm dying to see my grandkids",
    "that film broke my heart",
    "nearly died of embarrassment at the clinic",
    "the paperwork is mind numbing",
    "me muero de ganas de verte",
    "no aguanto la emoción por la boda",
    "se me rompió el corazón con esa película",
    "what are the visiting hours at the hospital",
    "dónde está la farmacia del hospital",
    # negation
    "no weakness in my legs",
    "I don't have any numbness or tingling",
    "no tengo hormigueo ni debilidad",
    "my feet were numb from the cold walking the dog",
    "the heating's broken again",
    "my son fell off his skateboard, he's fine",
    "mi nieto se cayó del columpio pero está bien",
    "my husband's back pain keeps him up at night, I'm fine",
    "fui al hospital a visitar a mi hermana",
    "the pain at night has completely gone",
    "ya no me duele al toser",
]


@pytest.mark.parametrize(("concept", "text"), EMERGENCIES)
def test_emergencies(lexicon: Lexicon, concept: str, text: str) -> None:
    reading = read(text, lexicon)
    assert reading.tier is Tier.EMERGENCY, reading
    assert concept in {f.concept for f in reading.findings}, reading


@pytest.mark.parametrize(("concept", "text"), WARNINGS)
def test_warnings(lexicon: Lexicon, concept: str, text: str) -> None:
    reading = read(text, lexicon)
    assert concept in {f.concept for f in reading.findings}, reading
    assert reading.tier is not None


@pytest.mark.parametrize("text", QUIET)
def test_quiet(lexicon: Lexicon, text: str) -> None:
    reading = read(text, lexicon)
    assert reading.findings == (), reading


CLEAN = [
    "no, my legs feel normal",
    "nope, all working properly thanks",
    "no, peeing fine",
    "nah, went for a walk round the park this morning",
    "no, happened gradually and I can still get about",
    "no, not weak at all",
    "nope nothing like that",
    "no, todo normal por allá abajo",
    "no señor, me siento bien",
    "no, camino sin problema",
    "para nada, todo como siempre",
    "no, legs fine, bladder fine",
    "pues no, todo en orden",
]

UNCLEAR = [
    "no, just tired",
    "no but my back hurts",
    "not sure",
    "no, a little wobbly maybe",
    "no, not really",
    "no, feeling a bit weak",
    "no, can you call me?",
    "no, still the same numb feeling",
    "no sé",
    "no, pero me siento débil",
    "no, solo un poco cansada",
    "no, quizás un poco",
    "no pero me duele",
    "no lo sé",
    "no, not yet",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_no(lexicon: Lexicon, text: str) -> None:
    assert clean_answer(text, lexicon)
    assert read(text, lexicon).findings == ()


@pytest.mark.parametrize("text", UNCLEAR)
def test_unclear_no(lexicon: Lexicon, text: str) -> None:
    assert not clean_answer(text, lexicon) or read(text, lexicon).findings
