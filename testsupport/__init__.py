"""What the tests and the benchmarks share: the Twilio request signer, bounded waits, free ports and the
Celery process launcher. A developer tool like dev/: never shipped in the wheel (pyproject.toml)."""
