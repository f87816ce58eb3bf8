"""The stack's ceiling on this machine: a bare Flask handler answering the webhook's empty TwiML.

Served with the same command and settings as the real app
(`gunicorn -c config/gunicorn.conf.py benchmarks.bare_app:app`), so the ratio real/bare is what
pro-service's own work (signature check, lookup, INSERT, COMMIT, publish, logging) costs.
"""

from __future__ import annotations

from flask import Flask, Response

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

app = Flask(__name__)


@app.post("/twilio/sms")
def inbound_sms() -> Response:
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")
