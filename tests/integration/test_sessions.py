"""Sessions that end (server-side rows) and the password rules: logout kills a copied cookie, a password
change, a reset or a deactivation ends every session, signed-in devices with sign out everywhere else,
temporary passwords that must be changed, common passwords refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from pro_service.demo import DEMO_PASSWORD
from pro_service.models import AuditLog, StaffRole, StaffSession, StaffUser, utcnow
from pro_service.services.staff import password_problem
from tests.browser.support import PASSWORD, csrf_token, login, make_staff

pytestmark = pytest.mark.integration

COOKIE = "pro_session"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _signed_in(client: Any) -> bool:
    """A page that needs a session and shows no patient: 200 signed in, a redirect to sign-in otherwise."""
    page = client.get("/account/sessions")
    if page.status_code == 302:
        assert page.headers["Location"].startswith("/login")
        return False
    assert page.status_code == 200
    return True


def _copy_cookie(app: Any, client: Any) -> Any:
    stolen = app.test_client()
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    stolen.set_cookie(COOKIE, cookie.value)
    return stolen


def _rows(rt: Any, staff_id: int) -> list[StaffSession]:
    with rt.sessions() as session:
        return list(
            session.scalars(select(StaffSession).where(StaffSession.staff_id == staff_id).order_by("id"))
        )


def test_a_copied_cookie_is_refused_after_logout(app: Any, client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    copy, poller = _copy_cookie(app, client), _copy_cookie(app, client)
    assert _signed_in(copy)  # a bearer cookie: it works while the session lives ...

    token = csrf_token(client, "/account/sessions")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    # ... and is dead once its owner signs out: pages and the watch poll alike.
    assert not _signed_in(copy)
    assert poller.get("/queue/poll").status_code == 401
    [row] = _rows(rt, staff_id)
    assert row.ended_at is not None and row.ended_reason == "signed_out"


def test_the_cookie_carries_a_token_whose_hash_only_is_stored(client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    with client.session_transaction() as cookie:
        token = cookie["sid"]
        assert "staff_id" not in cookie and "pw" not in cookie
    [row] = _rows(rt, staff_id)
    assert token not in row.token_hash and len(row.token_hash) == 64


def test_signing_in_again_on_the_same_browser_ends_the_previous_session(app: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    first = app.test_client()
    login(first, "kim@example.org")
    copy = _copy_cookie(app, first)
    again = first.post(
        "/login",
        data={
            "csrf_token": csrf_token(first, "/account/sessions"),
            "email": "kim@example.org",
            "password": PASSWORD,
        },
    )
    assert again.status_code == 302
    assert _signed_in(first)
    assert not _signed_in(copy)
    assert [r.ended_reason for r in _rows(rt, staff_id)] == ["replaced", None]


def test_a_password_change_ends_the_other_sessions(app: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    desk, phone = app.test_client(), app.test_client()
    login(desk, "kim@example.org")
    login(phone, "kim@example.org")

    new = "quiet river lantern 42"
    changed = desk.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(desk, "/account/password"),
            "current_password": PASSWORD,
            "password": new,
            "password_confirm": new,
        },
    )
    assert changed.status_code == 302
    assert "1 other session signed out" in desk.get(changed.headers["Location"]).get_data(as_text=True)
    assert _signed_in(desk)  # the browser that changed it goes on
    assert not _signed_in(phone)
    assert [r.ended_reason for r in _rows(rt, staff_id)] == [None, "password_changed"]
    login(app.test_client(), "kim@example.org", new)
    with rt.sessions() as session:
        assert session.scalar(select(AuditLog.id).where(AuditLog.action == "change_password")) is not None


def test_a_password_change_needs_the_current_password_and_names_the_field(client: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    token = csrf_token(client, "/account/password")

    def change(current: str, new: str, confirm: str | None = None) -> str:
        response = client.post(
            "/account/password",
            data={
                "csrf_token": token,
                "current_password": current,
                "password": new,
                "password_confirm": new if confirm is None else confirm,
            },
        )
        assert response.status_code == 400
        return response.get_data(as_text=True)

    assert "current_password: this is not your current password" in change("not it at all", "quiet river 42")
    common = change(PASSWORD, "Password1234")
    assert "password: this is one of the most common passwords" in common
    assert 'id="password" name="password"' in common and 'aria-invalid="true"' in common
    assert "password_confirm: the two new passwords" in change(PASSWORD, "quiet river 42", "quiet river 43")
    assert "password: choose a password different" in change(PASSWORD, PASSWORD)
    assert _signed_in(client)


def test_an_admin_reset_or_deactivation_ends_every_session_even_after_reactivation(
    app: Any, client: Any, rt: Any
) -> None:
    nurse_id = make_staff(rt, email="kim@example.org")
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    nurse = app.test_client()
    login(nurse, "kim@example.org")
    login(client, "boss@example.org")
    token = csrf_token(client, f"/admin/staff/{nurse_id}")

    off = client.post(f"/admin/staff/{nurse_id}/active", data={"csrf_token": token, "active": "no"})
    assert off.status_code == 302
    on = client.post(f"/admin/staff/{nurse_id}/active", data={"csrf_token": token, "active": "yes"})
    assert on.status_code == 302
    # Reactivated, the account signs in afresh: the old cookie stays dead.
    assert not _signed_in(nurse)
    assert [r.ended_reason for r in _rows(rt, nurse_id)] == ["deactivated"]

    login(nurse, "kim@example.org")
    reset = client.post(f"/admin/staff/{nurse_id}/password", data={"csrf_token": token})
    assert reset.status_code == 200 and "New temporary password" in reset.get_data(as_text=True)
    assert not _signed_in(nurse)
    assert [r.ended_reason for r in _rows(rt, nurse_id)] == ["deactivated", "password_reset"]
    with rt.sessions() as session:
        person = session.get(StaffUser, nurse_id)
        assert person is not None and person.must_change_password


def test_sign_out_everywhere_else_and_one_device(app: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    here, tablet, laptop = app.test_client(), app.test_client(), app.test_client()
    for browser in (here, tablet, laptop):
        login(browser, "kim@example.org")
    rows = _rows(rt, staff_id)
    token = csrf_token(here, "/account/sessions")

    one = here.post(f"/account/sessions/{rows[1].id}/end", data={"csrf_token": token})
    assert one.status_code == 302
    assert not _signed_in(tablet) and _signed_in(laptop)
    # Another account's session cannot be ended from here.
    other_id = make_staff(rt, email="lee@example.org", name="Nurse Lee")
    login(app.test_client(), "lee@example.org")
    [other] = _rows(rt, other_id)
    here.post(f"/account/sessions/{other.id}/end", data={"csrf_token": token})
    assert _rows(rt, other_id)[0].ended_at is None

    everywhere = here.post("/account/sessions/end-others", data={"csrf_token": token})
    assert everywhere.status_code == 302
    assert "Signed out everywhere else (1 session)" in here.get("/account/sessions").get_data(as_text=True)
    assert not _signed_in(laptop) and _signed_in(here)
    assert [r.ended_reason for r in _rows(rt, staff_id)] == [
        None,
        "signed_out_elsewhere",
        "signed_out_elsewhere",
    ]


def test_the_devices_page_lists_the_live_sessions(app: Any, rt: Any) -> None:
    make_staff(rt, email="kim@example.org")
    desk, ward = app.test_client(), app.test_client()
    desk.environ_base["HTTP_USER_AGENT"] = FIREFOX
    ward.environ_base["HTTP_USER_AGENT"] = CHROME
    login(desk, "kim@example.org")
    login(ward, "kim@example.org")
    gone = app.test_client()
    login(gone, "kim@example.org")
    gone.post("/logout", data={"csrf_token": csrf_token(gone, "/account/sessions")})

    page = desk.get("/account/sessions").get_data(as_text=True)
    assert "Firefox on Windows <strong>(this device)</strong>" in page
    assert "Chrome on Linux" in page
    assert page.count("<tr data-session=") == 2  # the signed-out one is not listed
    assert "Sign out everywhere else" in page


def test_last_seen_is_written_at_most_once_a_minute(client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    [row] = _rows(rt, staff_id)
    for _ in range(3):
        assert _signed_in(client)
    assert _rows(rt, staff_id)[0].last_seen_at == row.last_seen_at  # no write per request

    earlier = utcnow() - timedelta(minutes=2)
    with rt.unit_of_work() as session:
        session.execute(update(StaffSession).where(StaffSession.id == row.id).values(last_seen_at=earlier))
    assert _signed_in(client)
    assert _rows(rt, staff_id)[0].last_seen_at > earlier + timedelta(minutes=1)


def test_the_hard_limit_is_kept_on_the_server(app: Any, client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    old = utcnow() - timedelta(hours=app.config["SESSION_MAX_HOURS"], minutes=1)
    with rt.unit_of_work() as session:
        session.execute(update(StaffSession).where(StaffSession.staff_id == staff_id).values(created_at=old))
    assert not _signed_in(client)  # the cookie's own sign-in time is fresh: the row decides
    assert _rows(rt, staff_id)[0].ended_reason == "time_limit"


def test_an_administrator_ends_a_colleagues_sessions(app: Any, client: Any, rt: Any) -> None:
    nurse_id = make_staff(rt, email="kim@example.org")
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    desk, phone = app.test_client(), app.test_client()
    login(desk, "kim@example.org")
    login(phone, "kim@example.org")
    login(client, "boss@example.org")

    page = client.get(f"/admin/staff/{nurse_id}").get_data(as_text=True)
    assert "Signed in on <strong>2</strong> devices" in page
    token = csrf_token(client, f"/admin/staff/{nurse_id}")
    ended = client.post(f"/admin/staff/{nurse_id}/sessions/end", data={"csrf_token": token})
    assert ended.status_code == 302
    assert "2 sessions ended" in client.get(ended.headers["Location"]).get_data(as_text=True)
    assert not _signed_in(desk) and not _signed_in(phone)
    assert _signed_in(client)
    assert "Signed in on <strong>0</strong> devices" in client.get(f"/admin/staff/{nurse_id}").get_data(
        as_text=True
    )
    with rt.sessions() as session:
        assert session.scalar(select(AuditLog.id).where(AuditLog.action == "end_staff_sessions"))


def test_a_nurse_cannot_end_anyone_elses_sessions(app: Any, client: Any, rt: Any) -> None:
    boss_id = make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    token = csrf_token(client, "/account/sessions")
    assert client.post(f"/admin/staff/{boss_id}/sessions/end", data={"csrf_token": token}).status_code == 403


def test_a_temporary_password_must_be_changed_before_anything_else(app: Any, client: Any, rt: Any) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    temporary = "wintergreen 7 harbour"
    created = client.post(
        "/admin/staff",
        data={
            "csrf_token": csrf_token(client, "/admin/staff"),
            "email": "new.nurse@example.org",
            "name": "New Nurse",
            "role": "nurse",
            "password": temporary,
        },
    )
    assert created.status_code == 302
    with rt.sessions() as session:
        person = session.scalar(select(StaffUser).where(StaffUser.email == "new.nurse@example.org"))
        assert person is not None and person.must_change_password

    newcomer = app.test_client()
    signed_in = login(newcomer, "new.nurse@example.org", temporary)
    assert signed_in.headers["Location"] == "/account/password"
    # Nothing else until it is changed: pages, the admin's own pages, the JSON poll.
    for path in ("/", "/patients", "/account/sessions"):
        refused = newcomer.get(path)
        assert refused.status_code == 302 and refused.headers["Location"] == "/account/password", path
    poll = newcomer.get("/queue/poll", headers={"Accept": "application/json"})
    assert poll.status_code == 403 and poll.json["error"] == "password_change_required"
    page = newcomer.get("/account/password").get_data(as_text=True)
    assert "Your password is a temporary one" in page

    changed = newcomer.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(newcomer, "/account/password"),
            "current_password": temporary,
            "password": "copper kettle on the hill",
            "password_confirm": "copper kettle on the hill",
        },
    )
    assert changed.status_code == 302
    assert _signed_in(newcomer)
    with rt.sessions() as session:
        person = session.scalar(select(StaffUser).where(StaffUser.email == "new.nurse@example.org"))
        assert person is not None and not person.must_change_password


def test_common_passwords_are_refused_with_a_message_naming_the_field(client: Any, rt: Any) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    refused = client.post(
        "/admin/staff",
        data={
            "csrf_token": csrf_token(client, "/admin/staff"),
            "email": "lee@example.org",
            "name": "Nurse Lee",
            "role": "nurse",
            "password": "password1234",
        },
    )
    assert refused.status_code == 400
    assert "password: this is one of the most common passwords" in refused.get_data(as_text=True)
    with rt.sessions() as session:
        assert session.scalar(select(StaffUser.id).where(StaffUser.email == "lee@example.org")) is None


@pytest.mark.parametrize(
    ("password", "email", "problem"),
    [
        ("password1234", "lee@example.org", "most common passwords"),
        ("Summer2024!!!!", "lee@example.org", "most common passwords"),  # a common word, padded
        ("qwertyuiop123", "lee@example.org", "most common passwords"),
        (DEMO_PASSWORD, "lee@example.org", "published in the demo"),
        ("my pro-service login", "lee@example.org", "name of this service"),
        ("ProService rocks 2026", "lee@example.org", "name of this service"),
        ("kim.lee on the ward", "kim.lee@example.org", "your email name"),
        ("KimLee-on-the-ward", "kim.lee@example.org", "your email name"),
        ("short one", "lee@example.org", "at least 12 characters"),
        (PASSWORD, "kim@example.org", None),
        ("quiet river lantern 42", "lee@example.org", None),
    ],
)
def test_the_password_rules(password: str, email: str, problem: str | None) -> None:
    found = password_problem(password, email)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_deactivating_through_the_api_ends_every_session_too(app: Any, rt: Any, api: Any) -> None:
    nurse_id = make_staff(rt, email="kim@example.org")
    nurse = app.test_client()
    login(nurse, "kim@example.org")
    assert _signed_in(nurse)
    assert api("PATCH", f"/api/v1/staff/{nurse_id}", {"active": False}).status_code == 200
    assert api("PATCH", f"/api/v1/staff/{nurse_id}", {"active": True}).status_code == 200
    # Reactivated before the old cookie was used again: it is still dead (the row was ended, not skipped).
    assert not _signed_in(nurse)
    assert [r.ended_reason for r in _rows(rt, nurse_id)] == ["deactivated"]


def test_an_account_created_through_the_api_with_a_password_must_change_it(
    app: Any, rt: Any, api: Any
) -> None:
    created = api(
        "POST",
        "/api/v1/staff",
        {"email": "new@example.org", "name": "New Nurse", "role": "nurse", "password": PASSWORD},
    )
    assert created.status_code == 201
    with rt.sessions() as session:
        person = session.get(StaffUser, created.json["id"])
        assert person is not None and person.must_change_password
    browser = app.test_client()
    login(browser, "new@example.org")
    assert "/account/password" in browser.get("/").headers.get("Location", "")


# --- issue 13: a refusal rolls the request back, but these writes are kept (services own them) ----------
def test_a_refused_sign_in_keeps_its_audit_row(client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    token = csrf_token(client)
    refused = client.post(
        "/login", data={"csrf_token": token, "email": "kim@example.org", "password": "wrong"}
    )
    assert refused.status_code == 401
    with rt.sessions() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == "sign_in_failed")).all()
        assert [(r.actor, r.subject_id) for r in rows] == [("anonymous", str(staff_id))]
    assert _rows(rt, staff_id) == []  # and nothing else of the attempt: no session row


@pytest.mark.parametrize("why", ["time_limit", "deactivated"])
def test_a_session_refused_with_a_401_json_answer_is_ended_in_the_database(
    app: Any, client: Any, rt: Any, why: str
) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    with rt.unit_of_work() as session:
        if why == "time_limit":
            old = utcnow() - timedelta(hours=app.config["SESSION_MAX_HOURS"], minutes=1)
            session.execute(
                update(StaffSession).where(StaffSession.staff_id == staff_id).values(created_at=old)
            )
        else:
            session.execute(update(StaffUser).where(StaffUser.id == staff_id).values(active=False))
    poll = client.get("/queue/poll")
    assert poll.status_code == 401 and poll.get_json()["error"] == "signed_out"
    [row] = _rows(rt, staff_id)
    assert row.ended_at is not None and row.ended_reason == why


def test_activity_is_recorded_even_when_the_page_then_refuses(client: Any, rt: Any) -> None:
    staff_id = make_staff(rt, email="kim@example.org")
    login(client, "kim@example.org")
    earlier = utcnow() - timedelta(minutes=2)
    with rt.unit_of_work() as session:
        session.execute(
            update(StaffSession).where(StaffSession.staff_id == staff_id).values(last_seen_at=earlier)
        )
    assert client.get("/admin/staff").status_code == 403  # a nurse: refused after the sign-in check
    assert _rows(rt, staff_id)[0].last_seen_at > earlier + timedelta(minutes=1)
