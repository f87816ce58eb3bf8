"""Lab units (pro_service.lab_units): UCUM units to each code's canonical unit through ucumvert and pint, the
errors that stop a guess, and adjusted calcium (Payne 1973)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.labs import CANONICAL_UNIT
from pro_service import lab_units
from pro_service.lab_units import UnitError, UnknownCodeError, adjusted_calcium, to_canonical

CALCIUM_MASS, CALCIUM, ADJUSTED, IONISED = "17861-6", "2000-8", "29265-6", "1995-0"
ALBUMIN, ALP, CREATININE, CREATININE_MOLAR = "1751-7", "6768-6", "2160-0", "14682-9"


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        # calcium: 1 mmol/L = 4.0078 mg/dL (molar mass 40.078 g/mol)
        (CALCIUM_MASS, 10.4, "mg/dL", 2.5949),
        (CALCIUM_MASS, 12.0, "mg/dL", 2.9942),
        (CALCIUM_MASS, 8.0156, "mg/dL", 2.0),
        (CALCIUM_MASS, 2.6, "mmol/L", 2.6),  # a mass code sent in mmol/L: the unit says what it is
        (CALCIUM, 2.6, "mmol/L", 2.6),
        (CALCIUM, 2.6, "mmol/l", 2.6),  # UCUM's liter is l or L
        (CALCIUM, 10.4, "mg/dl", 2.5949),
        (CALCIUM, 2600, "umol/L", 2.6),
        (CALCIUM, 2600, "µmol/L", 2.6),  # the micro sign for UCUM's u
        (CALCIUM, 104, "mg/L", 2.5949),
        (ADJUSTED, 2.48, "mmol/L", 2.48),
        (IONISED, 1.32, "mmol/L", 1.32),
        (IONISED, 5.3, "mg/dL", 1.3224),
        # albumin: g/dL ↔ g/L
        (ALBUMIN, 3.5, "g/dL", 35.0),
        (ALBUMIN, 41, "g/L", 41.0),
        (ALBUMIN, 4100, "mg/dL", 41.0),
        # alkaline phosphatase: U/L, µkat/L (1 µkat = 60 U), and the lab spelling IU/L
        (ALP, 120, "U/L", 120.0),
        (ALP, 2, "ukat/L", 120.0),
        (ALP, 2, "µkat/L", 120.0),
        (ALP, 0.5, "U/mL", 500.0),
        (ALP, 212, "IU/L", 212.0),
        (ALP, 212, "[IU]/L", 212.0),
        # creatinine: 1 mg/dL = 88.4 µmol/L (molar mass 113.12 g/mol)
        (CREATININE, 1.0, "mg/dL", 88.4017),
        (CREATININE, 1.2, "mg/dL", 106.082),
        (CREATININE, 88, "umol/L", 88.0),
        (CREATININE_MOLAR, 106, "umol/L", 106.0),
        (CREATININE_MOLAR, 0.106, "mmol/L", 106.0),
    ],
)
def test_converts_to_the_canonical_unit(code: str, value: float, unit: str, expected: float) -> None:
    converted = to_canonical(code, value, unit)
    assert converted.value == pytest.approx(expected, abs=1e-4)
    assert converted.unit == CANONICAL_UNIT[code]


@pytest.mark.parametrize(
    ("code", "unit", "words"),
    [
        (CALCIUM_MASS, None, "missing"),
        (CALCIUM_MASS, "", "missing"),
        (CALCIUM_MASS, "   ", "missing"),
        (CALCIUM_MASS, "foo", "not a UCUM unit"),
        (CALCIUM_MASS, "mg/dL/", "not a UCUM unit"),
        (CALCIUM_MASS, "mmol", "not a unit for Calcium"),  # an amount, not a concentration
        (CALCIUM_MASS, "g", "not a unit for Calcium"),
        (CALCIUM_MASS, "%", "not a unit for Calcium"),
        (CALCIUM_MASS, "U/L", "not a unit for Calcium"),
        (CALCIUM_MASS, "mEq/L", "equivalents"),  # 1 mEq/L of calcium is 0.5 mmol/L: never 1
        (CALCIUM, "meq/L", "equivalents"),
        (CALCIUM, "10*3/uL", "not a unit for Calcium"),
        (ALBUMIN, "mmol/L", "not a unit for Albumin"),  # no molar mass for albumin: never guessed
        (ALBUMIN, "IU/L", "not a UCUM unit"),  # IU/L is accepted for an enzyme only
        (ALP, "mg/dL", "not a unit for Alkaline phosphatase"),
        (ALP, "[iU]/mL", "not a unit for Alkaline phosphatase"),
        (CREATININE, "g", "not a unit for Creatinine"),
    ],
)
def test_a_missing_unknown_or_unfitting_unit_is_an_error_never_a_guess(
    code: str, unit: str | None, words: str
) -> None:
    with pytest.raises(UnitError, match=words):
        to_canonical(code, 1.0, unit)


def test_the_error_names_units_to_send() -> None:
    with pytest.raises(UnitError, match=r"mg/dL, mmol/L"):
        to_canonical(CALCIUM_MASS, 10.4, None)


@pytest.mark.parametrize("code", ["2951-2", "", "17861", "1751-7 "])
def test_an_unknown_code_is_an_error(code: str) -> None:
    with pytest.raises(UnknownCodeError, match="not a code this service monitors"):
        to_canonical(code, 1.0, "mmol/L")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_value_that_is_not_a_number_is_an_error(value: float) -> None:
    with pytest.raises(UnitError):
        to_canonical(CALCIUM, value, "mmol/L")


def test_every_code_the_rules_know_can_be_converted() -> None:
    assert set(lab_units.ANALYTES) == set(CANONICAL_UNIT)
    for code, analyte in lab_units.ANALYTES.items():
        for unit in analyte.examples:
            assert to_canonical(code, 1.0, unit).unit == CANONICAL_UNIT[code]


@given(st.floats(min_value=0.1, max_value=30.0, allow_nan=False))
def test_mg_dl_and_mmol_l_agree_through_the_molar_mass(mg_dl: float) -> None:
    mmol_l = to_canonical(CALCIUM_MASS, mg_dl, "mg/dL").value
    assert mmol_l == pytest.approx(mg_dl * 10 / lab_units.CALCIUM_MOLAR_MASS, abs=1e-4)
    assert to_canonical(CALCIUM, mmol_l, "mmol/L").value == mmol_l


# ------------------------------------------------------------------------------------- adjusted calcium
@pytest.mark.parametrize(
    ("total", "albumin", "adjusted"),
    [
        (2.40, 40, 2.40),  # albumin 40 g/L: no adjustment
        (2.40, 30, 2.60),  # + 0.02 × 10
        (2.20, 25, 2.50),
        (2.7946, 31, 2.97),
        (2.50, 45, 2.40),  # high albumin adjusts down
        (3.10, 20, 3.50),
    ],
)
def test_adjusted_calcium_is_total_plus_0_02_per_g_l_of_albumin_below_40(
    total: float, albumin: float, adjusted: float
) -> None:
    assert adjusted_calcium(total, albumin) == pytest.approx(adjusted, abs=1e-9)


def test_adjusted_calcium_in_conventional_units_matches_the_0_8_mg_dl_form() -> None:
    """The SI formula is the familiar + 0.8 mg/dL per g/dL of albumin below 4.0 g/dL."""
    total_mg_dl, albumin_g_dl = 9.0, 2.5
    conventional = total_mg_dl + 0.8 * (4.0 - albumin_g_dl)  # 10.2 mg/dL
    total = to_canonical(CALCIUM_MASS, total_mg_dl, "mg/dL").value
    albumin = to_canonical(ALBUMIN, albumin_g_dl, "g/dL").value
    assert adjusted_calcium(total, albumin) == pytest.approx(conventional * 10 / 40.078, abs=0.01)


@pytest.mark.parametrize(("total", "albumin"), [(-1.0, 40.0), (2.4, -1.0), (float("nan"), 40.0)])
def test_adjusted_calcium_refuses_impossible_inputs(total: float, albumin: float) -> None:
    with pytest.raises(ValueError, match="calcium"):
        adjusted_calcium(total, albumin)


def test_the_formula_names_its_source() -> None:
    assert "0.02" in lab_units.ADJUSTED_CALCIUM_FORMULA
    assert (
        "Payne" in lab_units.ADJUSTED_CALCIUM_SOURCE and "bmj.4.5893.643" in lab_units.ADJUSTED_CALCIUM_SOURCE
    )
