"""`pro-service …`: schema, users, tokens, the demo, and the embedded all-in-one runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from alerts.backtest import render_text
from config.settings import SettingsError, load_settings
from pro_service.models import StaffRole
from pro_service.services.backtest import DEFAULT_LIMIT


def _settings():  # type: ignore[no-untyped-def]
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """pro-service: SMS check-ins, red flags and nurse alerts for patients with bone metastases."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or upgrade the schema (Alembic)."""
    from pro_service.migrate import upgrade

    upgrade(_settings().DATABASE_URL, revision)
    click.echo("database schema is up to date")


@main.command("create-token")
@click.option("--name", required=True, help="What it is for, e.g. 'ehr-integration' or 'ward laptop'.")
@click.option("--staff", default=None, help="The staff member it acts for (id or email): their role, teams.")
@click.option("--client", default=None, help="Or the integration client it acts for, e.g. 'EHR-interface'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "labs:write", "enrolment", "admin"]),
    help="A client's scope (repeat for several).",
)
def create_token_command(name: str, staff: str | None, client: str | None, scopes: tuple[str, ...]) -> None:
    """Create an API token for a staff member or a client; the token is printed once, as the last line."""
    from pro_service.models import ApiToken
    from pro_service.runtime import Role, build_runtime
    from pro_service.services.tokens import TokenError, actor_label, create_token

    rt = build_runtime(_settings(), Role.CLI)
    try:
        with rt.unit_of_work() as session:
            new = create_token(
                session, name=name, staff=staff, client=client, scopes=scopes, requested_by="operator"
            )
            row = session.get(ApiToken, new.id)
            owner = actor_label(row) if row is not None else ""
    except TokenError as exc:
        raise click.UsageError(exc.message) from None
    finally:
        rt.dispose()
    click.echo(f"token {new.id} '{name}' for {owner}; store it now, it is not shown again:")
    click.echo(new.token)


@main.command("create-user")
@click.option("--email", required=True)
@click.option("--name", default=None)
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.option("--phone", default=None, help="E.164 number for pages.")
@click.password_option()
def create_user_command(email: str, name: str | None, role: str, phone: str | None, password: str) -> None:
    """Create a staff account (the first admin, say)."""
    from pro_service.runtime import Role, build_runtime
    from pro_service.services.errors import ServiceError
    from pro_service.services.staff import create_staff

    rt = build_runtime(_settings(), Role.CLI)
    try:
        with rt.unit_of_work() as session:
            staff = create_staff(
                session, email=email, name=name or email, role=StaffRole(role), phone=phone, password=password
            )
    except ServiceError as exc:  # a bad value, or an email or phone another account has
        raise click.ClickException(str(exc)) from None
    finally:
        rt.dispose()  # the pool's connections closed, not left to the garbage collector
    click.echo(f"created {role} {staff.email} (id {staff.id})")


@main.command("turn-off-second-factor")
@click.option("--email", required=True, help="The staff member who lost their authenticator.")
def turn_off_second_factor_command(email: str) -> None:
    """Turn off a colleague's second factor (a lost phone, or the only administrator locked out)."""
    from sqlalchemy import func, select

    from pro_service.models import StaffUser, utcnow
    from pro_service.runtime import Role, build_runtime
    from pro_service.services.staff import turn_off_second_factor

    rt = build_runtime(_settings(), Role.CLI)
    try:
        with rt.sessions() as session:
            wanted = email.strip().lower()
            found = session.scalar(select(StaffUser.id).where(func.lower(StaffUser.email) == wanted))
            if found is None:
                raise click.ClickException(f"no staff member with the email {email}")
            person, ended = turn_off_second_factor(session, found, actor="cli", ip=None, now=utcnow())
    finally:
        rt.dispose()
    click.echo(f"second factor off for {person.email}; {ended} session(s) ended; they enrol again at sign-in")


@main.command("demo")
@click.option("--yes", is_flag=True, help="Seed without asking (a database other than the embedded default).")
def demo_command(yes: bool) -> None:
    """Seed demo staff, a care team and patients with some history (idempotent)."""
    from pro_service.demo import refusal, seed
    from pro_service.runtime import Role, build_runtime

    settings = _settings()
    refused = refusal(settings.SMS_BACKEND)
    if refused:
        raise click.ClickException(refused)
    if not (settings.embedded_default or yes):
        click.confirm(
            "This is not the embedded default (SQLite, outbox, no Redis): add demo accounts with a published "
            "password, an admin among them, and demo patients to this database?",
            abort=True,
        )
    rt = build_runtime(settings, Role.CLI)
    try:
        for line in seed(rt):
            click.echo(line)
    finally:
        rt.dispose()


@main.command("tick")
def tick_command() -> None:
    """Run one beat tick now, in this process (operators: after an outage, to catch up at once)."""
    from pro_service.runtime import Role, build_runtime
    from pro_service.services.sweeps import tick

    rt = build_runtime(_settings(), Role.CLI)
    click.echo(str(tick(rt, rt.now())))


@main.group()
def rules() -> None:
    """Red-flag rulesets."""


@rules.command("backtest")
@click.option("--ruleset", "spec", default=None, help="Candidate: an installed ruleset, e.g. sre-v3.")
@click.option(
    "--file",
    "path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Candidate: a draft ruleset file, validated but not installed.",
)
@click.option("--since", default="90d", show_default=True, help="Window: days or weeks back, e.g. 90d, 12w.")
@click.option("--against", default=None, help="Reference ruleset (default: each patient's own).")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def rules_backtest(
    spec: str | None, path: Path | None, since: str, against: str | None, limit: int, as_json: bool
) -> None:
    """Replay closed check-ins (and lab results) through a candidate ruleset; compare with the reference."""
    from pro_service.runtime import Role, build_runtime
    from pro_service.services import backtest

    if (spec is None) == (path is None):
        raise click.UsageError("give the candidate as --ruleset NAME-vN or --file PATH.yaml (one of them)")
    rt = build_runtime(_settings(), Role.CLI)
    try:
        window = backtest.parse_window(since)
        if path is not None:
            candidate = backtest.draft_ruleset(rt, path)
        else:
            candidate = backtest.installed_ruleset(rt, spec or "")
        reference = backtest.installed_ruleset(rt, against, option="--against") if against else None
        report = backtest.run_backtest(rt, candidate, window=window, against=reference, limit=limit)
    except backtest.BacktestError as exc:
        raise click.BadParameter(exc.message, param_hint=f"'{exc.option}'") from None
    finally:
        rt.dispose()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(render_text(report.summary, report.header()))
        click.echo(f"\n(replayed in {report.seconds:.1f} s)")


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option(
    "--demo/--no-demo",
    default=None,
    help="Seed the demo accounts and patients (default: only on SQLite with the outbox and no Redis).",
)
def run_command(host: str, port: int, demo: bool | None) -> None:
    """The embedded default on one machine: schema, demo data, web, worker and beat."""
    from pro_service.embedded import run_all

    sys.exit(run_all(_settings(), host, port, demo=demo))


if __name__ == "__main__":
    main()
