"""The inbound fast path: POST /twilio/sms answered before Flask sees it.

Store before acknowledge: `handler.InboundSmsHandler` (a WSGI handler in front of Flask) checks Twilio's
signature and the form, has `store` commit the message, and only then answers 200, so a reply Twilio was
told we have is on disk. It is not a Flask blueprint (Flask's request machinery cost more CPU than the
route's own work) and not a service (its store runs on its own autocommit pool, not a request session).
"""
