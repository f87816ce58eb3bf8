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
