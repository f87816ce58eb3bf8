"""The one error set of every use case. A service raises these; each blueprint maps them once (the REST API
to 400/409/404 JSON, a staff form to the message at its field, the CLI to a line on stderr), so no caller
recognises an error by its text.

- `Invalid(field, message)`: a value that cannot be accepted; `field` names the form field or API property.
- `Conflict(message)`: the request is valid but clashes with what exists (a duplicate name, a state that
  no longer allows it).
- `NotFound(what, ident)`: no such row (or none the caller may see).

Older, named errors (EnrolmentError, AdminError, ...) are subclasses, kept so their callers read well.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the error set: a use case refused, with a message a person can act on (no PHI)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ServiceError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Conflict(ServiceError, ValueError):
    """Valid, but it clashes with what exists. `field`, when known, is where a form shows it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(ServiceError, LookupError):
    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"no {what} {ident}")
        self.what, self.ident = what, ident
