"""A bounded fuzz run over the staff web pages and FHIR (issue 15; the REST API has its own, schemathesis in
test_api_contract.py): generated requests never give a server error, and every answer carries the security
headers. The app runs with `testing` on, so an exception in a view fails the test rather than becoming a 500.

- Staff pages, signed in as an administrator (every page is open to them): a GET of every page with odd path
  ids and odd query parameters, and a POST of every form with odd fields and values, a valid CSRF token
  included (so the form is handled, not refused at the door).
- FHIR, with a token of every scope: reads and searches with odd ids and parameters, `_search` posts, and
  Observation / transaction bodies from valid-looking to nonsense, in any content type.

About 1,000 requests in all, 20-30 s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from pro_service.models import StaffRole
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )


SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# Never fuzzed: signing out (the run needs its session), the Twilio stand-in's and static paths, and the
# scrape (its own tests). Endpoints that take a staff member or a session act on the nurse, never on the
# signed-in administrator (resetting their password or ending their session would end the run).
SKIPPED = {"auth.logout", "static", "metrics", "fhir.unsupported"}
ODD_TEXT = [
    "", " ", "0", "-1", "1", "00", "+1", "1.5", "1e9", "²", "٣", "１", "2147483648", "9" * 30, "-" * 3,
    "\x00", "a\x00b", "%00", "\u202e", "\ufeff", "null", "true", "[]", "{}", "<script>alert(1)</script>",
    "' OR 1=1 --", "../../etc/passwd", "//evil.example", "javascript:alert(1)", "2026-02-30", "2026-13-01",
    "24:61", "T", "ge2026-01-01", "lt", "eq-1", "Patient/1", "Patient/²", "urn:uuid:x", "x" * 3000,
    "nurse", "admin", "integration", "open", "acknowledged", "resolved", "urgent", "routine", "same_day",
    "America/New_York", "Mars/Olympus", "en", "es", "zz", "+15551230001", "on", "off", "yes", "mine",
]  # fmt: skip
odd = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
PAGE_PARAMS = [
    "patient", "q", "sort", "status", "team", "urgency", "owner", "before", "next", "idle", "privacy", "v",
    "action", "actor", "staff", "mrn", "from", "to", "days", "page", "limit", "offset", "name", "date",
]  # fmt: skip
FORM_FIELDS = [
    "email", "name", "role", "phone", "password", "password_confirm", "current_password", "active", "code",
    "note", "outcome", "rag", "reason", "staff", "staff_id", "level", "starts_at", "ends_at", "start_date",
    "end_date", "time", "days", "instrument", "version", "rrule", "mrn", "given_name", "family_name",
    "timezone", "language", "care_team_id", "sms_consent", "confirm", "status", "body", "candidate",
    "scopes", "client", "clear_phone_problem", "acute_oncology_phone", "alert", "next", "action", "baseline",
]  # fmt: skip
FHIR_PARAMS = [
    "_id", "_count", "_offset", "_format", "_pretty", "_summary", "_sort", "patient", "subject",
    "identifier", "status", "date", "authored", "code", "category", "questionnaire", "name", "url",
    "version", "family", "given",
]  # fmt: skip


def _pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Name-value pairs; a name may come twice, and some names are made up."""
    return st.lists(st.tuples(st.sampled_from(names) | st.text(min_size=1, max_size=12), odd), max_size=5)


@dataclass
class Site:
    client: Any
    csrf: str
    ids: dict[str, list[str]]  # path argument → the values to try besides odd ones
    token: str


def _check(response: Any, what: str) -> None:
    assert response.status_code < 500, (
        f"{what}: {response.status_code}\n{response.get_data(as_text=True)[:800]}"
    )
    for name, part in SECURITY_HEADERS.items():
        assert part in response.headers.get(name, ""), f"{what}: {name} missing"


def _path(rule: Any, values: dict[str, str]) -> str:
    """The rule's path with each argument replaced by a value as given (odd ones included), not encoded
    by the router's converters: a non-digit in an <int:> segment must still be a 4xx."""
    path = rule.rule
    for part in path.split("<")[1:]:
        spec = part.split(">")[0]
        name = spec.split(":")[-1]
        path = path.replace(f"<{spec}>", values[name].replace("/", "%2F").replace("?", "%3F") or "x")
    return path


def _rules(app: Any, prefix: str | None, method: str) -> list[Any]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED or method not in (rule.methods or set()):
            continue
        if prefix is None and rule.endpoint.split(".")[0] in ("api", "twilio", "health", "fhir", "hl7"):
            continue
        if prefix is not None and not rule.endpoint.startswith(prefix):
            continue
        found.append(rule)
    return sorted(found, key=lambda r: r.rule)


def _argument(site: Site, name: str) -> st.SearchStrategy[str]:
    real = site.ids.get(name, [])
    return st.sampled_from(real) | odd if real else odd


@pytest.fixture
def site(app: Any, client: Any, rt: Any, admin_token: str) -> Any:
    app.extensions["pro_login_limiter"].clear()
    team = make_team(rt)
    patient = make_patient(rt, team)
    alert = insert_alert(rt, patient)
    make_staff(rt, email="admin@example.org", role=StaffRole.ADMIN, name="Admin Ada")
    nurse = make_staff(rt, email="kim@example.org", team_id=team)
    login(client, "admin@example.org")
    ids = {
        "patient_id": [str(patient)],
        "alert_id": [str(alert)],
        "team_id": [str(team)],
        "staff_id": [str(nurse)],  # never the administrator's own id (see SKIPPED)
        "schedule_id": ["1"],
        "shift_id": ["1"],
        "session_id": ["2147483647"],
        "ref": ["ABC123"],
        "ident": [str(patient), str(alert)],
    }
    yield Site(client, csrf_token(client, "/"), ids, admin_token)
    app.extensions["pro_login_limiter"].clear()  # the fuzzed sign-ins count against 127.0.0.1


