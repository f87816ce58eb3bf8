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
    # dictation and homophone errors ("weigh" for way, "you're in" for urine, "bare" for bear)
    ("neuro", "both knees gave weigh in the kitchen"),
    ("bladder_bowel", "struggling to pass you're in all day"),
    ("fracture", "can't bare weight on the left foot"),
    ("bladder_bowel", "not past water since breakfast"),
    ("bladder_bowel", "no puedo aser pis desde anoche"),
    ("fracture", "mi abuela se calló en el baño"),
    # self-harm by method, goodbye letters, not coming back
    ("self_harm", "keep thinking about stepping in front of a lorry"),
    ("self_harm", "part of me wants to drive into the river and not come back"),
    ("self_harm", "I've written goodbye notes for the kids"),
    ("self_harm", "started self harming again"),
    ("self_harm", "I'm planning to hang myself"),
    ("self_harm", "quiero tirarme por la ventana"),
    ("self_harm", "he pensado en ahorcarme"),
    ("self_harm", "dejé una carta de despedida en la mesa"),
    ("self_harm", "me estoy cortando otra vez"),
    ("self_harm", "me he vuelto a lastimar los brazos"),
    # regional and colloquial body words
    ("neuro", "se me doblan las canillas al caminar"),
    ("neuro", "tengo las patas dormidas"),
    ("neuro", "me pegs have gone all floppy"),
    ("bladder_bowel", "no hice del dos ni del uno en todo el día"),
    ("bladder_bowel", "the waterworks have packed up completely"),
    ("bladder_bowel", "had another accident with the plumbing this morning"),
    ("bladder_bowel", "she hasn't done a number one since lunch"),
    # can't weight-bear, won't take my weight
    ("fracture", "can't weightbear on the right side"),
    ("fracture", "my ankle won't hold my weight"),
    ("fracture", "her knee won't take any weight"),
    ("fracture", "no puedo apoyar nada de peso en la cadera"),
    ("fracture", "la rodilla no aguanta mi peso"),
    # colloquial falls
    ("fracture", "hit the deck in the garden"),
    ("fracture", "took a tumble getting off the bus"),
    ("fracture", "came a cropper on the ice"),
    ("fracture", "me di un porrazo en la cocina"),
    ("fracture", "mi mamá se fue de boca en la acera"),
    # disorientation, can't be woken
    ("consciousness", "she doesn't know what year it is"),
    ("consciousness", "I don't remember where I am half the time"),
    ("consciousness", "dad doesn't know who he is this morning"),
    ("consciousness", "mi papá no sabe en qué año estamos"),
    ("consciousness", "no sé dónde estoy"),
    ("consciousness", "amaneció desubicado"),
    ("consciousness", "no hay forma de despertarla"),
    # can't get up from a seat
    ("neuro", "can't get up off the sofa"),
    ("neuro", "couldn't get out of the armchair this morning"),
    ("neuro", "no se puede levantar de la silla"),
    # bladder: passing water, hesitancy
    ("bladder_bowel", "haven't passed water all day"),
    ("bladder_bowel", "having difficulty passing urine"),
    ("bladder_bowel", "my pee takes ages to start"),
    ("bladder_bowel", "me cuesta mucho orinar"),
    ("bladder_bowel", "el chorro sale muy débil"),
    # a heart attack said as a symptom
    ("breathing_chest", "I think I'm having a heart attack"),
    ("breathing_chest", "creo que me está dando un infarto"),
    # legs folding, dragging, without power, in either word order
    ("neuro", "my legs just folded under me in the shower"),
    ("neuro", "lost all power in my right leg"),
    ("neuro", "no strength in my legs today"),
    ("neuro", "left leg dragging since this morning"),
    ("neuro", "se me van las piernas"),
    ("neuro", "se me vencen las rodillas al caminar"),
    # gait like a drunk, numbness words of Spain
    ("neuro", "I'm walking like I'm drunk"),
    ("neuro", "she's walking like a penguin today"),
    ("neuro", "camino como borracha y no he bebido"),
    ("neuro", "siento las piernas acorchadas"),
    # saddle numbness on the inner thighs; can't tell when I need to go
    ("bladder_bowel", "tingling on the inside of my thighs"),
    ("bladder_bowel", "my inner thighs are numb"),
    ("bladder_bowel", "can't tell when I need the loo"),
    ("bladder_bowel", "she doesn't know when she needs a wee anymore"),
    # landing on a bone
    ("fracture", "landed on my hip and now I can't move it"),
    ("fracture", "landed on my bum on the patio"),
    ("fracture", "landed on my wrist when I went over"),
    # blue lips, chest squeezing said as a verb
    ("breathing_chest", "lips going blue"),
    ("breathing_chest", "her fingertips look grey and she's panting"),
    ("breathing_chest", "tiene los labios morados"),
    ("breathing_chest", "siento que me aprieta el pecho"),
    ("breathing_chest", "me oprime el pecho desde la mañana"),
    # no way out, can't do this any more, plans and stores
    ("self_harm", "there's no way out, I'm done"),
    ("self_harm", "I can't do this anymore"),
    ("self_harm", "been looking up ways to die"),
    ("self_harm", "I've got enough pills saved to do it"),
    ("self_harm", "no veo salida a nada"),
    ("self_harm", "ya no aguanto más esta vida"),
    ("self_harm", "quiero que todo esto se acabe ya"),
    ("self_harm", "siento que sobro en esta casa"),
    # a resolution undone: it came back
    ("neuro", "the numbness went when I stood up but it's back"),
    ("neuro", "the tingling had stopped, it has returned today"),
    ("neuro", "el hormigueo se me quitó pero volvió"),
    # bumping into things, falling to one side
    ("neuro", "I keep bumping into things and falling sideways"),
    ("neuro", "always walking into door frames this week"),
    ("neuro", "she keeps toppling to one side"),
    # bursting but nothing comes; can't feel when wiping; sin poder hacer pis
    ("bladder_bowel", "haven't been since yesterday morning and I'm bursting"),
    ("bladder_bowel", "bursting for a wee and nothing comes out"),
    ("bladder_bowel", "can't feel when I wipe"),
    ("bladder_bowel", "no siento cuando me limpio"),
    ("bladder_bowel", "llevo horas sin poder hacer pis y me duele mucho la vejiga"),
    ("bladder_bowel", "mi mamá lleva toda la tarde sin poder orinar"),
    # found in a heap, at the bottom of the stairs
    ("fracture", "found her in a heap at the bottom of the stairs"),
    ("fracture", "he ended up at the foot of the stairs"),
    ("fracture", "I was in a heap by the back door"),
    # doesn't even know who she is
    ("consciousness", "está muy rara, no sabe ni quién es"),
    ("consciousness", "mi papá no recuerda ni cómo se llama"),
    ("consciousness", "no sé ni dónde estoy"),
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
    # pain out of control, nothing helps
    ("severe_pain", "8 and nothing is working"),
    ("severe_pain", "my pain is totally uncontrolled"),
    ("severe_pain", "nothing takes the edge off"),
    ("severe_pain", "el dolor no se me calma con nada"),
    ("severe_pain", "ninguna pastilla me lo quita"),
    ("severe_pain", "no encuentro posición del dolor"),
    ("severe_pain", "can't get comfortable whatever I try"),
    # sick every time I drink; regional words for vomiting
    ("vomiting_fluids", "throw up every time I sip water"),
    ("vomiting_fluids", "bringing it up whenever I eat"),
    ("vomiting_fluids", "nothing stays down, not even tea"),
    ("vomiting_fluids", "vomito cada vez que tomo agua"),
    ("vomiting_fluids", "llevo toda la mañana guacareando"),
    ("vomiting_fluids", "ni un traguito de agua me dura"),
    # thirst: can't stop drinking, litres, up weeing
    ("thirst", "can't stop drinking water"),
    ("thirst", "getting through three bottles of water a day"),
    ("thirst", "up peeing every half hour"),
    ("thirst", "no paro de beber agua"),
    ("thirst", "me tomo 5 litros al día"),
    # pain at night or lying down, said before the pain
    ("spinal_pain", "de noche me duele mucho la columna"),
    ("spinal_pain", "tumbada me duelen más los riñones"),
    ("spinal_pain", "at night my back is agony"),
    # painkillers by name, a pain score in words
    ("severe_pain", "pain's been a 10 all night and oramorph isn't touching it"),
    ("severe_pain", "the tramadol isn't helping at all"),
    ("severe_pain", "los rescates no me hacen efecto"),
    ("severe_pain", "pain is at a 9 today"),
    ("severe_pain", "the pain in my hip is horrendous"),
    ("severe_pain", "el dolor no me deja vivir"),
    # pain so bad I can't sleep or lie down; straining said later in the sentence
    ("spinal_pain", "back pain so bad I can't sleep"),
    ("spinal_pain", "my neck aches so much I can't lie flat"),
    ("spinal_pain", "me duele la columna cuando voy al baño y pujo"),
    # thirst: parched, however much I drink
    ("thirst", "parched all day"),
    ("thirst", "no matter how much I drink my mouth stays dry"),
    ("thirst", "por más que tome agua sigo igual"),
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
    # symptom of a named other person with their own cause, or the writer hoping not to catch it
    "my brother keeps falling, it's his parkinsons",
    "my son has been throwing up all night, hope I don't catch it",
    "my dad's confused again, he's seeing the consultant on Tuesday",
    "mi hermano anda confundido por su demencia",
    "mi suegro no puede caminar, es la ciática, ya tiene cita con el traumatólogo",
    "mi hermana vomita todo, espero que no me lo pegue",
    # resolved by treatment
    "the tingling I mentioned in January went away after the physio",
    "the weakness from October has settled since the steroids, thank you",
    "el hormigueo que les dije en enero se fue con la fisioterapia",
    # old and unchanged
    "numb toes from the chemo, same as they've been for months",
    "the old fracture in my wrist aches when it's cold",
    "la fractura antigua de la cadera me molesta con el frío",
    "el adormecimiento de los pies sigue igual que hace meses",
    # figurative
    "can't stand the queue at the pharmacy",
    "that match nearly gave me a heart attack",
    "the sunset left me breathless",
    "gasping for a cuppa",
    "a bit winded after my zumba class",
    "the cat won't put weight on her paw",
    "el partido del domingo estuvo buenísimo",
    "la vista desde el mirador me dejó sin aliento",
    "casi me da un ataque al corazón con la factura de la luz",
    "she jumps off a bridge in the film",
    # a resolution said with "went after / when / once"
    "the pins and needles went after I changed position",
    "the tingling went once I sat down",
    "the numbness has gone, it's back to normal",
    # figurative falls and breakages of things
    "nearly fell off my chair laughing",
    "me caí de la risa con el chiste",
    "broke my favourite mug",
    "smashed a plate doing the dishes",
    "cracked the glass on my watch",
    # ordinary, advised amounts of fluid; a drink wanted, not breath
    "I drink 2 litres a day as advised",
    "tomo dos litros de agua al día como me dijo la enfermera",
    "gasping for a cup of tea after the walk",
    "dying for a glass of wine tonight",
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
    # a clean no followed by an ordinary activity
    "No. Did my usual swim at the leisure centre.",
    "no, walked the dog like I do every morning",
    "no, fui a caminar como todos los días",
    "no, hice mi paseo de todos los domingos",
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


