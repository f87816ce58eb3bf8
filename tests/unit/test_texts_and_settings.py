"""Numbers are settings: the emergency number, the crisis line and the 24-hour oncology line come from
Settings, are validated at start-up, and are bound into every patient text by the runtime; the texts file
names no number itself and may use no placeholder the code does not know."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.ruleset import RulesetError
from config.settings import Settings, SettingsError, load_settings
from pro_service.runtime import Role, build_runtime
from pro_service.sms.encoding import is_gsm7, septets
from pro_service.texts import KNOWN_PLACEHOLDERS, REQUIRED, Texts, TextsError, load_texts

ROOT = Path(__file__).resolve().parents[2]
TEXTS_FILE = ROOT / "config" / "texts.yaml"
LANGUAGES = ("en", "es")
SECRET = "unit-secret-key-" + "x" * 16
CLINIC = "+1 555 010 0199"
# What the callers pass to `get` (the care team's phone, a reprompt's range).
CALLER_VALUES: dict[str, Any] = {"clinic_phone": CLINIC, "minimum": 0, "maximum": 10}
# Texts that must tell the patient what to do in an emergency.
NAMES_EMERGENCY = (
    "closing",
    "acknowledgement",
    "help",
    "callback",
    "safety",
    "crisis",
    "callback_out_of_hours",
    "acknowledgement_out_of_hours",
)
ONE_SMS = ("crisis", "callback_out_of_hours", "acknowledgement_out_of_hours", "callback")
TWILIO = {
    "SMS_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "TWILIO_FROM_NUMBER": "+15550100000",
}


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings also read os.environ: the tests must see only what they pass."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    return load_settings(SECRET_KEY=SECRET, DATABASE_URL=f"sqlite:///{tmp_path / 'pro.sqlite3'}", **overrides)


def runtime_texts(settings: Settings) -> Texts:
    """The texts exactly as the runtime binds them (build_runtime opens no connection)."""
    rt = build_runtime(settings, Role.CLI)
    try:
        return rt.texts
    finally:
        rt.dispose()


def raw_texts() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    return data


def write_texts(tmp_path: Path, language: str, key: str, text: str) -> Path:
    data = raw_texts()
    data[language][key] = text
    path = tmp_path / "texts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


BOUND = {"emergency_number": "911", "crisis_line": "988", "oncology_24h_phone": CLINIC}


# --- settings ---------------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.EMERGENCY_NUMBER == "911"
    assert settings.CRISIS_LINE == "988"
    assert settings.ONCOLOGY_24H_PHONE is None
    assert settings.CLINIC_PHONE == "the clinic"  # the outbox demo may run without a real number
    assert settings.SMS_BACKEND == "outbox"


@pytest.mark.parametrize("number", ["911", "999", "112", "000", "15", "123456", " 112 "])
def test_emergency_numbers_accepted(tmp_path: Path, number: str) -> None:
    settings = make_settings(tmp_path, EMERGENCY_NUMBER=number)
    assert number.strip() == settings.EMERGENCY_NUMBER


@pytest.mark.parametrize("number", ["nine", "1", "", "1234567", "9 1 1", "+911", "91l"])
def test_bad_emergency_number_names_the_variable(tmp_path: Path, number: str) -> None:
    with pytest.raises(SettingsError, match="EMERGENCY_NUMBER"):
        make_settings(tmp_path, EMERGENCY_NUMBER=number)


@pytest.mark.parametrize("line", ["988", "116 123", "+44 800-689-5652", "741741", "08457 90 90 90"])
def test_crisis_lines_accepted(tmp_path: Path, line: str) -> None:
    settings = make_settings(tmp_path, CRISIS_LINE=line)
    assert line == settings.CRISIS_LINE


@pytest.mark.parametrize("line", ["", "Samaritans", "1", "988 (24h)", "1" * 21, "++"])
def test_bad_crisis_line_names_the_variable(tmp_path: Path, line: str) -> None:
    with pytest.raises(SettingsError, match="CRISIS_LINE"):
        make_settings(tmp_path, CRISIS_LINE=line)


def test_oncology_line_is_optional_and_validated(tmp_path: Path) -> None:
    assert make_settings(tmp_path, ONCOLOGY_24H_PHONE="").ONCOLOGY_24H_PHONE is None  # compose's ${X:-}
    assert make_settings(tmp_path, ONCOLOGY_24H_PHONE="+44 20 7188 7188").ONCOLOGY_24H_PHONE == (
        "+44 20 7188 7188"
    )
    with pytest.raises(SettingsError, match="ONCOLOGY_24H_PHONE"):
        make_settings(tmp_path, ONCOLOGY_24H_PHONE="the ward")


@pytest.mark.parametrize("clinic_phone", [None, "the clinic", "", "ext 12"])
def test_twilio_requires_a_clinic_phone(tmp_path: Path, clinic_phone: str | None) -> None:
    overrides = dict(TWILIO)
    if clinic_phone is not None:
        overrides["CLINIC_PHONE"] = clinic_phone
    with pytest.raises(SettingsError, match="CLINIC_PHONE"):
        make_settings(tmp_path, **overrides)


def test_twilio_with_a_clinic_phone_starts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **TWILIO, CLINIC_PHONE="+1 555 0100")
    assert settings.CLINIC_PHONE == "+1 555 0100"


# --- the shipped texts ------------------------------------------------------------------------------------


def test_texts_name_no_number_and_no_abbreviation() -> None:
    for language, table in raw_texts().items():
        for key, text in table.items():
            assert "911" not in text, (language, key)
            assert not re.search(r"\bER\b", text), (language, key)
            # Numbers come from settings: no phone number or short code written into a text.
            words = re.sub(r"\{\w+\}|\b24 (hours|horas)\b", "", text)
            assert not re.search(r"\d{2,}", words), (language, key)


def test_texts_that_must_name_the_emergency_number_do() -> None:
    table = raw_texts()
    for language in LANGUAGES:
        for key in NAMES_EMERGENCY:
            assert "{emergency_number}" in table[language][key], (language, key)
        assert "{crisis_line}" in table[language]["crisis"], language
        for key in ("callback_out_of_hours", "acknowledgement_out_of_hours"):
            assert "{oncology_24h_phone}" in table[language][key], (language, key)
        assert "{clinic_phone}" in table[language]["safety"], language


def test_out_of_hours_callback_promises_no_call_back() -> None:
    table = raw_texts()
    assert "call you back" not in table["en"]["callback_out_of_hours"].lower()
    assert "le llamara" not in table["es"]["callback_out_of_hours"].lower()
    assert "on-call team" in table["en"]["callback_out_of_hours"]


def test_safety_sends_red_flags_to_the_emergency_department() -> None:
    table = raw_texts()
    safety = table["en"]["safety"]
    for words in ("weakness", "numbness", "bladder", "bowel", "cannot move", "emergency department"):
        assert words in safety
    assert "urgencias" in table["es"]["safety"]


def test_every_required_text_renders_with_the_runtime_defaults(tmp_path: Path) -> None:
    texts = runtime_texts(make_settings(tmp_path))
    for language in LANGUAGES:
        for key in REQUIRED:
            text = texts.get(key, language, **CALLER_VALUES)
            assert text.strip(), (language, key)
            assert "{" not in text and "}" not in text, (language, key)
            # Spanish keeps to GSM-7 (no á, í, ó, ú): one character never turns a text into UCS-2.
            assert is_gsm7(text), (language, key, text)


def test_the_configured_numbers_reach_every_text(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, EMERGENCY_NUMBER="999", CRISIS_LINE="116 123", ONCOLOGY_24H_PHONE="+44 20 7188 7188"
    )
    texts = runtime_texts(settings)
    for language in LANGUAGES:
        rendered = {key: texts.get(key, language, **CALLER_VALUES) for key in REQUIRED}
        for key, text in rendered.items():
            assert "911" not in text, (language, key)
        for key in NAMES_EMERGENCY:
            assert "999" in rendered[key], (language, key)
        assert "116 123" in rendered["crisis"], language
        for key in ("callback_out_of_hours", "acknowledgement_out_of_hours"):
            assert "+44 20 7188 7188" in rendered[key], (language, key)


def test_without_a_24h_line_out_of_hours_texts_name_the_clinic_phone(tmp_path: Path) -> None:
    texts = runtime_texts(make_settings(tmp_path, **TWILIO, CLINIC_PHONE=CLINIC))
    for language in LANGUAGES:
        for key in ("callback_out_of_hours", "acknowledgement_out_of_hours"):
            assert CLINIC in texts.get(key, language), (language, key)


def test_a_value_passed_to_get_wins(tmp_path: Path) -> None:
    texts = runtime_texts(make_settings(tmp_path, EMERGENCY_NUMBER="112"))
    assert "112" in texts.get("callback", "en")
    assert "000" in texts.get("callback", "en", emergency_number="000")
    assert "112" in texts.get("callback", "en")  # the bound value is unchanged
    assert texts.get("callback", "fr") == texts.get("callback", "en")  # an unknown language reads English


@pytest.mark.parametrize("key", ONE_SMS)
def test_english_texts_fit_one_sms(key: str) -> None:
    texts = load_texts(TEXTS_FILE, **BOUND)
    text = texts.get(key, "en", **CALLER_VALUES)
    assert is_gsm7(text)
    assert septets(text) <= 160, (key, septets(text), text)


# --- the loader -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["{emergency_numbr}", "{phone}", "{}", "{0}", "{clinic_phone.x}"])
def test_an_unknown_placeholder_stops_loading(tmp_path: Path, placeholder: str) -> None:
    path = write_texts(tmp_path, "es", "crisis", f"Llame al {placeholder}.")
    with pytest.raises(TextsError, match=re.escape(placeholder)) as raised:
        load_texts(path, **BOUND)
    assert "language es" in str(raised.value)
    assert "crisis" in str(raised.value)


def test_a_malformed_brace_stops_loading(tmp_path: Path) -> None:
    path = write_texts(tmp_path, "en", "help", "Call {clinic_phone now.")
    with pytest.raises(TextsError, match="language en, text help"):
        load_texts(path, **BOUND)


def test_a_formatted_placeholder_stops_loading(tmp_path: Path) -> None:
    path = write_texts(tmp_path, "en", "help", "Call {clinic_phone!r}.")
    with pytest.raises(TextsError, match="clinic_phone"):
        load_texts(path, **BOUND)


def test_every_known_placeholder_loads(tmp_path: Path) -> None:
    text = " ".join(f"{{{name}}}" for name in sorted(KNOWN_PLACEHOLDERS))
    load_texts(write_texts(tmp_path, "en", "help", text), **BOUND)


def test_a_number_used_but_not_bound_stops_loading() -> None:
    with pytest.raises(TextsError, match="emergency_number"):
        load_texts(TEXTS_FILE)


def test_binding_an_unknown_name_stops_loading() -> None:
    with pytest.raises(TextsError, match="ambulance"):
        load_texts(TEXTS_FILE, **BOUND, ambulance="999")


def test_a_missing_new_key_stops_loading(tmp_path: Path) -> None:
    data = raw_texts()
    del data["es"]["acknowledgement_out_of_hours"]
    path = tmp_path / "texts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TextsError, match="language es lacks acknowledgement_out_of_hours"):
        load_texts(path, **BOUND)


def test_enrolment_ruleset_version_must_be_installed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"ENROL_RULESET_VERSION=9: .*installed: 1, 2, 3"):
        build_runtime(make_settings(tmp_path, ENROL_RULESET_VERSION="9"), Role.CLI)
    with pytest.raises(SettingsError, match="ENROL_RULESET_VERSION"):
        make_settings(tmp_path, ENROL_RULESET_VERSION="0")
    rt = build_runtime(make_settings(tmp_path, ENROL_RULESET_VERSION="2"), Role.CLI)
    try:
        assert rt.enrolment_ruleset.version == 2 and rt.ruleset.version == 3
        assert rt.ruleset_for(None).version == 2  # an unpinned patient follows the enrolment default
        assert rt.ruleset_for(1).version == 1 and rt.ruleset_for(42).version == 3  # not installed: newest
        v1, v2 = rt.instrument_for(2, "sre-weekly"), rt.instrument_for(3, "sre-weekly")
        assert v1 is not None and v2 is not None and (v1.version, v2.version) == (1, 2)
        # A patient moved to v3 mid-check-in: the open v1 check-in is scored by the newest v1 ruleset.
        assert rt.ruleset_for_check_in(3, "sre-weekly", 1).version == 2
        assert rt.ruleset_for_check_in(3, "sre-weekly", 2).version == 3
    finally:
        rt.dispose()


def test_every_installed_questionnaire_version_needs_its_ruleset(tmp_path: Path) -> None:
    import shutil

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    (config / "rules" / "sre-v3.yaml").unlink()  # questionnaire v2 is still installed
    with pytest.raises(RulesetError, match="no ruleset is written for questionnaire sre-weekly version 2"):
        build_runtime(make_settings(tmp_path, CONFIG_DIR=str(config)), Role.CLI)
