"""Slack's HTTP mode on the API app: ``POST /slack/events`` and the OAuth install routes.

Bolt checks every request's signature (HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` with the
signing secret, the timestamp within five minutes) and answers 401 otherwise. Before Bolt
sees a request, :func:`malformed` turns away what would break its parsing: a timestamp that
is not a plain number (401) and JSON nested deeper than :data:`MAX_NESTING` (400).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)

from bot.api import is_timestamp, json_depth
from bot.errors import ConfigError
from channels.slack._app import build_app
from channels.slack._settings import SlackSettings
from channels.slack._workspaces import (
    INSTALL_PATH,
    REDIRECT_PATH,
    InstallationStore,
    oauth_settings,
)

__all__ = ["EVENTS_PATH", "MAX_NESTING", "add_routes", "malformed"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"

MAX_NESTING = 64
"""Deepest JSON nesting accepted; Slack's own payloads stay far below it."""


def malformed(content_type: str, timestamp: str | None, body: bytes) -> JSONResponse | None:
    """The error answer for a request Bolt must not see, or ``None`` to let it through."""
    if timestamp is not None and not is_timestamp(timestamp):
        return JSONResponse({"error": "invalid X-Slack-Request-Timestamp"}, status_code=401)
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            fields = parse_qs(body.decode(), max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            return JSONResponse({"error": "not a Slack request: bad form data"}, status_code=400)
        documents = [value.encode() for value in fields.get("payload", [])]
    else:
        documents = [body]
    if any(_deeper_than(d, MAX_NESTING) for d in documents):
        return JSONResponse(
            {"error": f"not a Slack request: JSON nested deeper than {MAX_NESTING}"},
            status_code=400,
        )
    return None


def _deeper_than(document: bytes, limit: int) -> bool:
    # Nesting needs an opening bracket per level: counting them (in C) settles an event's
    # few dozen at once, where the scan of every token took a good part of an acknowledgement.
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    return json_depth(document, stop_past=limit) > limit


async def _handler(request: Request, settings: SlackSettings) -> AsyncSlackRequestHandler:
    # Built on first use: the app's database and fast path exist only once it has started.
    state: Any = request.app.state
    handler: AsyncSlackRequestHandler | None = getattr(state, "slack_handler", None)
    if handler is None:
        database = state.ops.store.db
        oauth = None
        if settings.oauth:
            assert settings.client_id is not None
            await InstallationStore(settings.client_id, database).check()
            oauth = oauth_settings(settings, database, state.settings.public_url)
        app = build_app(settings, lambda: state.channel, database, socket_mode=False, oauth=oauth)
        handler = state.slack_handler = AsyncSlackRequestHandler(app)
    return handler


def add_routes(app: FastAPI, settings: SlackSettings) -> None:
    """Add Slack's request URL (and, with OAuth, the install routes) to the HTTP app."""
    router = APIRouter(tags=["slack"])

    async def ready(request: Request) -> AsyncSlackRequestHandler | Response:
        try:
            return await _handler(request, settings)
        except ConfigError as exc:
            log.error("Slack is not ready: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=503)

    async def handle(request: Request) -> Response:
        handler = await ready(request)
        return handler if isinstance(handler, Response) else await handler.handle(request)

    @router.post(EVENTS_PATH)
    async def events(request: Request) -> Response:
        """Slack's events, interactivity (clicks, modals) and slash commands; signed."""
        handler = await ready(request)
        if isinstance(handler, Response):
            return handler
        body = await request.body()
        headers = request.headers
        refused = malformed(
            headers.get("content-type", ""), headers.get("x-slack-request-timestamp"), body
        )
        if refused is not None:
            return refused
        try:
            # Bolt parses the body before it checks the signature, and raises on bad JSON.
            parsed = to_async_bolt_request(request, body)
        except ValueError:  # JSON or UTF-8 errors
            return JSONResponse({"error": "not a Slack request: bad JSON or form data"}, 400)
        return to_starlette_response(await handler.app.async_dispatch(parsed))

    if settings.oauth:

        @router.get(INSTALL_PATH)
        async def install(request: Request) -> Response:
            """Start installing opsloop in a Slack workspace (OAuth)."""
            return await handle(request)

        @router.get(REDIRECT_PATH)
        async def installed(request: Request) -> Response:
            """Where Slack sends the installer back: keep the workspace's bot token."""
            return await handle(request)

    app.include_router(router)
