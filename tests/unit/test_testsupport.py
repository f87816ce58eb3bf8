"""The pieces tests and benchmarks share (testsupport/): a wait that ends, a signature Twilio would send."""

from __future__ import annotations

import itertools

import pytest
from twilio.request_validator import RequestValidator

from testsupport.signing import Signer, inbound_sms
from testsupport.waiting import wait_for
from testsupport.workers import worker_args


class _Late(RuntimeError):
    pass


def test_wait_for_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", timeout=5, interval=0.001) == "done"


def test_wait_for_ends_with_the_callers_error_and_says_what_never_came() -> None:
    with pytest.raises(_Late, match=r"timed out after 0\.05s waiting for the moon"):
        wait_for(lambda: False, timeout=0.05, interval=0.01, message="the moon", error=_Late)
    with pytest.raises(AssertionError):
        wait_for(lambda: None, timeout=0.01, interval=0.005)


def test_signed_params_pass_twilios_own_check() -> None:
    params = inbound_sms("+15550001111", "yes", account_sid="AC" + "0" * 32, to="+15005550006")
    headers = Signer("https://pro.example", "token-1").headers("/twilio/sms", params)
    validator = RequestValidator("token-1")
    assert validator.validate("https://pro.example/twilio/sms", params, headers["X-Twilio-Signature"])
    assert not RequestValidator("other").validate(
        "https://pro.example/twilio/sms", params, headers["X-Twilio-Signature"]
    )
    assert (
        params["MessageSid"].startswith("SM")
        and params["MessageSid"]
        != inbound_sms("+15550001111", "yes", account_sid="AC", to="+1")["MessageSid"]
    )


def test_worker_arguments_name_the_worker_and_its_queues() -> None:
    args = worker_args("bench-7", concurrency=4, queues="sms,alerts", heartbeat=False)
    assert args[0] == "worker" and "--concurrency=4" in args and "--without-heartbeat" in args
    assert args[args.index("-n") + 1] == "bench-7@%h"
    assert args[args.index("-Q") + 1] == "sms,alerts"
    assert "--without-heartbeat" not in worker_args("test-1") and "-Q" not in worker_args("test-1")
