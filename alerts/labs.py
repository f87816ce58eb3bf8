"""Lab results as the clinical rules see them (pure): codes, canonical units and one result's view.

Results arrive from the hospital's systems (FHIR Observation, HL7 v2 ORU^R01) in the lab's own units; the
service converts each to the canonical unit below before the rules read it (pro_service/services/labs.py),
so a threshold in the ruleset is always in one unit. A withdrawn result (entered in error) has no value:
like an unknown answer, it can never make a rule fire, and it never counts as normal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

# LOINC codes the service understands, and the unit each is compared in.
TOTAL_CALCIUM_MASS: Final = "17861-6"  # Calcium [Mass/volume] in Serum or Plasma (mg/dL in the US)
TOTAL_CALCIUM: Final = "2000-8"  # Calcium [Moles/volume] in Serum or Plasma (mmol/L)
ADJUSTED_CALCIUM: Final = "29265-6"  # Calcium corrected for albumin [Moles/volume] in Serum or Plasma
IONISED_CALCIUM: Final = "1995-0"  # Calcium.ionized [Moles/volume] in Serum or Plasma
ALBUMIN: Final = "1751-7"  # Albumin [Mass/volume] in Serum or Plasma
ALKALINE_PHOSPHATASE: Final = "6768-6"  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
CREATININE: Final = "2160-0"  # Creatinine [Mass/volume] in Serum or Plasma
CREATININE_MOLAR: Final = "14682-9"  # Creatinine [Moles/volume] in Serum or Plasma (umol/L)

CANONICAL_UNIT: Final[dict[str, str]] = {
    TOTAL_CALCIUM_MASS: "mmol/L",
    TOTAL_CALCIUM: "mmol/L",
    ADJUSTED_CALCIUM: "mmol/L",
    IONISED_CALCIUM: "mmol/L",
    ALBUMIN: "g/L",
    ALKALINE_PHOSPHATASE: "U/L",
    CREATININE: "umol/L",
    CREATININE_MOLAR: "umol/L",
}
CALCIUM_CODES: Final = frozenset({TOTAL_CALCIUM_MASS, TOTAL_CALCIUM, ADJUSTED_CALCIUM, IONISED_CALCIUM})


@dataclass(frozen=True)
class LabView:
    """One result, already in its code's canonical unit. `value` is None when withdrawn or unusable."""

    code: str  # LOINC
    value: float | None
    unit: str  # CANONICAL_UNIT[code]
    taken_at: datetime  # when the sample was taken (effective time), timezone-aware
    status: str  # final | amended | corrected | preliminary | entered-in-error
    reference_range: str | None = None  # as the lab reported it, for the evidence
    derived: bool = False  # computed by the service (adjusted calcium from total calcium and albumin)
    result_id: int | None = None  # the stored result, for the alert's evidence

    @property
    def withdrawn(self) -> bool:
        return self.status == "entered-in-error" or self.value is None


# What a nurse and a ruleset author read beside the code (evidence, loader errors).
LAB_NAMES: Final[dict[str, str]] = {
    TOTAL_CALCIUM_MASS: "calcium (total, mass)",
    TOTAL_CALCIUM: "calcium (total)",
    ADJUSTED_CALCIUM: "adjusted calcium",
    IONISED_CALCIUM: "ionised calcium",
    ALBUMIN: "albumin",
    ALKALINE_PHOSPHATASE: "alkaline phosphatase",
    CREATININE: "creatinine",
    CREATININE_MOLAR: "creatinine",
}
