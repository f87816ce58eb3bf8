"""Runnable measurements of pro-service on this machine: `python -m benchmarks.run [--full] [--only NAME]`."""
