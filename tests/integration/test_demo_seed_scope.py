"""Issue 15, item 11: `pro-service run` seeds the demo accounts (a published password, an administrator among
them) only on the embedded default (SQLite, outbox, no Redis) or when `--demo` asks for it, and the demo has
one API token: every start prints the same one instead of minting another administrator token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from config.settings import load_settings
from pro_service.models import ApiToken, StaffUser

pytestmark = pytest.mark.integration
TOKEN_LINE = "  demo API token (admin): "


def _demo_staff(rt: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).where(StaffUser.email.like("%@demo.local"))) or 0)


def _tokens(rt: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ApiToken)) or 0)


def _token_in(lines: list[str]) -> str:
    found = [line.removeprefix(TOKEN_LINE) for line in lines if line.startswith(TOKEN_LINE)]
    assert len(found) == 1, lines
    return found[0]


def test_the_demo_is_seeded_by_default_only_on_the_embedded_default(tmp_path: Path, settings: Any) -> None:
    from pro_service.embedded import seeds_demo

    embedded = load_settings(SECRET_KEY="unit-secret-key-" + "x" * 16, DATABASE_URL=f"sqlite:///{tmp_path}/d")
    assert seeds_demo(embedded, None)
    assert not seeds_demo(embedded, False)  # --no-demo
    assert not seeds_demo(settings, None)  # PostgreSQL, Redis, Twilio: a deployment
    assert seeds_demo(settings, True)  # --demo
    for other in ({"SMS_BACKEND": "twilio"}, {"REDIS_URL": "redis://127.0.0.1:6379/0"}):
        assert not seeds_demo(embedded.model_copy(update=other), None), other


def test_run_on_a_deployment_database_adds_no_demo_admin(settings: Any, rt: Any) -> None:
    from pro_service.embedded import prepare

    lines = prepare(settings, None)  # what `pro-service run` does before serving, on PostgreSQL
    assert _demo_staff(rt) == 0 and _tokens(rt) == 0
    assert "--demo" in " ".join(lines)
    assert not any(line.startswith(TOKEN_LINE) for line in lines)

    lines = prepare(settings, True)  # `pro-service run --demo`, but SMS goes to a provider: refused
    assert _demo_staff(rt) == 0 and "SMS_BACKEND=outbox" in " ".join(lines)

    lines = prepare(settings.model_copy(update={"SMS_BACKEND": "outbox"}), True)
    assert _demo_staff(rt) == 3 and _tokens(rt) == 1
    assert _token_in(lines).startswith("pro_")


def test_every_start_prints_the_same_demo_token_and_mints_no_other(rt: Any, client: Any) -> None:
    from pro_service.demo import demo_token_value, seed

    first = _token_in(list(seed(rt, history=False)))
    second = _token_in(list(seed(rt, history=False)))
    assert first == second
    assert _tokens(rt) == 1
    response = client.get("/api/v1/instruments", headers={"Authorization": f"Bearer {first}"})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]

    # Derived from SECRET_KEY: a deployment's demo token is not the one `make run` prints.
    assert demo_token_value("another-secret-key-" + "y" * 16) != first


def test_the_demo_tokens_earlier_starts_minted_are_revoked(rt: Any, client: Any) -> None:
    """Before, every start minted another admin token named "demo" (clients named "demo" since tokens have
    owners): the first seed now revokes them, and only the demo's one token works."""
    from pro_service.demo import seed
    from pro_service.services.tokens import SCOPES, create_token

    with rt.unit_of_work() as session:
        old = [
            create_token(session, requested_by="operator", name="demo", client="demo", scopes=SCOPES).token
            for _ in range(3)
        ]
        kept = create_token(
            session, requested_by="operator", name="ehr", client="ehr", scopes=SCOPES
        ).token  # not the demo's
    token = _token_in(list(seed(rt, history=False)))
    for value, status in [*((o, 401) for o in old), (kept, 200), (token, 200)]:
        response = client.get("/api/v1/instruments", headers={"Authorization": f"Bearer {value}"})
        assert response.status_code == status, value


def test_a_revoked_demo_token_is_not_brought_back(rt: Any, client: Any) -> None:
    from pro_service.demo import seed
    from pro_service.services.tokens import revoke

    token = _token_in(list(seed(rt, history=False)))
    with rt.unit_of_work() as session:
        row_id = session.scalar(select(ApiToken.id))
        assert row_id is not None and revoke(session, row_id)
    lines = list(seed(rt, history=False))
    assert not any(line.startswith(TOKEN_LINE) for line in lines)
    assert any("revoked" in line for line in lines)
    assert _tokens(rt) == 1
    response = client.get("/api/v1/instruments", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_the_demo_command_asks_before_seeding_a_deployment_database(
    settings_env: dict[str, str], rt: Any
) -> None:
    from pro_service.cli import main

    # With a real SMS provider, never: the story's texts to made-up numbers are queued rows for a moment.
    twilio = CliRunner().invoke(main, ["demo", "--yes"], env=settings_env)
    assert twilio.exit_code != 0 and "SMS_BACKEND=outbox" in twilio.output
    outbox = {**settings_env, "SMS_BACKEND": "outbox"}
    refused = CliRunner().invoke(main, ["demo"], env=outbox, input="n\n")
    assert refused.exit_code != 0 and "published password" in refused.output
    assert _demo_staff(rt) == 0 and _tokens(rt) == 0
    agreed = CliRunner().invoke(main, ["demo", "--yes"], env=outbox)
    assert agreed.exit_code == 0, agreed.output
    assert _demo_staff(rt) == 3 and _tokens(rt) == 1
