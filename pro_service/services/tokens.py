"""API tokens: shown once, stored as a SHA-256 hash (a token is 256 random bits, so no slow hash needed).

Every token has one owner (issue 15: a person behind every action):

- **a staff member**: the token acts with that person's *current* role and care teams (a nurse's token sees
  what the nurse sees on the dashboard, services/access.py) and is refused once the person is deactivated;
- **a named integration client** (an EHR interface, a lab system): it may do only what its scopes say, and
  sees every patient within them (an integration serves the whole hospital, not one care team):

  | scope | allows |
  |---|---|
  | `read` | every read of the API and FHIR (patients, check-ins, alerts, messages, labs, teams, rotas) |
  | `labs:write` | lab results in: FHIR `Observation` and transaction `Bundle`, HL7 v2 ORU^R01 |
  | `enrolment` | enrol and update patients, their schedules and profiles, start a check-in |
  | `admin` | administration (staff, care teams, rotas, tokens, the audit log) and acting on alerts |

Audit rows name the owner: `staff:12 (token 7)` or `client:EHR-interface (token 7)`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from pro_service.models import ApiToken, StaffRole, StaffUser, utcnow
from pro_service.services.audit import record
from pro_service.services.errors import Invalid

PREFIX = "pro_"

READ = "read"
LABS_WRITE = "labs:write"
ENROLMENT = "enrolment"
ADMIN = "admin"
SCOPES: tuple[str, ...] = (READ, LABS_WRITE, ENROLMENT, ADMIN)  # also the order they are stored in

CLIENT_NAME_MAX = 60
MAX_ID = 2**31 - 1
_CLIENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]*[A-Za-z0-9._-])?")
_ACTOR = re.compile(r"(?P<owner>(?:staff|client):.+) \(token (?P<token>[0-9]+)\)")


class TokenError(Invalid):
    """A token request that cannot be honoured: `field` names what to fix (API 400, admin form error)."""

    def __str__(self) -> str:
        return self.message  # as the CLI prints it


class TokenRefused(Exception):
    """The bearer token does not authenticate (unknown, revoked, or its owner is deactivated): 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str


# ----------------------------------------------------------------------------------------- pure rules
def parse_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """Known scopes, deduplicated, in SCOPES order; TokenError naming the first unknown one."""
    wanted = {v.strip() for v in values if v.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise TokenError("scopes", f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def scopes_of(token: ApiToken) -> frozenset[str]:
    return frozenset(token.scopes.split())


def clean_client_name(text: str) -> str:
    """Letters, digits, spaces, `.`, `_` and `-`, at most 60: it is printed in every audit row it writes."""
    name = " ".join(text.split())
    if not name:
        raise TokenError("client", "name the integration client (e.g. EHR-interface)")
    if len(name) > CLIENT_NAME_MAX or not _CLIENT_NAME.fullmatch(name):
        raise TokenError(
            "client",
            f"a client name is 1-{CLIENT_NAME_MAX} letters, digits, spaces, '.', '_' or '-' "
            "(starting with a letter or digit)",
        )
    return name


def actor_label(token: ApiToken) -> str:
    """Who the audit log says acted: the person or the client, and through which token."""
    if token.staff_id is not None:
        return f"staff:{token.staff_id} (token {token.id})"
    return f"client:{token.client_name} (token {token.id})"


def actor_staff_id(actor: str) -> int | None:
    """The staff id an audit actor names (`staff:12`, `staff:12 (token 7)`); None for anything else."""
    found = _ACTOR.fullmatch(actor)
    owner = found.group("owner") if found else actor
    kind, _, number = owner.partition(":")
    if kind == "staff" and number.isascii() and number.isdigit() and len(number) <= 12:
        return int(number)
    return None


def actor_token_id(actor: str) -> int | None:
    """The token an audit actor names (`… (token 7)`, or the legacy `token:7`)."""
    found = _ACTOR.fullmatch(actor)
    if found:
        return int(found.group("token"))
    kind, _, number = actor.partition(":")
    if kind == "token" and number.isascii() and number.isdigit() and len(number) <= 12:
        return int(number)
    return None


def owner_label(token: ApiToken) -> str:
    """For people: "Kim Lee (nurse)" or "client EHR-interface: read, labs:write"."""
    if token.staff is not None:
        return f"{token.staff.name} ({token.staff.role.value})"
    granted = ", ".join(s for s in SCOPES if s in scopes_of(token))
    return f"client {token.client_name}: {granted or 'no scopes'}"


def refusal(token: ApiToken, roles: Sequence[StaffRole], scope: str) -> str | None:
    """Why `token` may not use a route open to staff `roles` and to clients holding `scope` (None: it may).

    A person's token acts with the person's current role; a client's with its scopes only."""
    if token.staff is not None:
        if token.staff.role in roles:
            return None
        return (
            f"this needs the role {' or '.join(r.value for r in roles)}; "
            f"the token's owner is {token.staff.role.value}"
        )
    if scope in scopes_of(token):
        return None
    held = " ".join(token.scopes.split()) or "no scope"
    return f"this needs the scope {scope!r}; client {token.client_name!r} has {held}"


# ------------------------------------------------------------------------------------------ use cases
def find_staff(session: Session, who: int | str) -> StaffUser:
    """By id or email (any case); TokenError when nobody or a deactivated account."""
    text = str(who).strip()
    staff: StaffUser | None = None
    if text.isascii() and text.isdigit():
        if len(text) <= 10 and int(text) <= MAX_ID:  # beyond an integer column: nobody, not a database error
            staff = session.get(StaffUser, int(text))
    elif "\x00" not in text and len(text) <= 254:
        staff = session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == text.lower()))
    if staff is None:
        raise TokenError("staff", f"no staff member {who}")
    if not staff.active:
        raise TokenError("staff", f"staff member {staff.email} is deactivated")
    return staff