def _signed_in(site: Site) -> None:
    """The run stays signed in as the administrator (a fuzzed form must not have ended the session)."""
    response = site.client.get("/account/sessions")
    assert response.status_code == 200, f"the run lost its session: {response.status_code}"


def test_staff_pages_never_fail_on_odd_query_parameters(app: Any, site: Site) -> None:
    rules = _rules(app, None, "GET")
    assert len(rules) >= 25, [r.rule for r in rules]

    @fuzz(350)
    @given(data=st.data())
    def run(data: Any) -> None:
        rule = data.draw(st.sampled_from(rules))
        values = {name: data.draw(_argument(site, name)) for name in rule.arguments}
        query = urlencode(data.draw(_pairs(PAGE_PARAMS)))
        url = _path(rule, values) + ("?" + query if query else "")
        _check(site.client.get(url), f"GET {url}")

    run()
    _signed_in(site)


def test_staff_forms_never_fail_on_odd_values(app: Any, site: Site) -> None:
    rules = _rules(app, None, "POST")
    assert len(rules) >= 30, [r.rule for r in rules]

    @fuzz(350)
    @given(data=st.data())
    def run(data: Any) -> None:
        rule = data.draw(st.sampled_from(rules))
        values = {name: data.draw(_argument(site, name)) for name in rule.arguments}
        url = _path(rule, values)
        form = [("csrf_token", site.csrf), *data.draw(_pairs(FORM_FIELDS))]
        response = site.client.post(url, data=MultiDict(form))
        _check(response, f"POST {url} {form[1:]}")
        assert response.status_code != 400 or "This form has expired" not in response.get_data(as_text=True)

    run()
    _signed_in(site)


def test_fhir_reads_and_searches_never_fail(app: Any, site: Site) -> None:
    reads = _rules(app, "fhir.", "GET")
    searches = _rules(app, "fhir.search_", "POST")
    assert len(reads) >= 10 and len(searches) >= 5
    auth = {"Authorization": f"Bearer {site.token}"}

    @fuzz(250)
    @given(data=st.data())
    def run(data: Any) -> None:
        params = data.draw(_pairs(FHIR_PARAMS))
        if data.draw(st.booleans()):
            rule = data.draw(st.sampled_from(reads))
            values = {name: data.draw(_argument(site, name)) for name in rule.arguments}
            query = urlencode(params)
            url = _path(rule, values) + ("?" + query if query else "")
            _check(site.client.get(url, headers=auth), f"GET {url}")
        else:
            rule = data.draw(st.sampled_from(searches))
            response = site.client.post(rule.rule, data=MultiDict(params), headers=auth)
            _check(response, f"POST {rule.rule} {params}")

    run()


OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "17861-6"}]},
    "subject": {"identifier": {"value": "MRN001"}},
    "effectiveDateTime": "2026-01-01T10:00:00Z",
    "valueQuantity": {"value": 2.4, "unit": "mmol/L"},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | odd,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def observation_like(draw: Any) -> Any:
    """A lab result with some of its fields replaced, removed or nested oddly; sometimes in a Bundle."""
    body: dict[str, Any] = json.loads(json.dumps(OBSERVATION))
    for key in draw(st.lists(st.sampled_from([*OBSERVATION, "id", "valueString", "meta"]), max_size=3)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    if draw(st.booleans()):
        entries = [{"resource": body, "request": {"method": "POST", "url": draw(odd)}}]
        return {
            "resourceType": "Bundle",
            "type": draw(st.sampled_from(["transaction", "batch", "x"])),
            "entry": entries,
        }
    return body


def test_fhir_writes_never_fail(app: Any, site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.token}"}

    @fuzz(150)
    @given(
        path=st.sampled_from(["/fhir/Observation", "/fhir", "/fhir/"]),
        body=observation_like() | json_values,
        kind=st.sampled_from(["application/fhir+json", "application/json", "text/plain", "application/xml"]),
        garble=st.booleans(),
    )
    def run(path: str, body: Any, kind: str, garble: bool) -> None:
        raw = json.dumps(body, allow_nan=True).encode()
        if garble:
            raw = raw[: len(raw) // 2] + b"\xff\x00"
        response = site.client.post(path, data=raw, headers={**auth, "Content-Type": kind})
        _check(response, f"POST {path} {raw[:300]!r}")

    run()


def test_nul_in_a_path_value_is_refused_not_a_database_error(site: Site) -> None:
    """Found by the run above: /a/<ref> passed a NUL from the path to PostgreSQL (a 500)."""
    for url in ("/a/%00", "/a/AB%00C", "/alerts/1%00"):
        response = site.client.get(url)
        _check(response, url)
        assert response.status_code == 404, url
    response = site.client.get("/fhir/Patient/%00", headers={"Authorization": f"Bearer {site.token}"})
    _check(response, "/fhir/Patient/%00")
    assert response.status_code in (400, 404)
