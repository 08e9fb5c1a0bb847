"""The console's pages: sign-in, the chat, the thread list and a thread's timeline."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from bot.api import SESSION_SECRET, UserId, console_session, sessions_of, token_matches
from bot.app import Opsloop
from bot.errors import NotFoundError
from bot.events import HumanRequested, HumanResponded, ModelCalled, ThreadStatus
from channels.web._oidc import add_oidc_routes, logout_url, sso_on
from channels.web._render import STATIC_DIR, console_user, page, roles_of

__all__ = ["add_routes"]

router = APIRouter(include_in_schema=False)


class ActAs(BaseModel):
    """Whom the console acts as."""

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


async def _end_session(request: Request) -> None:
    """Revoke the session this cookie names, if any, and forget it."""
    secret = request.session.get(SESSION_SECRET)
    if isinstance(secret, str) and secret:
        await sessions_of(request).revoke_secret(secret)
    request.session.clear()
    request.state.console_session = None


async def _start_session(request: Request, method: str) -> Response:
    await _end_session(request)  # a fresh session: nothing carried over from before
    session, secret = await sessions_of(request).start(
        method=method, key_id=request.app.state.session_key_id
    )
    request.session[SESSION_SECRET] = secret
    request.state.console_session = session
    return RedirectResponse("/", status_code=303)


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


@router.get("/login")
async def login(request: Request, code: str | None = None, token: str | None = None) -> Response:
    """The sign-in page; ``?code=`` spends a one-time login code (the link ``opsloop run`` prints).

    An API token in the address is refused: it would stay in browser history and proxy logs.
    """
    if code is None and token is None and await _signed_in(request):
        return RedirectResponse("/", status_code=303)
    configured = request.app.state.settings.api_token is not None
    if code and configured and await sessions_of(request).use_login_code(code):
        return await _start_session(request, "login-code")
    # A used or bad link leaves a signed-in browser signed in: opening the start-up link
    # again must not sign its owner out.
    problem: LoginProblem | None = (
        "token-in-link" if token is not None else "code" if code is not None else None
    )
    return _login_page(request, problem)


@router.post("/login")
async def login_with_token(request: Request) -> Response:
    """Sign in with the API token, posted from the sign-in form."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    offered = (form.get("token") or [""])[0].strip()
    if offered and token_matches(request, offered):
        return await _start_session(request, "api-token")
    await _end_session(request)
    return _login_page(request, "token")


@router.get("/logout")
async def logout(request: Request) -> Response:
    """End the console session: revoked in the database, so its cookie is worthless.

    A session from single sign-on then goes on to the provider's end-session page, which
    sends the browser back here.
    """
    provider_logout = await logout_url(request)  # before the session (and its ID token) ends
    await _end_session(request)
    if provider_logout is not None:
        return RedirectResponse(provider_logout, status_code=303)
    return _login_page(request, None, signed_out=True)


async def _need_session(request: Request) -> None:
    """401 without a console session, before the body is even read."""
    if not await _signed_in(request):
        raise HTTPException(401, "authentication required: log in")


@router.post("/console/as", dependencies=[Depends(_need_session)])
async def act_as(body: ActAs, request: Request) -> Response:
    """Choose the web user id the console acts as."""
    request.session["user"] = body.user
    return JSONResponse(
        {"user": body.user, "principal": f"web:{body.user}", "roles": roles_of(request, body.user)}
    )


@router.get("/")
async def chat(request: Request) -> Response:
    """The chat: one thread at a time, like a chat-app thread."""
    if not await _signed_in(request):
        return _to_login()
    policy = _ops(request).runtime.policy
    data = {"user": console_user(request), "roles": policy.roles}
    return page(request, "chat.html", nav="chat", data=data)


@router.get("/threads")
async def threads(
    request: Request,
    status: ThreadStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Every thread, most recently active first."""
    if not await _signed_in(request):
        return _to_login()
    ops = _ops(request)
    found = await ops.store.list_threads(limit=limit, status=status)
    pending: dict[str, list[str]] = {}
    if any(t.status == ThreadStatus.PAUSED for t in found):
        for human in await ops.store.human_requests():
            pending.setdefault(human.thread_id, []).append(human.request.type)
    return page(
        request,
        "threads.html",
        nav="threads",
        threads=found,
        pending=pending,
        current=status.value if status else None,
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
    )


def add_routes(app: FastAPI) -> None:
    """Add the console's pages and static files to the HTTP app."""
    app.include_router(router)
    add_oidc_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
