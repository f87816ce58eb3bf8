"""API tokens (never their secrets)."""

from __future__ import annotations

from flask import g

from pro_service.models import ApiToken
from pro_service.services import tokens
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import audit, get_or_404, invalid
from pro_service.web.api.routing import ADMIN, route
from pro_service.web.common import db


@route(
    "GET",
    "/tokens",
    summary="List API tokens (never the secrets)",
    roles=ADMIN,
    tag="tokens",
    response=s.TokenList,
    errors=(401, 403),
)
def list_tokens() -> s.TokenList:
    return s.TokenList(tokens=[serialize.token(t) for t in tokens.list_tokens(db())])


@route(
    "POST",
    "/tokens",
    summary="Create an API token (shown once)",
    roles=ADMIN,
    tag="tokens",
    body=s.TokenIn,
    response=s.NewTokenOut,
    status=201,
    errors=(400, 401, 403),
)
def create_api_token(data: s.TokenIn) -> s.NewTokenOut:
    """For a staff member (`staff_id` or `staff_email`) or a client (`client` and `scopes`)."""
    if data.staff_id is not None and data.staff_email is not None:
        raise invalid("staff_email", "give staff_id or staff_email, not both")
    staff = data.staff_id if data.staff_id is not None else data.staff_email
    new = tokens.create_token(
        db(),
        name=data.name,
        staff=staff,
        client=data.client,
        scopes=data.scopes or (),
        requested_by=g.api_token.staff_id,
    )
    row: ApiToken = get_or_404(ApiToken, new.id, "token")
    audit("create_token", ("token", new.id), None, owner=tokens.actor_label(row))
    return s.NewTokenOut(**serialize.token(row).model_dump(), token=new.token)


@route(
    "DELETE", "/tokens/<int:token_id>", summary="Revoke an API token", roles=ADMIN, tag="tokens", status=204
)
def revoke_token(token_id: int) -> None:
    row: ApiToken = get_or_404(ApiToken, token_id, "token")
    if tokens.revoke(db(), token_id):  # revoking again changes nothing and records nothing
        audit("revoke_token", ("token", token_id), None, owner=tokens.actor_label(row))
