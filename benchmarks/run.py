"""Run the benchmarks: `python -m benchmarks.run [--full] [--only NAME ...] [--json PATH]` (`make bench`).

The default sizes fit a small machine (2 cores: about 5 minutes in all); --full uses the sizes each
benchmark is written for. Each benchmark creates and drops its own PostgreSQL database, claims a Redis db of
its own (testsupport/redis_dbs.py) and stops every process it started, also when it fails; one failing does
not stop the others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.harness import print_machine

BENCHMARKS = (
    "parsing",
    "reading",
    "scheduling",
    "dashboard",
    "ingest",
    "reply_to_page",
    "fanout",
    "queue_latency",
    "questionnaire",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="full sizes (takes much longer)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this one (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    machine = print_machine()
    results: dict[str, Any] = {"machine": machine, "full": args.full}
    failed = []
    for name in args.only or BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            results[name] = module.run(args.full)
        except Exception as exc:  # report and go on with the others
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        print(f"--- {name}: {time.monotonic() - started:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
