"""Per-person API tokens over HTTP: a person manages their own; admin anyone's.

The same rules as ``opsloop tokens``: a token speaks for a person the policy knows (or an
explicit ``web:`` id), and nobody but admin hands out a scope they do not hold themselves.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bot.api._auth import Caller, need, require_auth, tokens_of
from bot.errors import BadInputError
from bot.events import ADMIN, Identity
from bot.policy import Policy
from bot.store import DEFAULT_SCOPES, DEFAULT_TOKEN_TTL, ApiToken, Scope

__all__ = ["lifetime_of", "router", "token_json", "token_person"]

router = APIRouter(prefix="/api", dependencies=[Depends(require_auth)], tags=["tokens"])

_DURATION = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def lifetime_of(text: str | None) -> timedelta | None:
    """How long a token lasts: ``30d``, ``12h``, ``2w``, ``90m``, or ``never`` (``None``).

    Raises:
        BadInputError: anything else, or a zero duration.
    """
    if text is None:
        return DEFAULT_TOKEN_TTL
    if text.strip().lower() == "never":
        return None
    match = _DURATION.match(text.strip().lower())
    if match is None or int(match[1]) == 0:
        raise BadInputError(f"expiry {text!r}: give a duration such as 30d, 12h, 2w, or 'never'")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def token_person(policy: Policy, user: str) -> str:
    """The web user id a token for ``user`` speaks as.

    ``user`` is a person named in the policy (who must have a ``web:`` principal), a web
    principal the policy names, or an explicit ``web:<id>`` for someone it does not know.

    Raises:
        BadInputError: an unknown person, or one the policy gives no web principal.
    """
    user = user.strip()
    if user.startswith("web:"):
        if re.fullmatch(r"[^\s\x00-\x1f\x7f:]{1,128}", user[4:]) is None:
            raise BadInputError(f"{user!r} is not a web user id")
        return user[4:]
    if user in policy.people:
        web = sorted(p[4:] for p in policy.principals_of(user) if p.startswith("web:"))
        if not web:
            raise BadInputError(
                f"person {user!r} has no web: principal in the policy, so a token could not"
                f" speak as them: add 'web:{user}' to their principals"
            )
        return user if user in web else web[0]
    if f"web:{user}" in policy.known_principals():
        return user
    raise BadInputError(
        f"unknown person {user!r}: the policy names no such person nor web:{user}"
        f" (name them in the policy, or say web:{user} to mean that web user id)"
    )


def token_json(token: ApiToken, now: datetime) -> dict[str, Any]:
    """A token as listed (never its secret), with its status at ``now``."""
    return {**token.model_dump(mode="json"), "status": token.status(now)}


class NewToken(BaseModel):
    """A token to make."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, min_length=1, max_length=132)
    """Whom it speaks for: yourself (the default); anyone only for admin."""
    scopes: tuple[Scope, ...] = Field(default=DEFAULT_SCOPES, min_length=1)
    """What it may do; none you do not hold yourself (admin excepted)."""
    expires: str | None = Field(default=None, max_length=16)
    """``30d``, ``12h``, ``2w``, ``90m`` or ``never``; 90 days by default."""
    label: str | None = Field(default=None, max_length=200)
    """What it is for."""


def web_user_of(policy: Policy, who: Identity) -> str | None:
    """The web user whose tokens ``who`` manages; ``None`` if none.

    A web user manages their own; another principal (an SSO sign-in, say) those of the web
    user of the person the policy says it is.
    """
    if who.channel == "web":
        return who.user_id
    person = policy.person_of(who.principal)
    if person not in policy.people:
        return None
    try:
        return token_person(policy, person)
    except BadInputError:
        return None


def _own_person(caller: Caller, request: Request) -> str | None:
    return web_user_of(request.app.state.ops.runtime.policy, caller.identity)


@router.get("/tokens")
async def list_tokens(
    request: Request,
    caller: Annotated[Caller, Depends(need("read"))],
    user: str | None = None,
    include_ended: Annotated[bool, Query(alias="all")] = False,
) -> dict[str, Any]:
    """Your tokens (admin: everyone's, or ``user``'s); active ones unless ``all``."""
    person = _own_person(caller, request)
    if caller.is_admin:
        person = token_person(request.app.state.ops.runtime.policy, user) if user else None
    elif person is None or (user is not None and user not in {person, f"web:{person}"}):
        raise HTTPException(403, "only admin may list other people's tokens")
    tokens = tokens_of(request)
    found = await tokens.list_tokens(person=person, include_ended=include_ended)
    return {"tokens": [token_json(t, tokens.clock()) for t in found]}


@router.post("/tokens", status_code=201)
async def create_token(
    body: NewToken, request: Request, caller: Annotated[Caller, Depends(need("act"))]
) -> dict[str, Any]:
    """Make a token; the answer carries it once (``token``), and only its hash is kept."""
    person = _own_person(caller, request)
    if body.user is not None:
        named = token_person(request.app.state.ops.runtime.policy, body.user)
        if named != person and not caller.is_admin:
            raise HTTPException(403, "only admin may make tokens for other people")
        person = named
    if person is None:
        who = "the admin token" if caller.identity == ADMIN else caller.identity.principal
        raise HTTPException(400, f"{who} is no web user: name the token's 'user'")
    missing = set(body.scopes) - caller.scopes
    if missing and not caller.is_admin:
        raise HTTPException(403, f"you may not hand out scopes you lack: {sorted(missing)}")
    tokens = tokens_of(request)
    lasts = lifetime_of(body.expires)
    token, secret = await tokens.create(person, scopes=body.scopes, label=body.label, lasts=lasts)
    return {"token": secret, **token_json(token, tokens.clock())}


@router.delete("/tokens/{token_id}")
async def revoke_token(
    token_id: str, request: Request, caller: Annotated[Caller, Depends(need("act"))]
) -> dict[str, Any]:
    """Revoke a token: your own (admin: anyone's). It stops working at once."""
    person = None if caller.is_admin else _own_person(caller, request)
    if person is None and not caller.is_admin:
        raise HTTPException(403, "only admin may revoke other people's tokens")
    tokens = tokens_of(request)
    if not await tokens.revoke(token_id, person=person):
        raise HTTPException(404, f"no active token {token_id} of yours")
    token = await tokens.get(token_id)
    return token_json(token, tokens.clock()) if token else {"id": token_id}
