"""Developer tools that are not part of the product: never packaged in the wheel or the production image,
and never imported by `pro_service`, `workers`, `alerts` or `config` (tests/test_code_quality.py).

- `dev.twilio_server`: a local Twilio-compatible Messages API for tests, fault tests, benchmarks and demos
  (`python -m dev.twilio_server`, or `docker compose --profile dev up twilio`).
"""
