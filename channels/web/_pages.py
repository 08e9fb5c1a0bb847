"""The console's pages: sign-in, the chat, the thread list and a thread's timeline.

The account pages (sessions, tokens) and the Tools page have modules of their own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from bot.api import UserId, console_session, sessions_of, token_matches
from bot.app import Opsloop
from bot.errors import BadInputError, NotFoundError
from bot.events import ADMIN, HumanRequested, HumanResponded, Identity, ModelCalled, ThreadStatus
from bot.store import MAX_PAGE, thread_page
from channels.web import _account, _tools
from channels.web._oidc import add_oidc_routes, logout_url, sso_on
from channels.web._render import STATIC_DIR, page, roles_of, signed_in_as
from channels.web._signin import check_csrf, end_session, sign_in

__all__ = ["add_routes"]

router = APIRouter(include_in_schema=False)


class ActAs(BaseModel):
    """Whom the console acts as (development identities only)."""

    model_config = ConfigDict(extra="forbid")

    user: UserId
    """A web user id; policy names the person ``web:<user>``."""


async def _signed_in(request: Request) -> bool:
    return await console_session(request) is not None


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def _ops(request: Request) -> Opsloop:
    ops: Opsloop = request.app.state.ops
    return ops


LoginProblem = Literal["code", "token", "token-in-link"]


def _login_page(
    request: Request, problem: LoginProblem | None, *, signed_out: bool = False
) -> Response:
    configured = request.app.state.settings.api_token is not None
    return page(
        request,
        "login.html",
        status=401 if problem is not None or not configured else 200,
        problem=problem,
        configured=configured,
        signed_out=signed_out,
        sso=sso_on(request),
    )


def _link_identity(principal: str) -> Identity:
    """The person a one-time login link names, authenticated by that link."""
    channel, _, user_id = principal.partition(":")
    return Identity(channel=channel, user_id=user_id, display_name=user_id, auth="login-link")


@router.get("/login")
async def login(request: Request, code: str | None = None, token: str | None = None) -> Response:
    """The sign-in page; ``?code=`` spends a one-time login code (``opsloop login --as``).

    An API token in the address is refused: it would stay in browser history and proxy logs.
    """
    if code is None and token is None and await _signed_in(request):
        return RedirectResponse("/", status_code=303)
    configured = request.app.state.settings.api_token is not None
    if code and configured and (principal := await sessions_of(request).use_login_code(code)):
        return await sign_in(request, _link_identity(principal))
    # A used or bad link leaves a signed-in browser signed in: opening the start-up link
    # again must not sign its owner out.
    problem: LoginProblem | None = (
        "token-in-link" if token is not None else "code" if code is not None else None
    )
    return _login_page(request, problem)


@router.post("/login")
async def login_with_token(request: Request) -> Response:
    """Sign in with the API token, posted from the sign-in form: as the admin, not a person."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    offered = (form.get("token") or [""])[0].strip()
    if offered and token_matches(request, offered):
        return await sign_in(request, ADMIN)
    await end_session(request)
    return _login_page(request, "token")


@router.get("/logout")
async def logout(request: Request) -> Response:
    """End the console session: revoked in the database, so its cookie is worthless.

    A session from single sign-on then goes on to the provider's end-session page, which
    sends the browser back here.
    """
    provider_logout = await logout_url(request)  # before the session (and its ID token) ends
    await end_session(request)
    if provider_logout is not None:
        return RedirectResponse(provider_logout, status_code=303)
    return _login_page(request, None, signed_out=True)


async def _need_session(request: Request) -> None:
    """401 without a console session, before the body is even read."""
    if not await _signed_in(request):
        raise HTTPException(401, "authentication required: log in")


async def _need_dev_identities(request: Request) -> None:
    """404 unless OPSLOOP_DEV_IDENTITIES is on: otherwise there is no switch at all."""
    if not request.app.state.settings.dev_identities:
        raise HTTPException(404, "not found")


@router.post("/console/as", dependencies=[Depends(_need_dev_identities), Depends(_need_session)])
async def act_as(body: ActAs, request: Request) -> Response:
    """Development identities only: act as the web user ``body.user`` (recorded as ``dev``)."""
    session = await console_session(request)
    assert session is not None  # _need_session
    check_csrf(request, request.headers.get("x-csrf-token"))
    who = Identity(channel="web", user_id=body.user, display_name=body.user)
    request.state.console_session = await sessions_of(request).act_as(session.id, who, "dev")
    return JSONResponse(
        {"user": body.user, "principal": who.principal, "roles": roles_of(request, who)}
    )


@router.get("/")
async def chat(request: Request) -> Response:
    """The chat: one thread at a time, like a chat-app thread."""
    if not await _signed_in(request):
        return _to_login()
    policy = _ops(request).runtime.policy
    me = signed_in_as(request)
    data = {
        "principal": me.principal if me else None,
        "user": me.label if me else None,
        "roles": policy.roles,
    }
    return page(request, "chat.html", nav="chat", data=data)


@router.get("/threads")
async def threads(
    request: Request,
    status: ThreadStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The threads, most recently active first, a page at a time."""
    if not await _signed_in(request):
        return _to_login()
    ops = _ops(request)
    try:
        found = await thread_page(ops.store.db, limit=limit, status=status, cursor=cursor)
    except BadInputError:  # a stale or mangled link: start again from the top
        return RedirectResponse("/threads" + (f"?status={status.value}" if status else ""), 303)
    paused = [t.id for t in found.items if t.status == ThreadStatus.PAUSED]
    older = None
    if found.next_cursor:
        query = {"status": status.value} if status else {}
        older = "/threads?" + urlencode({**query, "limit": limit, "cursor": found.next_cursor})
    return page(
        request,
        "threads.html",
        nav="threads",
        threads=found.items,
        pending=await ops.store.pending_kinds(paused),
        current=status.value if status else None,
        older=older,
    )


@router.get("/threads/{thread_id}")
async def timeline(thread_id: str, request: Request) -> Response:
    """One thread's whole event log, with what each model call cost."""
    if not await _signed_in(request):
        return _to_login()
    ops = _ops(request)
    try:
        thread = await ops.store.load_thread(thread_id)
    except NotFoundError:
        return page(request, "not_found.html", status=404, nav="threads", thread_id=thread_id)
    responses = {
        e.request_id: (seq, e)
        for seq, e in enumerate(thread.events, start=1)
        if isinstance(e, HumanResponded)
    }
    pending = [
        e.type
        for e in thread.events
        if isinstance(e, HumanRequested) and e.request_id not in responses
    ]
    calls = [e for e in thread.events if isinstance(e, ModelCalled)]
    totals: dict[str, Any] = {
        "calls": len(calls),
        "input": sum(c.usage.input_tokens for c in calls),
        "output": sum(c.usage.output_tokens for c in calls),
        "cached": sum(c.usage.cached_tokens for c in calls),
        "cost": sum(c.cost_usd for c in calls),
        "latency": sum(c.latency_ms for c in calls),
    }
    return page(
        request,
        "timeline.html",
        nav="threads",
        thread=thread,
        events=list(enumerate(thread.events, start=1)),
        responses=responses,
        pending=pending,
        totals=totals,
        tool_sources=_tools.tool_sources(ops),
    )


def add_routes(app: FastAPI) -> None:
    """Add the console's pages and static files to the HTTP app."""
    app.include_router(router)
    app.include_router(_account.router)
    app.include_router(_tools.router)
    add_oidc_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
