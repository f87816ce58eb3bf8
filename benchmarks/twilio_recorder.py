"""The local Twilio-compatible server (dev/twilio_server.py) in its own process, recording when
each message arrived, so the benchmark's own Python threads cannot delay or distort the timing.

`python -m benchmarks.twilio_recorder --port P [--no-callbacks]`; GET /_bench/count (messages so far) and
GET /_bench/arrivals ([{sid, to, at}] with `at` in epoch seconds, the same clock as the benchmark's).
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import Any

from flask import jsonify
from werkzeug.serving import make_server

from benchmarks.harness import ACCOUNT_SID, AUTH_TOKEN
from dev.twilio_server import TwilioServerState, _QuietHandler, create_twilio_app


class RecordingState(TwilioServerState):
    """Stamps each stored message with the wall-clock instant the API accepted it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[str, str, float]] = []
        self._arrivals_lock = threading.Lock()

    def _store(self, **fields: Any) -> dict[str, Any]:
        rec = super()._store(**fields)
        at = time.time()
        with self._arrivals_lock:
            self.arrivals.append((rec["sid"], rec["to"], at))
        return rec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-callbacks", action="store_true", help="do not POST status callbacks")
    args = parser.parse_args(argv)
    state = RecordingState(ACCOUNT_SID, AUTH_TOKEN)
    state.deliver_callbacks = not args.no_callbacks
    app = create_twilio_app(state)

    # Registered on the app directly: these paths are outside /2010-04-01 and need no auth.
    def count() -> Any:
        with state._arrivals_lock:
            return jsonify({"count": len(state.arrivals)})

    def arrivals() -> Any:
        with state._arrivals_lock:
            rows = [{"sid": s, "to": to, "at": at} for s, to, at in state.arrivals]
        return jsonify(rows)

    app.add_url_rule("/_bench/count", "bench_count", count)
    app.add_url_rule("/_bench/arrivals", "bench_arrivals", arrivals)
    auth = app.before_request_funcs[None]
    # The API's auth hook must not apply to the two bench routes.
    app.before_request_funcs[None] = [_skip_bench(f) for f in auth]

    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=_QuietHandler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()


def _skip_bench(hook: Any) -> Any:
    from flask import request

    def wrapped() -> Any:
        if request.path.startswith("/_bench/"):
            return None
        return hook()

    return wrapped


if __name__ == "__main__":
    main()