# --- symptoms-v2: the net for unknown wording, text-speak, and the text an urgent finding sends ----------
UNSURE = [
    "my knees feel kind of different since yesterday",
    "something odd going on with my hands",
    "mis brazos están raros desde anoche",
    "breath feels wrong somehow",
]


@pytest.mark.parametrize("text", UNSURE)
def test_a_red_flag_body_part_with_a_change_in_unknown_words_is_unsure(lexicon: Lexicon, text: str) -> None:
    reading = read(text, lexicon)
    assert [f.concept for f in reading.findings] == ["unsure"]
    assert reading.tier is Tier.EMERGENCY  # a nurse reads it now


@pytest.mark.parametrize(
    "text",
    [
        "my arms are a bit weird and I can't walk",  # a named emergency: not also unsure
        "my back feels strange and worse at night",  # a named warning: the reader understood it
    ],
)
def test_the_net_stands_aside_when_the_reader_recognises_the_message(lexicon: Lexicon, text: str) -> None:
    assert "unsure" not in [f.concept for f in read(text, lexicon).findings]


@pytest.mark.parametrize(
    "text", ["no, my legs feel normal", "the new walking frame came today", "mis piernas no están raras"]
)
def test_the_net_keeps_negation_and_ordinary_talk_quiet(lexicon: Lexicon, text: str) -> None:
    assert read(text, lexicon).findings == ()


