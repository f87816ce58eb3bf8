"""Tooling is policy: ruff (lint and format) and mypy run with the suite, and the package boundaries hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run("mypy", "pro_service", "workers", "alerts", "config")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_and_services_do_not_import_the_web_or_the_broker() -> None:
    """Clinical logic and the services that record it: no Flask, no Celery (ARCHITECTURE.md)."""
    code = (
        "import sys\n"
        "import alerts.rules, alerts.ruleset, alerts.escalation, alerts.reading, alerts.lexicon\n"
        "import pro_service.services.triage, pro_service.services.notify\n"
        "import pro_service.services.alert_lifecycle\n"
        "import pro_service.replies, pro_service.conversation, pro_service.scheduling\n"
        "bad = [m for m in ('flask', 'celery', 'kombu', 'werkzeug') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_pure_clinical_modules_import_no_database() -> None:
    """`alerts` is pure (issue 13): rules, ruleset, escalation policy, the reader and its text model. Triage,
    paging and the alert life cycle are services (pro_service/services/)."""
    code = (
        "import sys\n"
        "import alerts.rules, alerts.ruleset, alerts.escalation, alerts.reading, alerts.lexicon\n"
        "import alerts.reading_model, pro_service.replies, pro_service.conversation, pro_service.scheduling\n"
        "print(','.join(m for m in ('sqlalchemy', 'psycopg', 'redis') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_product_never_imports_the_dev_tools() -> None:
    """dev/ (the Twilio stand-in) is not in the wheel or the production image (issue 13), so nothing in
    pro_service, workers, alerts or config may import it: not at import time (every module is imported in
    a fresh process, bar the two entry points that build a configured app) and not lazily (every file's
    import statements are read)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "entry_points = {'pro_service.wsgi', 'workers.celery'}  # need a configured environment\n"
        "for top in ('pro_service', 'workers', 'alerts', 'config'):\n"
        "    for info in pkgutil.walk_packages(importlib.import_module(top).__path__, top + '.'):\n"
        "        if info.name not in entry_points:\n"
        "            importlib.import_module(info.name)\n"
        "print(','.join(m for m in sys.modules if m == 'dev' or m.startswith('dev.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""

    importers = []
    for top in ("pro_service", "workers", "alerts", "config"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                if any(name == "dev" or name.startswith("dev.") for name in names):
                    importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert importers == []


# What only the unit of work may do to the request's session (web/unit_of_work.py). `rollback` stays open
# to a view that shows a form again after a refused service call.
TRANSACTION_CALLS = frozenset(
    {"commit", "add", "add_all", "delete", "merge", "flush", "begin", "begin_nested"}
)


def _session_names(function: ast.AST) -> set[str]:
    """Names bound to the request's session in a function: `session = db()` (and `s = db()`)."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == "db":
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_session(receiver: ast.expr, names: set[str]) -> bool:
    if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name):
        return receiver.func.id == "db"  # db().add(...)
    if isinstance(receiver, ast.Name):
        return receiver.id in names or receiver.id in {"session", "connection"}
    return isinstance(receiver, ast.Attribute) and receiver.attr in {"db_session", "session"}


def web_transaction_calls() -> list[str]:
    """Every `commit()` under web/, and every add/delete/flush on a session there."""
    found = []
    for path in sorted((ROOT / "pro_service" / "web").rglob("*.py")):
        if path.name == "unit_of_work.py":  # the one place that commits a request
            continue
        tree = ast.parse(path.read_text(), str(path))
        names = _session_names(tree)
        for node in ast.walk(tree):
            attr = _forbidden(node, names)
            if attr:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{attr}()")
    return found


def _forbidden(node: ast.AST, names: set[str]) -> str | None:
    """The name of the forbidden call `node` makes, if it is one: any `.commit()`, or a write to a session."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    attr = node.func.attr
    if attr == "commit" or (attr in TRANSACTION_CALLS and _is_session(node.func.value, names)):
        return attr
    return None


def test_nothing_under_web_commits_or_writes_to_the_session() -> None:
    """Issue 13: one unit of work per request commits (web/unit_of_work.py); views call services, which
    add, delete and (for a transaction of their own) commit. The inbound webhook commits on its own
    autocommit pool and lives outside web/ (pro_service/ingest/)."""
    assert web_transaction_calls() == []


def test_the_web_transaction_check_sees_what_it_forbids() -> None:
    """The check above is only as good as its parser: it finds each forbidden form."""
    sample = (
        "def view():\n    session = db()\n    session.add(x)\n    db().commit()\n    db().delete(y)\n"
        "    s = db()\n    s.flush()\n    ids = set()\n    ids.add(1)\n"
    )
    tree = ast.parse(sample)
    names = _session_names(tree)
    calls = [attr for node in ast.walk(tree) if (attr := _forbidden(node, names))]
    assert sorted(calls) == ["add", "commit", "delete", "flush"]


def test_import_layers_hold() -> None:
    """Issue 13's layers, as import-linter contracts in pyproject.toml: entry points -> services -> domain,
    `alerts` pure, services free of the web framework. Every ignored import is named and explained there."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_of_the_package_has_a_layer() -> None:
    """A new module outside the layers contract would be checked by nothing: each one is given a layer."""
    import re
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    package = ROOT / "pro_service"
    modules = {
        f"pro_service.{path.stem}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert sorted(modules - named) == []
