"""Single sign-on (OpenID Connect): who the identity provider says signed in, mapped to a staff account.

The web (web/auth.py) runs the redirect dance with Authlib (state, nonce, the ID token's signature, issuer,
audience and expiry are Authlib's checks); this module decides what the verified claims mean here:

- **Groups → access.** The `groups` claim is matched against OIDC_GROUP_MAP: the role is the highest any
  mapped group gives (admin over nurse) and the care teams are the union of theirs. No mapped group: no
  access (`SsoRefused`), whatever the account held before.
- **Just-in-time provisioning.** The first sign-in creates the account (no password: it can only sign in
  through the provider); an existing account with the same email and no provider identity yet is linked.
  Every sign-in sets role and care teams from the groups: the provider is the source of truth. The caller
  audits what changed.
- **A deactivated account stays out**: deactivation here wins over the provider.
- **The second factor is the provider's**: require MFA there (docs/security.md); MFA_REQUIRED_ROLES applies
  to password sign-in only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pro_service.models import CareTeam, CareTeamMember, StaffRole, StaffUser
from pro_service.services.audit import record

log = logging.getLogger(__name__)

_RANK = {StaffRole.NURSE: 1, StaffRole.ADMIN: 2}


class SsoRefused(Exception):
    """The provider's user may not sign in here; `reason` is stored in the audit, the message shown."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LostAccess(SsoRefused):
    """A linked account whose provider groups no longer map to a role here: access ends (`end_access`)."""

    def __init__(self, staff: StaffUser) -> None:
        super().__init__(
            "no_mapped_group",
            "Your hospital account is no longer in a group that may use this service, so your access here "
            "has ended. Ask your administrator if this is a mistake.",
        )
        self.staff = staff


def end_access(session: Session, staff: StaffUser, *, ip: str | None, now: datetime) -> int:
    """The identity provider took the person out of every mapped group: deactivate the account (its
    sessions end and its API tokens stop working), recorded, in one transaction. How many sessions ended."""
    from pro_service.services import staff as staff_svc

    gone = staff_svc.set_active(session, staff, False, now=now)
    record(
        session,
        actor=f"sso:{staff.oidc_subject}"[:64],
        action="deactivate_staff",
        subject=("staff", staff.id),
        ip=ip,
        at=now,
        detail={
            "reason": "no_mapped_group",
            "sessions_ended": gone.sessions_ended,
            "shifts_off_rota": gone.shifts_off_rota,
        },
    )
    session.commit()
    return gone.sessions_ended


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str
    name: str
    groups: tuple[str, ...]
    email_verified: bool | None = None


def identity_from_claims(issuer: str, claims: Mapping[str, Any]) -> Identity:
    """The claims of a verified ID token (and userinfo) as an Identity; SsoRefused when unusable."""
    subject = claims.get("sub")
    email = claims.get("email")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SsoRefused("no_subject", "Your hospital account did not say who you are (no subject).")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise SsoRefused("no_email", "Your hospital account has no email address this service can use.")
    raw_groups = claims.get("groups", [])
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    groups = tuple(g for g in raw_groups if isinstance(g, str)) if isinstance(raw_groups, list) else ()
    name = claims.get("name") or " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if isinstance(claims.get(k), str)
    )
    verified = claims.get("email_verified")
    return Identity(
        issuer=issuer,
        subject=subject,
        email=email.strip().lower(),
        name=(str(name).strip() or email)[:120],
        groups=groups,
        email_verified=verified if isinstance(verified, bool) else None,
    )


def mapped_access(
    groups: Iterable[str], group_map: Mapping[str, tuple[str, tuple[str, ...]]]
) -> tuple[StaffRole, tuple[str, ...]] | None:
    """(role, care team names) the groups give, or None when no group is mapped. Pure."""
    role: StaffRole | None = None
    teams: list[str] = []
    for group in groups:
        if group not in group_map:
            continue
        role_name, group_teams = group_map[group]
        candidate = StaffRole(role_name)
        if role is None or _RANK[candidate] > _RANK[role]:
            role = candidate
        teams.extend(t for t in group_teams if t not in teams)
    return None if role is None else (role, tuple(teams))