@pytest.mark.parametrize(
    ("text", "concept"), [("cnt feel me feet", "neuro"), ("she dnt wake up", "consciousness")]
)
def test_text_speak_is_read_as_the_word(lexicon: Lexicon, text: str, concept: str) -> None:
    assert concept in [f.concept for f in read(text, lexicon).findings]


def test_each_urgent_category_names_the_text_the_patient_gets(lexicon: Lexicon) -> None:
    from alerts.reading import patient_text_for

    assert patient_text_for(lexicon, "possible_red_flag") == "unsure"
    assert patient_text_for(lexicon, "self_harm") == "crisis"
    assert patient_text_for(lexicon, "spinal_cord_compression") == "safety"
    assert patient_text_for(lexicon, "pathologic_fracture") == "safety"  # ruleset categories too


# --- review of symptoms-v2 (held-out wording by the reviewer): each was a defect before its fix --------
@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("no my walking is worse my legs went numb last night", "neuro"),  # a loose match chained a "no"
        ("nothing new my walking is worse my legs went numb", "neuro"),
        ("getting out of the car my legs gave way", "neuro"),  # a place is not a thing with the symptom
        ("lost my job want to die", "self_harm"),
        ("sin trabajo me quiero morir", "self_harm"),
        ("no actually my legs went numb an hour ago", "neuro"),
        ("Dad has fallen and cant get up, keep clear of him?", "fracture"),
        ("nearly wet myself at the bus stop, cant hold it at all", "bladder_bowel"),
        ("my back has been killing me since the walk yesterday", "severe_pain"),
        ("no puedo apoyar la pierna, ya estaba curada la fractura", "fracture"),
        ("my legs dont feel right theyre weak", "neuro"),
        ("el dolor esta bien, pero me cuesta trabajo mover las piernas", "neuro"),
        ("no numbness. whats the point of any of this, I just want to stop existing", "unsure"),
        ("been vomiting since lunch and my hands feel odd", "unsure"),  # a warning keeps the urgent net
    ],
)
def test_review_findings_stay_read(lexicon: Lexicon, text: str, concept: str) -> None:
    assert concept in [f.concept for f in read(text, lexicon).findings]