def create_token(
    session: Session,
    *,
    name: str,
    staff: int | str | None = None,
    client: str | None = None,
    scopes: Iterable[str] = (),
    requested_by: int | Literal["operator"] | None,
) -> NewToken:
    """A token for a staff member (id or email) or for a named client with its scopes, never both.

    `requested_by` is the staff id of whoever asks (None: a client token asking), or "operator" (the CLI,
    the demo seed). A person's token is made only by that person or an operator: an administrator who could
    mint a token for a colleague, and read its secret, could act in the colleague's name, and every later
    action would be audited as theirs."""
    label = " ".join(name.split())
    if not label or len(label) > 120 or not label.isprintable():
        raise TokenError("name", "a token name is 1-120 characters (what it is for, e.g. 'ward laptop')")
    wanted = list(scopes)
    if (staff is None) == (client is None):
        raise TokenError(
            "owner",
            "a token belongs to a staff member (staff id or email) or to an integration client (client name "
            "and scopes): give exactly one",
        )
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=label, token_hash=_hash(token), prefix=token[:10])
    if staff is not None:
        if any(s.strip() for s in wanted):
            raise TokenError(
                "scopes", "a staff member's token acts with their role and care teams; scopes are for clients"
            )
        person = find_staff(session, staff)
        if requested_by != "operator" and requested_by != person.id:
            raise TokenError(
                "staff",
                "a person's token is made by that person (signed in) or by an operator (pro-service "
                "create-token): anyone else could act in their name",
            )
        row.staff_id, row.scopes = person.id, ""
    else:
        assert client is not None
        row.client_name = clean_client_name(client)
        granted = parse_scopes(wanted)
        if not granted:
            raise TokenError("scopes", f"a client needs at least one scope: {', '.join(SCOPES)}")
        row.scopes = " ".join(granted)
    session.add(row)
    session.flush()
    return NewToken(row.id, token)


def authenticate(session: Session, token: str) -> ApiToken:
    """The live token with its owner loaded; TokenRefused when unknown, revoked or its person deactivated."""
    if not token.startswith(PREFIX) or len(token) > 200:
        raise TokenRefused("unknown or revoked token")
    row = session.scalar(
        select(ApiToken).options(joinedload(ApiToken.staff)).where(ApiToken.token_hash == _hash(token))
    )
    if row is None or row.revoked_at is not None:
        raise TokenRefused("unknown or revoked token")
    if row.staff is not None and not row.staff.active:
        raise TokenRefused("the token's owner is deactivated")
    if row.staff is None and row.client_name is None:  # the schema forbids it; never act for nobody
        raise TokenRefused("the token has no owner")
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).options(joinedload(ApiToken.staff)).order_by(ApiToken.id)))


def revoke(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


# --- use cases for the administration pages: each owns its transaction --------------------------------------
def issue(
    session: Session,
    *,
    name: str,
    staff: int | str | None,
    client: str | None,
    scopes: Iterable[str],
    requested_by: int,
    actor: str,
    ip: str | None,
) -> NewToken:
    """Make a token (create_token's rules) and record who made it for whom, in one transaction. On a
    TokenError nothing is kept."""
    try:
        new = create_token(
            session, name=name, staff=staff, client=client, scopes=scopes, requested_by=requested_by
        )
    except TokenError:
        session.rollback()
        raise
    row = session.get(ApiToken, new.id)
    owner = actor_label(row) if row is not None else ""
    record(
        session, actor=actor, action="create_token", subject=("token", new.id), ip=ip, detail={"owner": owner}
    )
    session.commit()
    return new


def withdraw(session: Session, token_id: int, *, actor: str, ip: str | None) -> bool:
    """Revoke a live token (it stops working at once), recorded; False when it was already revoked."""
    row = session.get(ApiToken, token_id)
    if row is None or not revoke(session, token_id):
        return False
    record(
        session,
        actor=actor,
        action="revoke_token",
        subject=("token", token_id),
        ip=ip,
        detail={"owner": actor_label(row)},
    )
    session.commit()
    return True
