"""Lab units (pure): a result's value in the lab's unit → the canonical unit its code is compared in.

Units are read as UCUM (the unit code system FHIR Quantity and HL7 v2 OBX-6 use) by `ucumvert`, which parses
UCUM's grammar and builds `pint` quantities; pint does the arithmetic, including mass ↔ amount of substance
through its `chemistry` context and the analyte's molar mass. Nothing here converts by a hand-written factor.

A missing unit, a unit that is not UCUM, or a unit of the wrong kind for the code (g/L for an enzyme) is a
`UnitError` naming what was expected: a value is never converted on a guess. The only spellings accepted
beside UCUM are listed in `_SPELLINGS` with the reason each is unambiguous.

The registry and the UCUM parser take about a second to build: they are built on first use, once per
process (nothing happens at import).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from alerts.labs import (
    ADJUSTED_CALCIUM,
    ALBUMIN,
    ALKALINE_PHOSPHATASE,
    CANONICAL_UNIT,
    CREATININE,
    CREATININE_MOLAR,
    IONISED_CALCIUM,
    TOTAL_CALCIUM,
    TOTAL_CALCIUM_MASS,
)

# Molar masses (g/mol) for mass ↔ amount of substance: calcium's standard atomic weight (IUPAC), creatinine
# C4H7N3O (the factor behind the familiar 1 mg/dL = 88.4 µmol/L).
CALCIUM_MOLAR_MASS: Final = 40.078
CREATININE_MOLAR_MASS: Final = 113.12

# Canonical values are rounded to this many decimal places: far below any lab's precision, so that a
# converted 2.6 stays 2.6 and not 2.6000000000000001 when a threshold is compared.
CANONICAL_DECIMALS: Final = 4


@dataclass(frozen=True)
class Analyte:
    """What the service knows of a LOINC code: its name, its canonical unit, and how to convert to it."""

    code: str
    display: str  # LOINC's long common name
    molar_mass: float | None  # g/mol, when mass and amount-of-substance units are both in use
    enzyme: bool = False  # enzymatic activity (U/L, µkat/L)
    examples: tuple[str, ...] = ()  # units a lab may send, for error messages

    @property
    def canonical_unit(self) -> str:
        return CANONICAL_UNIT[self.code]


ANALYTES: Final[dict[str, Analyte]] = {
    a.code: a
    for a in (
        Analyte(
            TOTAL_CALCIUM_MASS,
            "Calcium [Mass/volume] in Serum or Plasma",
            CALCIUM_MOLAR_MASS,
            examples=("mg/dL", "mmol/L"),
        ),
        Analyte(
            TOTAL_CALCIUM,
            "Calcium [Moles/volume] in Serum or Plasma",
            CALCIUM_MOLAR_MASS,
            examples=("mmol/L", "mg/dL"),
        ),
        Analyte(
            ADJUSTED_CALCIUM,
            "Calcium [Moles/volume] corrected for albumin in Serum or Plasma",
            CALCIUM_MOLAR_MASS,
            examples=("mmol/L", "mg/dL"),
        ),
        Analyte(
            IONISED_CALCIUM,
            "Calcium.ionized [Moles/volume] in Serum or Plasma",
            CALCIUM_MOLAR_MASS,
            examples=("mmol/L", "mg/dL"),
        ),
        Analyte(ALBUMIN, "Albumin [Mass/volume] in Serum or Plasma", None, examples=("g/L", "g/dL")),
        Analyte(
            ALKALINE_PHOSPHATASE,
            "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
            None,
            enzyme=True,
            examples=("U/L", "ukat/L"),
        ),
        Analyte(
            CREATININE,
            "Creatinine [Mass/volume] in Serum or Plasma",
            CREATININE_MOLAR_MASS,
            examples=("mg/dL", "umol/L"),
        ),
        Analyte(
            CREATININE_MOLAR,
            "Creatinine [Moles/volume] in Serum or Plasma",
            CREATININE_MOLAR_MASS,
            examples=("umol/L", "mg/dL"),
        ),
    )
}
assert set(ANALYTES) == set(CANONICAL_UNIT), "every code the rules know has its conversion here"

# Spellings labs send that are not UCUM, each unambiguous for the analytes that accept it:
# - "IU/L", "[IU]/L", "[iU]/L" for an enzyme: the international unit of enzyme activity *is* the enzyme
#   unit U (1 µmol/min, IUBMB 1961); UCUM's [IU] is an arbitrary unit and does not convert to U by itself.
_ENZYME_SPELLINGS: Final = {"iu/l": "U/L", "[iu]/l": "U/L"}
# - the micro sign (U+00B5) and the Greek mu (U+03BC) for UCUM's "u" (UCUM is ASCII: µmol/L is umol/L).
_MICRO = re.compile("[\u00b5\u03bc]")


class UnitError(ValueError):
    """A unit that cannot be used for this code: missing, not UCUM, or of the wrong kind."""


class UnknownCodeError(ValueError):
    """A LOINC code the service does not monitor."""


@dataclass(frozen=True)
class Measurement:
    value: float
    unit: str  # UCUM


def analyte(code: str) -> Analyte:
    found = ANALYTES.get(code)
    if found is None:
        known = ", ".join(f"{a.code} ({a.display})" for a in ANALYTES.values())
        raise UnknownCodeError(f"LOINC {code} is not a code this service monitors; it takes {known}")
    return found


_building = threading.Lock()


@cache
def _build() -> tuple[Any, Any, Any]:
    import pint
    import ucumvert
    from ucumvert import UcumToPintTransformer, get_ucum_parser

    # ucumvert's PintUcumRegistry would do the same, but it also loads UCUM's units into pint's
    # application-wide registry (a process-wide side effect, and a race when two threads build at once):
    # a registry of our own with ucumvert's definitions, and a transformer bound to it, touch nothing else.
    registry: Any = pint.UnitRegistry()
    registry.load_definitions(Path(ucumvert.__file__).parent / "pint_ucum_defs.txt")
    return registry, get_ucum_parser(), UcumToPintTransformer(ureg=registry)


def _ucum() -> tuple[Any, Any, Any]:
    """The pint registry with UCUM's units, the UCUM parser, and the transformer from one to the other
    (built once per process, on first use, by one thread)."""
    with _building:
        return _build()


def _parse(unit: str) -> Any:
    """A pint unit for a UCUM code, or UnitError."""
    from ucumvert import InvalidUcumError, parse_ucum
    from ucumvert.ucum_pint import UndefinedUnitError  # pint's, as ucumvert raises it

    _, parser, transformer = _ucum()
    try:
        quantity = transformer.transform(parse_ucum(unit, parser))
    except (InvalidUcumError, UndefinedUnitError) as exc:
        raise UnitError(f"{unit!r} is not a UCUM unit") from exc
    except (
        Exception
    ) as exc:  # lark wraps errors raised inside the transformer (an unknown atom) in VisitError
        raise UnitError(f"{unit!r} is not a UCUM unit") from exc
    if getattr(quantity, "magnitude", 1) != 1:
        raise UnitError(f"{unit!r} is a unit with a factor; send the value in a plain unit")
    return quantity.units


def normalise_unit(code: str, unit: str | None) -> str:
    """The unit as UCUM, or UnitError when it is missing. Accepted spellings beside UCUM: see above."""
    text = (unit or "").strip()
    if not text:
        raise UnitError(f"the unit is missing; send one of {', '.join(analyte(code).examples)} (UCUM)")
    text = _MICRO.sub("u", text)
    if analyte(code).enzyme:
        text = _ENZYME_SPELLINGS.get(text.lower(), text)
    return text


def to_canonical(code: str, value: float, unit: str | None) -> Measurement:
    """`value` in `unit` → the same quantity in the code's canonical unit (alerts.labs.CANONICAL_UNIT).

    Raises UnknownCodeError for a code not in ANALYTES, UnitError for a missing, unknown or unfitting unit.
    """
    found = analyte(code)
    if not math.isfinite(value):
        raise UnitError(f"{value!r} is not a number")
    text = normalise_unit(code, unit)
    if "eq" in text.lower():
        # UCUM's (and pint's) equivalent is a mole: for calcium (charge 2) 1 mEq/L is 0.5 mmol/L, not 1.
        raise UnitError(
            f"{unit!r}: equivalents depend on the ion's charge; send {' or '.join(found.examples)}"
        )
    registry, _, _ = _ucum()
    source = _parse(text)
    target = _parse(found.canonical_unit)
    quantity = registry.Quantity(value, source)
    # The unit must measure what the code measures: the canonical unit's kind (amount of substance per
    # volume, say), or, for an analyte with a molar mass, mass per volume. Checked before converting, so
    # that pint's chemistry context is only ever asked for the one conversion it is here for.
    wanted = registry.get_dimensionality(target)
    kinds = {wanted}
    if found.molar_mass is not None:
        kinds.add(registry.get_dimensionality(_parse("g/L")))
        kinds.add(registry.get_dimensionality(_parse("mol/L")))
    if registry.get_dimensionality(source) not in kinds:
        raise UnitError(
            f"{unit!r} is not a unit for {found.display}; send one of {', '.join(found.examples)}"
        )
    if registry.get_dimensionality(source) == wanted:
        converted = quantity.to(target)
    else:
        mw = registry.Quantity(found.molar_mass, "g/mol")
        converted = quantity.to(target, "chemistry", mw=mw)
    return Measurement(round(float(converted.magnitude), CANONICAL_DECIMALS), found.canonical_unit)


# ------------------------------------------------------------------------------- adjusted calcium
# Calcium adjusted for albumin, the formula in UK and US practice: adjusted (mmol/L) = total calcium (mmol/L)
# + 0.02 × (40 − albumin (g/L)); in conventional units + 0.8 mg/dL per g/dL of albumin below 4.0 g/dL.
# Source: Payne RB, Little AJ, Williams RB, Milner JR. Interpretation of serum calcium in patients with
# abnormal serum proteins. Br Med J 1973;4(5893):643–646, doi:10.1136/bmj.4.5893.643. Laboratories may
# derive their own local slope and intercept, which is why a laboratory's own adjusted calcium (LOINC
# 29265-6) is always preferred; this is used only when the lab sent total calcium and albumin alone.
ADJUSTED_CALCIUM_FORMULA: Final = "adjusted calcium = total calcium (mmol/L) + 0.02 × (40 − albumin (g/L))"
ADJUSTED_CALCIUM_SOURCE: Final = (
    "Payne RB et al. Interpretation of serum calcium in patients with abnormal serum proteins. "
    "Br Med J 1973;4:643-6 (doi:10.1136/bmj.4.5893.643)"
)
ADJUSTED_CALCIUM_DECIMALS: Final = 2  # as labs report it


def adjusted_calcium(total_calcium_mmol_l: float, albumin_g_l: float) -> float:
    """Calcium adjusted for albumin (mmol/L) from total calcium (mmol/L) and albumin (g/L), both canonical."""
    if not (math.isfinite(total_calcium_mmol_l) and math.isfinite(albumin_g_l)):
        raise ValueError("total calcium and albumin must be numbers")
    if total_calcium_mmol_l < 0 or albumin_g_l < 0:
        raise ValueError("total calcium and albumin cannot be negative")
    return round(total_calcium_mmol_l + 0.02 * (40.0 - albumin_g_l), ADJUSTED_CALCIUM_DECIMALS)