@pytest.mark.parametrize(
    "text",
    [
        "no tengo debilidad u hormigueo",  # "u" is Spanish "or", not text-speak for "you"
        "how many paracetamol can I take in a day with the morphine?",  # a dosing question
        "didnt wake up till 9, slept well for once",
        "we took a trip to the seaside",
        "hopping mad about the parking",
    ],
)
def test_review_false_alarms_stay_quiet(lexicon: Lexicon, text: str) -> None:
    assert [f.concept for f in read(text, lexicon).findings if f.tier is Tier.EMERGENCY] == []


def test_a_frequency_is_not_reassurance_on_a_red_flag_question(lexicon: Lexicon) -> None:
    assert not clean_answer("No, twice a day I lose feeling", lexicon)
    assert not clean_answer("no, me pasa dos veces al dia", lexicon)


@pytest.mark.parametrize(
    "text",
    ["no... I mean yes", "No sorry, wrong button. YES", "no, perdón, me equivoqué: sí", "No. Digo que si"],
)
def test_a_no_taken_back_on_a_red_flag_question_is_urgent_for_a_nurse(lexicon: Lexicon, text: str) -> None:
    from pro_service.instruments import load_instruments
    from pro_service.message_reading import read_message

    instrument = load_instruments(ROOT / "config" / "instruments").get("sre-weekly", 1)
    assert instrument is not None
    for code in ("neuro", "bladder_bowel", "sudden_immobile"):
        assert read_message(text, lexicon, item=instrument.item(code)).unclear_red_flag, (code, text)


