"""The triage queue as a watch screen, server side: the sort, the 'what changed since version v' poll,
the urgent banner's alerts whatever the filters, acknowledging from a row, and the privacy screen (an idle
session may still watch, without PHI, and may do nothing else)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import Alert, AlertStatus, AuditLog, CareTeamMember
from pro_service.services.alert_lifecycle import acknowledge
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_ward

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    ward = make_ward(rt)
    team, other_team = ward["team"], ward["other_team"]
    return {
        **ward,
        "nurse": _member_of_both(rt, team, other_team),
    }


def _member_of_both(rt: Any, team: int, other_team: int) -> int:
    """Kim watches both teams' alerts (care-team scoping: services/access.py, tests in test_scoping.py)."""
    staff_id = make_staff(rt, email="kim@example.org", team_id=team)
    with rt.unit_of_work() as session:
        session.add(CareTeamMember(care_team_id=other_team, staff_id=staff_id))
    return staff_id


def _acknowledge(rt: Any, alert_id: int, staff_id: int) -> None:
    with rt.unit_of_work() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        acknowledge(session, alert, staff_id=staff_id, actor=f"staff:{staff_id}", now=rt.now(), via="test")


def _order(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-alert-id="(\d+)"', html)]


def test_unacknowledged_before_acknowledged_within_each_urgency(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    acked_old = insert_alert(rt, ward["p1"], category="hypercalcemia", opened_minutes_ago=51)
    open_new = insert_alert(rt, ward["p2"], category="spinal_cord_compression", opened_minutes_ago=2)
    routine = insert_alert(
        rt, ward["p1"], category="new_bone_pain", urgency="routine", opened_minutes_ago=300
    )
    _acknowledge(rt, acked_old, ward["nurse"])
    login(client, "kim@example.org")

    assert _order(client.get("/").get_data(as_text=True)) == [open_new, acked_old, routine]
    assert [a["id"] for a in client.get("/queue/poll").json["alerts"]] == [open_new, acked_old, routine]


def test_the_poll_answers_204_until_something_shown_changes(
    client: Any, rt: Any, ward: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = rt.now()
    monkeypatch.setattr(rt, "clock", lambda: now)  # the version includes the minute ("waiting 12 min")
    first = insert_alert(rt, ward["p1"], category="hypercalcemia")
    login(client, "kim@example.org")
    page = client.get("/").get_data(as_text=True)
    version = re.search(r'data-version="([0-9a-f]+)"', page)
    assert version is not None

    unchanged = client.get(f"/queue/poll?v={version.group(1)}")
    assert unchanged.status_code == 204 and unchanged.get_data() == b""

    second = insert_alert(rt, ward["p2"], category="spinal_cord_compression", opened_minutes_ago=1)
    changed = client.get(f"/queue/poll?v={version.group(1)}")
    assert changed.status_code == 200
    body = changed.json
    assert body["version"] != version.group(1)
    assert _order(body["rows"]) == [first, second]
    assert client.get(f"/queue/poll?v={body['version']}").status_code == 204

    _acknowledge(rt, first, ward["nurse"])  # a change of status is a change too
    acked = client.get(f"/queue/poll?v={body['version']}")
    assert acked.status_code == 200 and _order(acked.json["rows"]) == [second, first]


def test_the_banner_gets_every_open_urgent_alert_whatever_the_filters(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    urgent_elsewhere = insert_alert(rt, ward["p2"], category="spinal_cord_compression", opened_minutes_ago=1)
    acked = insert_alert(rt, ward["p1"], category="hypercalcemia", opened_minutes_ago=9)
    _acknowledge(rt, acked, ward["nurse"])
    insert_alert(rt, ward["p1"], category="new_bone_pain", urgency="routine")
    login(client, "kim@example.org")

    filtered = client.get(f"/queue/poll?team={ward['team']}&urgency=routine&status=open").json
    assert urgent_elsewhere not in [a["id"] for a in filtered["alerts"]]  # not in the filtered rows
    assert filtered["urgent"] == [
        {
            "id": urgent_elsewhere,
            "team": "Palliative care",
            "ref": filtered["urgent"][0]["ref"],
            "category": "Possible spinal cord compression",
            "url": f"/alerts/{urgent_elsewhere}",
        }
    ]  # the acknowledged urgent alert is nobody's news


def test_acknowledge_from_the_row(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    url = f"/queue/alerts/{alert_id}/acknowledge"

    first = client.post(url, data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert first.status_code == 200 and first.json["acknowledged"] is True
    again = client.post(url, data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert (
        again.json
        == {
            "acknowledged": False,
            "message": again.json["message"],
        }
        and "already acknowledged by Nurse Kim" in again.json["message"]
    )
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.ACKNOWLEDGED
        assert alert.acknowledged_by_id == ward["nurse"]
        audits = session.scalars(select(AuditLog).where(AuditLog.action == "acknowledge_alert")).all()
        assert [(a.subject_id, a.patient_id, a.detail) for a in audits] == [
            (str(alert_id), ward["p1"], {"source": "queue"})
        ]

    # Without the page's script: a plain form post, back to the same filtered queue.
    other = insert_alert(rt, ward["p2"], category="hypercalcemia")
    plain = client.post(
        f"/queue/alerts/{other}/acknowledge?team={ward['other_team']}&status=open", data={"csrf_token": token}
    )
    assert plain.status_code == 302
    assert plain.headers["Location"] == f"/?team={ward['other_team']}&status=open"
    assert client.post(url).status_code == 400  # CSRF applies


def _go_idle(app: Any, client: Any) -> float:
    seen = time.time() - app.config["SESSION_IDLE_MINUTES"] * 60 - 1
    with client.session_transaction() as session:
        session["seen"] = seen
    return seen


def test_an_idle_session_watches_without_phi_and_can_do_nothing_else(
    app: Any, client: Any, rt: Any, ward: dict[str, int]
) -> None:
    alert_id = insert_alert(rt, ward["p2"], category="spinal_cord_compression")
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    seen = _go_idle(app, client)

    watch = client.get("/queue/poll")
    assert watch.status_code == 200
    body = watch.json
    assert body["locked"] is True and "rows" not in body and "alerts" not in body
    assert body["open_counts"]["urgent"] == 1
    assert body["urgent"] == [{"id": alert_id, "team": "Palliative care", "url": f"/alerts/{alert_id}"}]
    text = watch.get_data(as_text=True)
    for phi in ("Ana", "Lopez", "MRN002", "spinal", "Spinal"):
        assert phi not in text
    with client.session_transaction() as session:
        assert session["seen"] == seen  # watching is not activity

    # Acting, or pretending to be active, needs the password again ...
    ack = client.post(
        f"/queue/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert ack.status_code == 401
    assert client.post("/session/ping", headers={"X-CSRFToken": token}).status_code == 401
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.OPEN
    # ... while the watch goes on (the refusals kept the cookie) ...
    assert client.get("/queue/poll").json["locked"] is True
    # ... until the sign-in page, which ends the session.
    assert "signed out after 15 minutes" in client.get("/login").get_data(as_text=True)
    assert client.get("/queue/poll").status_code == 401


def test_the_watch_ends_at_the_sessions_hard_limit(
    app: Any, client: Any, rt: Any, ward: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    _go_idle(app, client)
    with client.session_transaction() as session:
        session["at"] = time.time() - app.config["SESSION_MAX_HOURS"] * 3600 - 1
    assert client.get("/queue/poll").status_code == 401


def test_a_page_on_its_privacy_screen_gets_no_phi_from_a_live_session(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    body = client.get("/queue/poll?privacy=1").json
    assert body["locked"] is False and "rows" not in body and "category" not in body["urgent"][0]
    assert "Lopez" not in client.get("/queue/poll?privacy=1").get_data(as_text=True)
