"""The service errors the API maps by class, never by text (issue 13), and the Idempotency-Key fingerprint."""

from __future__ import annotations

from pro_service.services import errors, idempotency, staff, tokens
from pro_service.services.patients import EnrolmentError, FieldProblem


def test_a_staff_error_keeps_its_older_form_and_is_an_invalid_value() -> None:
    older = staff.StaffError("role: choose nurse or admin")
    assert isinstance(older, errors.Invalid)
    assert (older.field, older.message) == ("role", "choose nurse or admin")
    assert str(older) == "role: choose nurse or admin"  # what the CLI and the password page print
    exists = staff.AccountExists("a@b.org")
    assert isinstance(exists, errors.Conflict) and not isinstance(exists, errors.Invalid)
    assert (exists.field, exists.message) == ("email", "a@b.org already has an account")
    assert str(exists) == "email: a@b.org already has an account"  # what the CLI prints


def test_a_token_error_is_an_invalid_value_printed_as_its_message() -> None:
    refused = tokens.TokenError("scopes", "unknown scope 'labs'")
    assert isinstance(refused, errors.Invalid) and refused.field == "scopes"
    assert str(refused) == "unknown scope 'labs'"


def test_a_field_problem_becomes_the_error_of_its_kind() -> None:
    clash = FieldProblem("mrn", "is already enrolled (DEMO-001)", conflict=True).error()
    assert isinstance(clash, errors.Conflict) and not isinstance(clash, errors.Invalid)
    assert (clash.message, clash.field) == ("MRN is already enrolled (DEMO-001)", "mrn")
    bad = FieldProblem("timezone", "unknown time zone").error()
    assert isinstance(bad, EnrolmentError) and (bad.field, bad.message) == ("timezone", "unknown time zone")


def test_the_idempotency_fingerprint_covers_method_path_and_body() -> None:
    first = idempotency.fingerprint("POST", "/api/v1/patients", b'{"mrn": "A"}')
    assert first == idempotency.fingerprint("POST", "/api/v1/patients", b'{"mrn": "A"}')
    assert first != idempotency.fingerprint("POST", "/api/v1/patients", b'{"mrn": "B"}')
    assert first != idempotency.fingerprint("PATCH", "/api/v1/patients", b'{"mrn": "A"}')
    assert first != idempotency.fingerprint("POST", "/api/v1/care-teams", b'{"mrn": "A"}')
    assert idempotency.KeyReused().message == "this Idempotency-Key was used for a different request"