def test_typo_stems_are_ordered_the_same_in_every_process(lexicon: Lexicon) -> None:
    assert list(lexicon.stems) == sorted(lexicon.stems, key=lambda stem: (-len(stem), stem))


def test_a_yes_to_a_red_flag_question_never_adds_an_unsure_alert(lexicon: Lexicon) -> None:
    from pro_service.instruments import load_instruments
    from pro_service.message_reading import findings_of, read_message

    instrument = load_instruments(ROOT / "config" / "instruments").get("sre-weekly", 1)
    assert instrument is not None
    item = instrument.item("neuro")
    text = "yes my knees feel kind of odd"
    message = read_message(text, lexicon, item=item)
    found = findings_of(message, lexicon, text=text, item=item, question=None)
    assert [f.category for f in found] == []  # the ruleset's urgent rule on the yes is the one alert


# --- symptoms-v4: every form of "sentir" (held-out wording, not from any corpus) ------------------------
@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("¿será normal que no sienta nada ahí abajo cuando me limpio?", "bladder_bowel"),
        ("mi papá dice que no siente el papel al limpiarse", "bladder_bowel"),
        ("desde ayer no sentía bien las piernas al subir", "neuro"),
        ("no puedo sentir los pies, se me duermen", "neuro"),
        ("¿es normal que mi madre no sienta las ganas de orinar desde el martes?", "bladder_bowel"),
        ("no sentimos que tenga ganas de hacer pis, lleva todo el dia sin ir", "bladder_bowel"),
    ],
)
def test_every_form_of_sentir_is_read(lexicon: Lexicon, text: str, concept: str) -> None:
    assert concept in {f.concept for f in read(text, lexicon).findings}, text


@pytest.mark.parametrize(
    "text",
    [
        "no siento ganas de comer",
        "no siento ganas de nada hoy",
        "la verdad no siente ganas de salir",
        # pain or burning denied is not a loss of feeling
        "gracias, ya no sentía dolor al orinar",
        "no siento ningún dolor en las piernas desde el lunes",
        "mi esposa no siente ardor al orinar",
    ],
)
def test_no_appetite_or_pain_denied_is_not_a_loss_of_feeling(lexicon: Lexicon, text: str) -> None:
    found = {f.concept for f in read(text, lexicon).findings}
    assert not found & {"bladder_bowel", "neuro"}, (text, found)


@pytest.mark.parametrize(
    "text", ["ya no siento ganas de vivir", "mi hijo dice que no siente ganas de seguir"]
)
def test_no_wish_to_live_in_any_form_of_sentir_is_self_harm(lexicon: Lexicon, text: str) -> None:
    assert "self_harm" in {f.concept for f in read(text, lexicon).findings}, text


# --- symptoms-v3: self-harm told obliquely, and ordinary talk of death (held-out wording) ----------------
@pytest.mark.parametrize(
    "text",
    [
        # asking what amount would kill, or be quick
        "would a whole strip of my zopiclone be painless do you think",
        "how much oramorph would it take to not wake up",
        "¿cuántos parches de fentanilo serían suficientes para no despertar?",
        "una caja completa de clonazepam sería rápido?",
        # looked it up: the internet is not the one at risk
        "I googled on the internet how many of my morphine tablets would be fatal",
        "miré en internet qué dosis de tramadol es mortal",
        # a farewell with no more bother to come
        "thank you all, truly. I won't be troubling anyone much longer",
        "les agradezco todo. ya no los voy a molestar más",
        # asking to be taken, or not to wake
        "every night I beg the Lord to take me",
        "le pido a diosito que me recoja pronto",
        "rezo para no despertar mañana",
        # hoping for an accident
        "honestly I keep hoping a bus hits me on the way to chemo",
        "ojalá me atropelle un camión cuando cruzo",
        # ending it before the illness does, stepping out of the way
        "going to sort it myself before the cancer gets me",
        "lo voy a hacer por mi cuenta antes de que esto me gane",
        "soy un peso muerto para mis hijos",
        # stopping food on purpose, hurting oneself, keeping tablets back
        "stopped eating on purpose so it comes sooner",
        "dejé de tomar las pastillas a propósito para que acabe antes",
        "I scratch my arms till they bleed when it gets bad",
        "tengo escondidas las pastillas de morfina en el ropero",
        # a carer, and a Spanish verb form the typo corrector once rewrote
        "mi mamá dice que se va a matar",
    ],
)
def test_self_harm_told_obliquely_is_an_emergency_with_the_crisis_text(lexicon: Lexicon, text: str) -> None:
    found = [f for f in read(text, lexicon).findings if f.concept == "self_harm"]
    assert found, text
    assert lexicon.concepts["self_harm"].crisis