def _find(session: Session, identity: Identity) -> StaffUser | None:
    staff = session.scalar(
        select(StaffUser).where(
            StaffUser.oidc_issuer == identity.issuer, StaffUser.oidc_subject == identity.subject
        )
    )
    if staff is not None:
        return staff
    by_email = session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == identity.email))
    if by_email is None:
        return None
    if by_email.oidc_subject is not None:
        # Another provider account already signs in as this person: never hand the account over.
        raise SsoRefused(
            "identity_conflict", "This email belongs to an account linked to another hospital sign-in."
        )
    if identity.email_verified is not True:
        # Linking hands over the account (its history, its tokens, its role): only on the provider's word
        # that the address is this user's. Many providers leave the claim out; an administrator then links.
        raise SsoRefused(
            "email_unverified",
            "An account with your email already exists here, and your hospital sign-in does not confirm "
            "the address is yours. Ask an administrator to link the two.",
        )
    return by_email


def sign_in(
    session: Session, identity: Identity, group_map: Mapping[str, tuple[str, tuple[str, ...]]]
) -> tuple[StaffUser, dict[str, Any]]:
    """The staff account this identity signs in as, created or brought up to date from its groups, and
    what changed (for the audit: {"created": True} or the fields before → after). SsoRefused otherwise.
    The caller commits."""
    access = mapped_access(identity.groups, group_map)
    staff = _find(session, identity)
    if staff is not None and not staff.active:
        raise SsoRefused("deactivated", "Your account here is deactivated. Ask an administrator.")
    if access is None:
        if staff is not None and staff.oidc_subject == identity.subject:
            raise LostAccess(staff)
        raise SsoRefused(
            "no_mapped_group",
            "Your hospital account is not in a group that may use this service. Ask your administrator "
            "to add you to the right group.",
        )
    role, team_names = access
    changes: dict[str, Any] = {}
    if staff is None:
        staff = StaffUser(email=identity.email, name=identity.name, role=role, password_hash=None)
        session.add(staff)
        changes["created"] = True
    elif staff.role != role:
        changes["role"] = [str(staff.role), str(role)]
        staff.role = role
    if staff.oidc_subject is None:
        if "created" not in changes:
            changes["linked"] = True
        staff.oidc_issuer, staff.oidc_subject = identity.issuer, identity.subject
    session.flush()
    teams_changed = _set_teams(session, staff, team_names)
    if teams_changed is not None:
        changes["teams"] = teams_changed
    return staff, changes


def _set_teams(session: Session, staff: StaffUser, names: tuple[str, ...]) -> list[str] | None:
    """Make the account's care teams exactly those named (that exist); the new names if they changed."""
    rows = session.execute(select(CareTeam.id, CareTeam.name).where(CareTeam.name.in_(names))).all()
    wanted: dict[int, str] = {int(row[0]): str(row[1]) for row in rows}
    missing = sorted(set(names) - set(wanted.values()))
    if missing:
        log.warning("OIDC_GROUP_MAP names care teams that do not exist: %s", ", ".join(missing))
    current = set(
        session.scalars(select(CareTeamMember.care_team_id).where(CareTeamMember.staff_id == staff.id))
    )
    if current == set(wanted):
        return None
    stale = current - set(wanted)
    if stale:
        session.execute(
            delete(CareTeamMember).where(
                CareTeamMember.staff_id == staff.id, CareTeamMember.care_team_id.in_(stale)
            )
        )
    for team_id in set(wanted) - current:
        session.add(CareTeamMember(care_team_id=team_id, staff_id=staff.id))
    session.flush()
    return sorted(wanted.values())
