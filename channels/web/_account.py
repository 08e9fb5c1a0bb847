"""The signed-in person's own console sessions and API tokens; the admin sees everyone's.

Tokens follow the API's rules (``bot.api._tokens``): a person makes, lists and revokes their
own, with no scope their session lacks; the admin, anyone's. A new token is shown once, in
the answer to the form that made it, never in an address.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bot.api._auth import PERSON_SCOPES, console_session, sessions_of, tokens_of
from bot.api._tokens import lifetime_of, token_person, web_user_of
from bot.errors import BadInputError
from bot.events import ADMIN, utcnow
from bot.policy import Policy
from bot.store import SCOPES, ConsoleSession, Scope
from channels.web._render import page
from channels.web._signin import CSRF_FIELD, check_csrf, end_session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ADMIN_PRINCIPAL = ADMIN.principal


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (first value of each), after the CSRF check."""
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=20)
    form = {name: values[0] for name, values in raw.items()}
    check_csrf(request, form.get(CSRF_FIELD))
    return form


async def _current(request: Request) -> ConsoleSession | None:
    return await console_session(request)


def _is_admin(session: ConsoleSession) -> bool:
    return session.principal == ADMIN_PRINCIPAL


@router.get("/sessions")
async def sessions(request: Request) -> Response:
    """Your console sessions (everyone's for the admin), the current one marked."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    everyone = _is_admin(current)
    found = await sessions_of(request).list_sessions(
        principal=None if everyone else current.principal
    )
    return page(
        request,
        "sessions.html",
        nav="sessions",
        sessions=found,
        current=current.id,
        everyone=everyone,
        now=utcnow(),
        revoked=request.query_params.get("revoked"),
    )


@router.post("/sessions/{session_id}/revoke")
async def revoke_session(session_id: str, request: Request) -> Response:
    """Revoke one of your sessions (the admin: anyone's); revoking this one signs you out."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    await _form(request)
    if session_id == current.id:
        await end_session(request)
        return RedirectResponse("/login", status_code=303)
    owner = None if _is_admin(current) else current.principal
    done = await sessions_of(request).revoke(session_id, principal=owner)
    where = f"/sessions?revoked={session_id}" if done else "/sessions?revoked="
    return RedirectResponse(where, status_code=303)


EXPIRIES = ("7d", "30d", "90d", "never")
"""What the form offers; 90 days unless chosen."""


def _policy(request: Request) -> Policy:
    policy: Policy = request.app.state.ops.runtime.policy
    return policy


def _token_owner(request: Request, session: ConsoleSession) -> str | None:
    """The web user id whose tokens this session manages; ``None`` for the admin (all)."""
    me = session.identity
    return web_user_of(_policy(request), me) if me is not None and me != ADMIN else None


async def _tokens_page(
    request: Request,
    session: ConsoleSession,
    *,
    status: int = 200,
    created: tuple[Any, str] | None = None,
    problem: str | None = None,
) -> Response:
    everyone = _is_admin(session)
    owner = _token_owner(request, session)
    tokens = tokens_of(request)
    found = (
        await tokens.list_tokens(person=None if everyone else owner) if everyone or owner else []
    )
    return page(
        request,
        "tokens.html",
        status=status,
        nav="tokens",
        tokens=found,
        everyone=everyone,
        owner=owner,
        scopes=SCOPES if everyone else tuple(s for s in SCOPES if s in PERSON_SCOPES),
        expiries=EXPIRIES,
        created=created,
        problem=problem,
        revoked=request.query_params.get("revoked"),
    )


@router.get("/tokens")
async def tokens_page(request: Request) -> Response:
    """Your API tokens (everyone's for the admin): make one, revoke one."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    return await _tokens_page(request, current)


@router.post("/tokens")
async def create_token(request: Request) -> Response:
    """Make a token; the page that answers shows it once."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=20)
    check_csrf(request, next(iter(raw.get(CSRF_FIELD, [])), None))
    field = {name: values[0].strip() for name, values in raw.items()}
    everyone = _is_admin(current)
    wanted: list[Scope] = [s for s in SCOPES if s in raw.get("scope", [])]
    allowed = set(SCOPES) if everyone else PERSON_SCOPES
    try:
        if everyone:
            if not field.get("user"):
                raise BadInputError("name the person the token speaks for")
            person = token_person(request.app.state.ops.runtime.policy, field["user"])
        elif (owner := _token_owner(request, current)) is not None:
            person = owner
        else:
            raise BadInputError(
                "tokens speak for a person with a web: principal in the policy, and your"
                " sign-in names none: ask the admin to add you, or to make you a token"
            )
        if (
            not wanted
            or len(wanted) != len(set(raw.get("scope", [])))
            or not set(wanted) <= allowed
        ):
            raise BadInputError(f"pick scopes among {', '.join(sorted(allowed))}")
        tokens = tokens_of(request)
        lasts = lifetime_of(field.get("expires") or None)
        label = field.get("label") or None
        if label is not None and len(label) > 200:
            raise BadInputError("a label is at most 200 characters")
        made = await tokens.create(person, scopes=wanted, label=label, lasts=lasts)
    except BadInputError as exc:
        return await _tokens_page(request, current, status=400, problem=str(exc))
    return await _tokens_page(request, current, status=201, created=made)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request) -> Response:
    """Revoke one of your tokens (the admin: anyone's): it gets 401 from now on."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    await _form(request)
    owner = None if _is_admin(current) else _token_owner(request, current)
    done = (_is_admin(current) or owner is not None) and await tokens_of(request).revoke(
        token_id, person=owner
    )
    where = f"/tokens?revoked={token_id}" if done else "/tokens?revoked="
    return RedirectResponse(where, status_code=303)