@pytest.mark.parametrize(
    "text",
    [
        "am I going to die from this? be honest with me",
        "we had to have the old dog put down yesterday, I'm gutted",
        "bored to death in the waiting room, any idea how long?",
        "we nearly died laughing at the photos",
        "nos morimos de la risa con los nietos",
        "I don't want any more chemo. Can we talk about what happens next?",
        "ya no quiero más quimio, lo hablé con mis hijos",
        "made a living will and a lasting power of attorney this week",
    ],
)
def test_ordinary_talk_of_death_never_reads_as_self_harm(lexicon: Lexicon, text: str) -> None:
    assert [f.concept for f in read(text, lexicon).findings if f.tier is Tier.EMERGENCY] == [], text


@pytest.mark.parametrize(
    "text",
    [
        "dad wants to die in his own bed, can the district nurses help",
        "mi mamá quiere morir en su casa tranquila",
        "¿me voy a morir de esto?",
        "I want to die at home, tonight",  # the same frame; only a person can tell which it is
    ],
)
def test_where_someone_wants_to_die_is_for_a_nurse_now_never_silence_nor_the_crisis_text(
    lexicon: Lexicon, text: str
) -> None:
    """Said in the very words of a wish to die: urgent for a nurse (unsure, the gentler text)."""
    concepts = [f.concept for f in read(text, lexicon).findings]
    assert concepts == ["unsure"], (text, concepts)
    assert lexicon.concepts["unsure"].tier is Tier.EMERGENCY and not lexicon.concepts["unsure"].crisis


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        # a frame never hides what is said outside it, nor a wish said without one
        ("I want to die at home and I have the pills saved up", "self_harm"),
        ("I just want to die in peace, I have had enough", "self_harm"),
        ("I pray I die in my sleep tonight", "self_harm"),
        ("I'd rather be put to sleep than go on like this", "self_harm"),
        ("I'm going to die from this pain", "self_harm"),
        ("quiero morirme ya, en mi casa o donde sea", "self_harm"),
        ("mum wants to die at home and she can't feel her legs", "neuro"),
        # "… to death" is never a figure of speech to set aside (a second review of v3)
        ("I'm starving myself to death", "self_harm"),
        ("my dad is starving himself to death", "self_harm"),
        ("frightened he's choking to death", "breathing_chest"),
        ("scared I'll bleed to death", "unsure"),
        ("I'm freezing to death and shaking, temp is 39", "unsure"),
    ],
)
def test_a_talk_of_death_frame_never_hides_a_wish_said_outside_it(
    lexicon: Lexicon, text: str, concept: str
) -> None:
    assert concept in [f.concept for f in read(text, lexicon).findings], text


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        # real Spanish verb forms are words, not typos: "quiso" is not "quitó" (it went away)
        ("se quiso levantar y no siente las piernas", "neuro"),
        ("busqué mis lentes y me caí, no puedo apoyar el pie", "fracture"),
        ("hice la cena y ahora no puedo caminar", "neuro"),
    ],
)
def test_spanish_verb_forms_are_never_corrected_into_other_words(
    lexicon: Lexicon, text: str, concept: str
) -> None:
    assert concept in [f.concept for f in read(text, lexicon).findings], text
