"""API tokens belong to a person or to a named integration client (issue 15: a person behind every action).

A staff member's token acts with that person's current role and care teams (scoped exactly as the dashboard)
and stops at deactivation; a client's token does what its scopes allow, for every patient; audit rows name
the person or client and the token; tokens are made through the API, the admin page and the CLI; the
migration turns the old role-only tokens into clients."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from pro_service.cli import main
from pro_service.migrate import upgrade
from pro_service.models import AlertEvent, ApiToken, AuditLog, CareTeamMember, StaffRole, StaffUser, utcnow
from pro_service.services import admin as admin_svc
from pro_service.services import staff as staff_svc
from pro_service.services import tokens
from pro_service.services.tokens import create_token
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.conftest import PG_ADMIN_URL
from tests.integration.helpers import make_patient, make_team
from tests.integration.test_labs_intake import CALCIUM, FHIR_JSON, HL7_TYPE, observation, oru

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]
MRN = "MRN-LAB-1"  # the payload builders' patient


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    team_a = make_team(rt, name="Breast oncology")
    team_b = make_team(rt, name="Palliative care")
    p_a = make_patient(rt, team_a, phone="+15551230001", mrn=MRN)
    p_b = make_patient(rt, team_b, phone="+15551230002", mrn="MRN-B1")
    return {
        "team_a": team_a,
        "team_b": team_b,
        "p_a": p_a,
        "p_b": p_b,
        "a_a": insert_alert(rt, p_a),
        "a_b": insert_alert(rt, p_b),
        "nurse": make_staff(rt, email="kim@example.org", name="Kim Lee", team_id=team_a),
    }


def _token(rt: Any, **owner: Any) -> tuple[int, str]:
    with rt.unit_of_work() as session:
        new = create_token(session, requested_by="operator", name="script", **owner)
        return new.id, new.token


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _fhir(client: Any, token: str, body: dict[str, Any]) -> Any:
    headers = {**_auth(token), "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    return client.post("/fhir/Observation", data=json.dumps(body), headers=headers)


def _hl7(client: Any, token: str, message: str) -> Any:
    return client.post("/hl7/oru", data=message.encode(), headers={**_auth(token), "Content-Type": HL7_TYPE})


# ------------------------------------------------------------------------------------ a person's token
def test_a_nurses_token_sees_only_her_teams_patients_with_her_current_teams_and_role(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    _, kims = _token(rt, staff=ward["nurse"])
    listed = client.get("/api/v1/patients", headers=_auth(kims))
    assert listed.status_code == 200 and [p["id"] for p in listed.json["patients"]] == [ward["p_a"]]
    assert [a["id"] for a in client.get("/api/v1/alerts", headers=_auth(kims)).json["alerts"]] == [
        ward["a_a"]
    ]
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(kims)).status_code == 200
    outside = client.get(f"/api/v1/patients/{ward['p_b']}", headers=_auth(kims))
    assert outside.status_code == 403 and outside.json["error"] == "forbidden"
    assert client.post(f"/api/v1/alerts/{ward['a_b']}/acknowledge", headers=_auth(kims)).status_code == 403
    assert client.get(f"/fhir/Patient/{ward['p_b']}", headers=_auth(kims)).status_code == 403
    assert client.get("/api/v1/staff", headers=_auth(kims)).status_code == 403  # a nurse is no admin

    # The person's teams and role are read at each request, not frozen into the token.
    with rt.unit_of_work() as session:
        session.add(CareTeamMember(care_team_id=ward["team_b"], staff_id=ward["nurse"]))
    assert client.get(f"/api/v1/patients/{ward['p_b']}", headers=_auth(kims)).status_code == 200
    with rt.unit_of_work() as session:
        person = session.get(StaffUser, ward["nurse"])
        assert person is not None
        person.role = StaffRole.ADMIN
    assert client.get("/api/v1/staff", headers=_auth(kims)).status_code == 200


def test_a_deactivated_persons_token_is_refused_until_reactivated(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    _, kims = _token(rt, staff="KIM@example.org")  # by email, any case
    assert client.get("/api/v1/instruments", headers=_auth(kims)).status_code == 200

    def set_active(active: bool) -> None:
        with rt.unit_of_work() as session:
            person = session.get(StaffUser, ward["nurse"])
            assert person is not None
            staff_svc.set_active(session, person, active, now=utcnow())

    set_active(False)
    refused = client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(kims))
    assert refused.status_code == 401 and refused.json["detail"] == "the token's owner is deactivated"
    assert client.get(f"/fhir/Patient/{ward['p_a']}", headers=_auth(kims)).status_code == 401
    set_active(True)
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(kims)).status_code == 200


# ----------------------------------------------------------------------------------- a client's token
def test_a_client_does_only_what_its_scopes_allow_for_every_patient(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    _, reader = _token(rt, client="EHR-interface", scopes=["read"])
    _, lab = _token(rt, client="lab", scopes=["labs:write"])
    _, enroller = _token(rt, client="registration", scopes=["enrolment"])

    # read: every team's patients (an integration, not a nurse), and nothing written.
    mrns = {p["mrn"] for p in client.get("/api/v1/patients", headers=_auth(reader)).json["patients"]}
    assert mrns == {MRN, "MRN-B1"}
    assert client.get(f"/fhir/Patient/{ward['p_b']}", headers=_auth(reader)).status_code == 200
    no_labs = _fhir(client, reader, observation(ident="R1"))
    assert no_labs.status_code == 403 and no_labs.json["issue"][0]["code"] == "forbidden"
    hl7_refused = _hl7(client, reader, oru(CALCIUM, control="R1"))
    assert hl7_refused.status_code == 403 and "labs:write" in hl7_refused.json["detail"]
    assert client.post(f"/api/v1/alerts/{ward['a_b']}/acknowledge", headers=_auth(reader)).status_code == 403

    # labs:write: results in, by FHIR and HL7, and no reading.
    assert _fhir(client, lab, observation(ident="L1")).status_code == 201
    assert _hl7(client, lab, oru(CALCIUM, control="L2")).status_code == 200
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(lab)).status_code == 403
    assert client.get(f"/fhir/Observation?patient={ward['p_a']}", headers=_auth(lab)).status_code == 403

    # enrolment: patients in; not the staff list, not labs.
    body = {
        "mrn": "MRN-NEW",
        "given_name": "Rosa",
        "family_name": "Diaz",
        "phone": "+15551230009",
        "timezone": "America/New_York",
        "language": "en",
        "care_team_id": ward["team_b"],
    }
    refused = client.post("/api/v1/patients", json=body, headers=_auth(reader))
    assert refused.status_code == 403 and "'enrolment'" in refused.json["detail"]
    assert client.post("/api/v1/patients", json=body, headers=_auth(enroller)).status_code == 201
    assert client.get("/api/v1/staff", headers=_auth(enroller)).status_code == 403
    assert _fhir(client, enroller, observation(ident="E1")).status_code == 403


# --------------------------------------------------------------------------------------------- audit
def test_audit_rows_and_alert_events_name_the_person_or_the_client(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    kim_token_id, kims = _token(rt, staff=ward["nurse"])
    ehr_token_id, ehr = _token(rt, client="EHR interface", scopes=["read"])
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(kims)).status_code == 200
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(ehr)).status_code == 200
    assert client.post(f"/api/v1/alerts/{ward['a_a']}/acknowledge", headers=_auth(kims)).status_code == 200

    kim = f"staff:{ward['nurse']} (token {kim_token_id})"
    ehr_actor = f"client:EHR interface (token {ehr_token_id})"
    with rt.sessions() as session:
        views = session.scalars(
            select(AuditLog.actor).where(AuditLog.action == "view_patient").order_by(AuditLog.id)
        ).all()
        assert views == [kim, ehr_actor]
        event = session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == ward["a_a"], AlertEvent.kind == "acknowledged")
        ).one()
        assert (event.actor, event.actor_staff_id) == (kim, ward["nurse"])

        # The audit browser's "who" finds a person's token rows by her id, email or name, a client by name,
        # and a token by number; each sees only its own rows.
        def actors(search: str) -> set[str]:
            found = admin_svc.AuditFilter(actors=admin_svc.resolve_actors(session, search))
            return {r.actor for r in admin_svc.audit_page(session, found, limit=100).rows}

        assert actors(f"staff:{ward['nurse']}") == {kim}
        assert actors("kim@example.org") == actors("Kim Lee") == {kim}
        assert actors("client:EHR interface") == {ehr_actor}
        assert actors(f"token:{ehr_token_id}") == {ehr_actor}
        assert actors(kim) == {kim}  # the audit page links each actor to its own rows
        assert actors("client:EHR") == set()  # a name, not a prefix
    assert tokens.actor_staff_id(kim) == ward["nurse"] and tokens.actor_staff_id(ehr_actor) is None


def test_the_audit_page_shows_the_persons_name_for_her_token_rows(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    token_id, kims = _token(rt, staff=ward["nurse"])
    assert client.get(f"/api/v1/patients/{ward['p_a']}", headers=_auth(kims)).status_code == 200
    make_staff(rt, email="admin@example.org", name="Ada Admin", role=StaffRole.ADMIN)
    login(client, "admin@example.org")
    page = client.get(f"/admin/audit?actor=staff:{ward['nurse']}").get_data(as_text=True)
    assert f'Kim Lee</a> <span class="muted small">staff:{ward["nurse"]} (token {token_id})</span>' in page


# ------------------------------------------------------------------------------------ making tokens
def test_the_api_makes_a_token_for_a_person_or_a_client_and_explains_what_is_wrong(
    api: Any, rt: Any, ward: dict[str, int]
) -> None:
    nurse = ward["nurse"]
    # Nobody mints a token in a colleague's name (it would act, and be audited, as them): a client with the
    # admin scope is refused; an administrator's own token may make another for that administrator.
    for colleague in ({"staff_id": nurse}, {"staff_email": "Kim@Example.org"}):
        refused = api("POST", "/api/v1/tokens", {"name": "ward laptop", **colleague})
        assert refused.status_code == 400, refused.json
        assert "made by that person" in refused.json["detail"][0]["message"]
    ada = make_staff(rt, email="ada@example.org", name="Ada Admin", role=StaffRole.ADMIN)
    _, adas = _token(rt, staff=ada)
    mine = api("POST", "/api/v1/tokens", {"name": "ward laptop", "staff_id": ada}, token=adas)
    assert mine.status_code == 201, mine.json
    assert (mine.json["owner"], mine.json["staff_id"], mine.json["role"], mine.json["scopes"]) == (
        "staff",
        ada,
        "admin",
        [],
    )
    assert mine.json["token"].startswith("pro_")
    for_kim = api("POST", "/api/v1/tokens", {"name": "x", "staff_email": "kim@example.org"}, token=adas)
    assert for_kim.status_code == 400
    ehr = api("POST", "/api/v1/tokens", {"name": "feed", "client": "EHR", "scopes": ["labs:write", "read"]})
    assert ehr.status_code == 201, ehr.json
    assert (ehr.json["owner"], ehr.json["client"], ehr.json["role"]) == ("client", "EHR", None)
    assert ehr.json["scopes"] == ["read", "labs:write"]

    listed = {t["id"]: t for t in api("GET", "/api/v1/tokens").json["tokens"]}
    assert "token" not in listed[mine.json["id"]] and listed[ehr.json["id"]]["scopes"] == [
        "read",
        "labs:write",
    ]
    with rt.sessions() as session:
        made = session.scalars(select(AuditLog).where(AuditLog.action == "create_token")).all()
        assert {r.detail["owner"] for r in made} >= {
            f"staff:{ada} (token {mine.json['id']})",
            f"client:EHR (token {ehr.json['id']})",
        }

    gone = make_staff(rt, email="gone@example.org")
    with rt.unit_of_work() as session:
        person = session.get(StaffUser, gone)
        assert person is not None
        person.active = False
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "x"}, "owner", "give exactly one"),
        ({"name": "x", "staff_id": nurse, "client": "EHR", "scopes": ["read"]}, "owner", "give exactly one"),
        ({"name": "x", "staff_id": 99999}, "staff", "no staff member 99999"),
        ({"name": "x", "staff_email": "nobody@example.org"}, "staff", "no staff member nobody@example.org"),
        ({"name": "x", "staff_email": "99999999999"}, "staff", "no staff member 99999999999"),  # > int4
        ({"name": "x", "staff_id": gone}, "staff", "is deactivated"),
        ({"name": "x", "staff_id": nurse, "scopes": ["read"]}, "scopes", "scopes are for clients"),
        ({"name": "x", "client": "EHR"}, "scopes", "at least one scope"),
        ({"name": "x", "client": "EHR", "scopes": ["write"]}, "scopes.0", "'read'"),
        ({"name": "x", "client": "EHR (prod)", "scopes": ["read"]}, "client", "letters, digits"),
        ({"name": "x", "staff_id": nurse, "staff_email": "kim@example.org"}, "staff_email", "not both"),
    ]
    for body, field, words in cases:
        refused = api("POST", "/api/v1/tokens", body)
        assert refused.status_code == 400 and refused.json["error"] == "validation_failed", body
        (problem,) = refused.json["detail"]
        assert problem["field"] == field and words in problem["message"], (body, problem)


def test_the_admin_page_makes_shows_once_and_revokes_tokens(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    make_staff(rt, email="admin@example.org", name="Ada Admin", role=StaffRole.ADMIN)
    login(client, "admin@example.org")
    page = client.get("/admin/tokens").get_data(as_text=True)
    assert "Ada Admin (admin@example.org, admin)" in page  # a person's token: only one's own
    assert "Kim Lee (kim@example.org, nurse)" not in page

    form = {"csrf_token": csrf_token(client, "/admin/tokens"), "name": "lab feed", "owner": "client"}
    made = client.post("/admin/tokens", data={**form, "client": "LIS", "scopes": ["labs:write"]})
    assert made.status_code == 200
    secret = made.get_data(as_text=True).split('<p class="password-once"><code>')[1].split("</code>")[0]
    assert _fhir(client, secret, observation(ident="P1")).status_code == 201
    later = client.get("/admin/tokens").get_data(as_text=True)
    assert secret not in later and "client LIS: labs:write" in later

    for_kim = client.post("/admin/tokens", data={**form, "owner": "staff", "staff": str(ward["nurse"])})
    assert for_kim.status_code == 400 and "made by that person" in for_kim.get_data(as_text=True)
    for_me = client.post("/admin/tokens", data={**form, "owner": "staff", "staff": "admin@example.org"})
    assert for_me.status_code == 200 and "Ada Admin (admin)" in for_me.get_data(as_text=True)
    neither = client.post("/admin/tokens", data={**form, "client": "", "scopes": ["read"]})
    assert neither.status_code == 400 and "give exactly one" in neither.get_data(as_text=True)
    huge = client.post("/admin/tokens", data={**form, "owner": "staff", "staff": "9" * 12})
    assert huge.status_code == 400 and "no staff member" in huge.get_data(as_text=True)
    unknown = client.post("/admin/tokens", data={**form, "client": "LIS", "scopes": ["everything"]})
    assert unknown.status_code == 400 and "unknown scope" in unknown.get_data(as_text=True)

    with rt.sessions() as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.client_name == "LIS")).one()
    revoked = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": form["csrf_token"]})
    assert revoked.status_code == 302
    assert _fhir(client, secret, observation(ident="P2")).status_code == 401
    with rt.sessions() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action.in_(("create_token", "revoke_token"))))
        assert {(r.action, r.actor.startswith("staff:")) for r in rows} == {
            ("create_token", True),
            ("revoke_token", True),
        }


@pytest.mark.commits("the CLI builds its own runtime")
def test_the_cli_makes_a_token_for_a_person_or_a_client(
    settings_env: dict[str, str], rt: Any, client: Any, ward: dict[str, int]
) -> None:
    runner = CliRunner()
    person = runner.invoke(
        main, ["create-token", "--name", "cli", "--staff", "kim@example.org"], env=settings_env
    )
    assert person.exit_code == 0, person.output
    assert f"staff:{ward['nurse']}" in person.output
    kims = person.output.strip().splitlines()[-1]
    assert client.get(f"/api/v1/patients/{ward['p_b']}", headers=_auth(kims)).status_code == 403

    args = ["create-token", "--name", "cli", "--client", "LIS", "--scope", "labs:write"]
    lis = runner.invoke(main, args, env=settings_env)
    assert lis.exit_code == 0 and "client:LIS" in lis.output, lis.output
    assert _fhir(client, lis.output.strip().splitlines()[-1], observation(ident="C1")).status_code == 201

    both = runner.invoke(main, [*args, "--staff", "kim@example.org"], env=settings_env)
    assert both.exit_code == 2 and "give exactly one" in both.output


# ------------------------------------------------------------------------------------------- migration
@pytest.fixture
def scratch_db() -> Iterator[str]:
    name = f"pro_tokens_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_turns_role_tokens_into_clients_and_back(scratch_db: str) -> None:
    from pro_service.migrate import alembic_config

    upgrade(scratch_db, "0008")
    engine = create_engine(scratch_db, poolclass=NullPool)
    insert = text(
        "INSERT INTO api_tokens (name, role, token_hash, prefix, created_at) "
        "VALUES (:name, :role, :hash, 'pro_x', now())"
    )
    try:
        with engine.begin() as conn:
            for name, role in (("ehr", "admin"), ("lab feed", "integration"), ("old nurse", "nurse")):
                conn.execute(insert, {"name": name, "role": role, "hash": secrets.token_hex(32)})
        upgrade(scratch_db, "0009")
        with engine.begin() as conn:
            rows = conn.execute(
                text("SELECT name, staff_id, client_name, scopes FROM api_tokens ORDER BY id")
            ).all()
            assert [tuple(r) for r in rows] == [
                ("ehr", None, "ehr", "read labs:write enrolment admin"),
                ("lab feed", None, "lab feed", "labs:write"),
                ("old nurse", None, "old nurse", ""),
            ]
            staff_id = conn.execute(
                text(
                    "INSERT INTO staff_users (email, name, role, active, created_at, must_change_password) "
                    "VALUES ('kim@example.org', 'Kim', 'nurse', true, now(), false) RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, staff_id, scopes, token_hash, prefix, created_at) "
                    "VALUES ('kim', :staff, '', :hash, 'pro_y', now())"
                ),
                {"staff": staff_id, "hash": secrets.token_hex(32)},
            )
            gone_id = conn.execute(
                text(
                    "INSERT INTO staff_users (email, name, role, active, created_at, must_change_password) "
                    "VALUES ('gone@example.org', 'Gone', 'admin', false, now(), false) RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, staff_id, scopes, token_hash, prefix, created_at) "
                    "VALUES ('gone', :staff, '', :hash, 'pro_w', now())"
                ),
                {"staff": gone_id, "hash": secrets.token_hex(32)},
            )
            with pytest.raises(Exception, match="ck_api_tokens_one_owner"), conn.begin_nested():
                conn.execute(  # an ownerless token is refused by the schema itself
                    text(
                        "INSERT INTO api_tokens (name, scopes, token_hash, prefix, created_at) "
                        "VALUES ('nobody', '', 'h', 'pro_z', now())"
                    )
                )
        from alembic import command

        command.downgrade(alembic_config(scratch_db), "0008")
        with engine.begin() as conn:
            roles = conn.execute(
                text("SELECT name, role, revoked_at IS NOT NULL FROM api_tokens ORDER BY id")
            ).all()
        # Never wider on the way down: the scope-less token may not come back as one that writes labs.
        assert [tuple(r) for r in roles] == [
            ("ehr", "admin", False),
            ("lab feed", "integration", False),
            ("old nurse", "nurse", True),
            ("kim", "nurse", False),
            ("gone", "admin", True),  # 0008 checks only the hash: a deactivated person's token stays dead
        ]
        upgrade(scratch_db)  # and up to the head again
    finally:
        engine.dispose()


def test_scope_rules_in_isolation() -> None:
    assert tokens.parse_scopes(["admin", " read", "read", ""]) == ("read", "admin")
    with pytest.raises(tokens.TokenError, match="unknown scope 'labs'"):
        tokens.parse_scopes(["labs"])
    assert tokens.clean_client_name("  EHR   interface ") == "EHR interface"
    for bad in ("", "-x", "a" * 61, "EHR (prod)", "x:y"):
        with pytest.raises(tokens.TokenError):
            tokens.clean_client_name(bad)
    client = ApiToken(id=7, client_name="EHR", scopes="read labs:write")
    assert tokens.refusal(client, (StaffRole.ADMIN,), "read") is None
    assert "'enrolment'" in (tokens.refusal(client, (StaffRole.NURSE,), "enrolment") or "")
    person = ApiToken(id=8, staff_id=3, scopes="read", staff=StaffUser(id=3, role=StaffRole.NURSE))
    assert tokens.refusal(person, (StaffRole.ADMIN,), "read") is not None  # a person acts by role only
    assert tokens.refusal(person, (StaffRole.NURSE, StaffRole.ADMIN), "admin") is None
    assert (
        tokens.actor_label(person) == "staff:3 (token 8)"
        and tokens.actor_label(client) == "client:EHR (token 7)"
    )
    assert tokens.actor_token_id("token:5") == 5 and tokens.actor_token_id("staff:3") is None


def test_revoking_a_token_twice_through_the_api_records_it_once(api: Any, rt: Any) -> None:
    made = api("POST", "/api/v1/tokens", {"name": "feed", "client": "EHR", "scopes": ["read"]})
    assert made.status_code == 201
    for _ in range(2):
        assert api("DELETE", f"/api/v1/tokens/{made.json['id']}").status_code == 204
    with rt.sessions() as session:
        rows = session.scalars(
            select(AuditLog).where(
                AuditLog.action == "revoke_token", AuditLog.subject_id == str(made.json["id"])
            )
        ).all()
        assert len(rows) == 1
