"""The HTTP app: the lifecycle API, webhooks, health checks, and routes plugins add."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot.api import _hooks, _routes, _tokens
from bot.api._auth import (
    SESSION_SECRET,
    Caller,
    console_session,
    key_id,
    need,
    require_auth,
    session_identity,
    session_key,
    sessions_of,
    speaker,
    token_matches,
)
from bot.api._limits import BodyLimit, is_timestamp, json_depth
from bot.api._routes import UserId, web_identity
from bot.app import Opsloop, ThreadBusyError
from bot.config import Settings
from bot.errors import (
    AuthenticationError,
    BadInputError,
    ConfigError,
    DecisionRefusedError,
    NotFoundError,
    UserFacingError,
)
from bot.plugins import ChannelContext, Dispatcher, Plugin, load_plugins
from bot.store import ConsoleSessions

__all__ = [
    "SESSION_SECRET",
    "Caller",
    "UserId",
    "console_session",
    "create_app",
    "dispatcher_from_plugins",
    "is_timestamp",
    "json_depth",
    "need",
    "require_auth",
    "session_identity",
    "sessions_of",
    "speaker",
    "token_matches",
    "web_identity",
]

log = logging.getLogger(__name__)


def dispatcher_from_plugins(settings: Settings, plugins: tuple[Plugin, ...]) -> Dispatcher:
    """The dispatcher the installed plugins provide (the workers)."""
    for plugin in plugins:
        if plugin.dispatcher is not None:
            return plugin.dispatcher(settings)
    raise ConfigError("no plugin provides a dispatcher: is the workers package installed?")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(
    settings: Settings,
    *,
    ops: Opsloop | None = None,
    dispatcher: Dispatcher | None = None,
    plugins: tuple[Plugin, ...] | None = None,
) -> FastAPI:
    """Build the HTTP app. Parts not given are built from ``settings`` at start-up."""
    plugins = load_plugins() if plugins is None else plugins

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = ops is None
        app.state.ops = ops or await Opsloop.from_settings(settings)
        app.state.dispatcher = dispatcher or dispatcher_from_plugins(settings, plugins)
        app.state.channel = ChannelContext(ops=app.state.ops, dispatcher=app.state.dispatcher)
        # Sessions signed in under another key (the token changed) can never verify again.
        await ConsoleSessions(app.state.ops.store.db).revoke_other_keys(app.state.session_key_id)
        try:
            yield
        finally:
            if own:
                await app.state.ops.aclose()

    app = FastAPI(
        title="opsloop",
        summary="Launch, inspect, pause, resume and answer opsloop threads.",
        version="0.1.0",
        lifespan=lifespan,
        # Served below behind the same authentication as the API itself.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    token = settings.api_token.get_secret_value() if settings.api_token else None
    cookie_key = session_key(token)
    app.state.session_key_id = key_id(cookie_key)
    app.add_middleware(
        SessionMiddleware,
        secret_key=cookie_key,
        same_site="strict",
        https_only=settings.console_url.startswith("https://"),
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return _error(422, "invalid request", details=details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(UserFacingError)
    async def refused(request: Request, exc: UserFacingError) -> JSONResponse:
        status = {
            NotFoundError: 404,
            DecisionRefusedError: 409,
            BadInputError: 400,
            AuthenticationError: 401,
        }
        return _error(status.get(type(exc), 400), str(exc))

    @app.exception_handler(ThreadBusyError)
    async def busy(request: Request, exc: ThreadBusyError) -> JSONResponse:
        return _error(409, f"{exc}; try again in a moment")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """The database and the broker answer."""
        checks: dict[str, str] = {}
        try:
            async with request.app.state.ops.store.db.session() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(asyncio.to_thread(request.app.state.dispatcher.ping), 5)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        error = {} if ready else {"error": "not ready"}
        return JSONResponse({"ready": ready, **checks, **error}, status_code=200 if ready else 503)

    _add_docs(app)
    app.include_router(_routes.router)
    app.include_router(_tokens.router)
    app.include_router(_hooks.router)
    for plugin in plugins:
        if plugin.routes is not None:
            plugin.routes(app)
    return app


def _add_docs(app: FastAPI) -> None:
    """The OpenAPI schema and the interactive docs: a token or a console session, like the API."""
    authenticated = [Depends(require_auth)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=authenticated)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=authenticated)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False, dependencies=authenticated)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")
