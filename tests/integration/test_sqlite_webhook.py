"""The embedded default (SQLite) stores the webhook's replies through the same rules as PostgreSQL: stored
before 200, a repeated MessageSid is a repeat, any other refusal a 503 (never a 500, never a silent 200)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pro_service import create_app, runtime_of
from pro_service.migrate import upgrade
from pro_service.models import Message
from tests.conftest import ACCOUNT_SID, FROM_NUMBER, Signer
from tests.integration.helpers import make_patient, make_team


def test_sqlite_stores_once_and_answers_503_for_a_refused_row(settings: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pro.sqlite3'}"
    upgrade(url)
    app = create_app(settings.model_copy(update={"DATABASE_URL": url, "REDIS_URL": None}))
    rt = runtime_of(app)
    try:
        make_patient(rt, make_team(rt))
        signer = Signer(settings.PUBLIC_BASE_URL, settings.webhook_auth_token)
        client = app.test_client()

        def post(sid: str, body: str) -> int:
            params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": "+15551230001", "To": FROM_NUMBER}
            params["Body"] = body
            return int(
                client.post(
                    "/twilio/sms", data=params, headers=signer.headers("/twilio/sms", params)
                ).status_code
            )

        assert post("SM" + "1" * 32, "yes") == 200
        assert post("SM" + "1" * 32, "yes") == 200  # a repeat delivery
        with rt.engine.begin() as connection:  # stands in for any constraint a row can break
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.body = 'refused' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        assert post("SM" + "2" * 32, "refused") == 503
        with rt.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == 1
    finally:
        rt.dispose()
