"""Timing pure functions: repeat a call, report per-call percentiles (in microseconds)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import percentile, print_machine


def per_call(fn: Callable[[], Any], *, repeat: int, batch: int = 1) -> dict[str, float]:
    """Time `repeat` batches of `batch` calls; µs per call (p50, p99 over batches, and the mean)."""
    fn()  # warm caches (regexes, lru_cache) the way a long-running worker has them
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter_ns() - started) / batch / 1000)
    return {
        "p50_us": percentile(samples, 50),
        "p99_us": percentile(samples, 99),
        "mean_us": sum(samples) / len(samples),
    }


def row(name: str, result: dict[str, float]) -> list[str]:
    return [name, f"{result['p50_us']:.1f}", f"{result['p99_us']:.1f}", f"{result['mean_us']:.1f}"]


HEADER = ["", "p50 µs", "p99 µs", "mean µs"]


def main(doc: str | None, run: Callable[[bool], Any]) -> None:
    """The command line of a micro benchmark: `--full` for more repetitions, the machine, then the table."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="more repetitions")
    args = parser.parse_args()
    print_machine()
    run(args.full)
