"""A local fake of Slack: the Web API methods opsloop calls, and a Socket Mode server.

Like bolt-python's ``tests/mock_web_api_server``: an HTTP server on 127.0.0.1 that answers
each Web API method with a recorded-shape response and records every call (method, params,
token). It can be told to answer a method with 429 and a Retry-After, or with an error.
``apps.connections.open`` points at its own websocket, which says hello, sends the
envelopes a test queues and collects their acknowledgements.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.channels.slack.block_kit import MESSAGE_TEXT, block_errors, view_errors

BOTS = {
    "xoxb-test": {"team_id": "T1", "team": "Acme", "user_id": "UBOT", "bot_id": "BBOT"},
    "xoxb-team2": {"team_id": "T2", "team": "Two", "user_id": "UBOT2", "bot_id": "BBOT2"},
}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    token: str | None
    answer: dict[str, Any] = field(default_factory=dict)
    """What the fake answered."""
    refused: list[str] = field(default_factory=list)
    """Why the fake refused the call's blocks or text, as Slack would have."""


def _valid_metadata(metadata: Any) -> bool:
    """Slack's message metadata: an ``event_type`` name and an ``event_payload`` object."""
    if not isinstance(metadata, dict) or set(metadata) - {"event_type", "event_payload"}:
        return False
    kind, payload = metadata.get("event_type"), metadata.get("event_payload")
    return (
        isinstance(kind, str)
        and re.fullmatch(r"[a-zA-Z0-9_]{1,255}", kind) is not None
        and isinstance(payload, dict)
    )


def _refusal(method: str, params: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Slack's error for a message or modal it would not take, and why; ``None`` if fine."""
    if method in {"chat.postMessage", "chat.update", "chat.postEphemeral"}:
        text, blocks = params.get("text"), params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not text and not blocks:
            return "no_text", ["neither text nor blocks"]
        if text and len(text) > MESSAGE_TEXT:
            return "msg_too_long", [f"text: {len(text)} characters"]
        errors = block_errors(blocks) if blocks is not None else []
        return ("invalid_blocks", errors) if errors else None
    if method == "views.open":
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        errors = view_errors(view or {})
        return ("invalid_arguments", errors) if errors else None
    return None


@dataclass
class FakeSlack:
    """The fake; ``await start()`` it, point ``SLACK_API_URL`` at :attr:`api_url`."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    """users.info answers by user id (a default profile otherwise)."""
    usergroups: list[dict[str, Any]] = field(default_factory=list)
    """usergroups.list's answer."""
    rate_limited: dict[str, float] = field(default_factory=dict)
    """Methods to answer once with 429 and this Retry-After…"""
    rate_limit_after: dict[str, int] = field(default_factory=dict)
    """…after answering this many of its calls normally (0 by default)."""
    messages: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """Messages posted, by channel and thread (a thread's own message comes first)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Methods to answer with ``ok: false`` and this error, every time."""
    delays: dict[str, float] = field(default_factory=dict)
    """Methods to answer only after this many seconds (a slow Slack)."""
    oauth_access: dict[str, Any] = field(default_factory=dict)
    """oauth.v2.access's answer."""
    calls: list[Call] = field(default_factory=list)
    acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def of(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    async def called(self, method: str, count: int = 1, within: float = 10) -> list[Call]:
        """Wait until ``method`` has been answered ``count`` times; its calls."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: len([c for c in self.of(method) if c.answer]) >= count
                )

        await asyncio.wait_for(enough(), within)
        return self.of(method)

    async def _answered(self, call: Call, answer: dict[str, Any], **kw: Any) -> web.Response:
        call.answer = answer
        async with self._changed:
            self._changed.notify_all()
        return web.json_response(answer, **kw)

    def next_ts(self) -> str:
        return f"1700000100.{next(self._ts):06d}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{path:.*}", self._respond)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        call = Call(method, params, token or params.get("token"))
        self.calls.append(call)
        if method in self.delays:
            await asyncio.sleep(self.delays[method])  # Slack being slow, not a test waiting
        earlier = len(self.of(method)) - 1
        if method in self.rate_limited and earlier >= self.rate_limit_after.get(method, 0):
            wait = self.rate_limited.pop(method)
            answer = {"ok": False, "error": "ratelimited"}
            return await self._answered(
                call, answer, status=429, headers={"Retry-After": str(int(wait))}
            )
        if method in self.errors:
            return await self._answered(call, {"ok": False, "error": self.errors[method]})
        if method == "conversations.open":  # a DM with one person: D + their id
            users = str(params.get("users", ""))
            if not re.fullmatch(r"[UW][A-Z0-9_]+", users):
                return await self._answered(call, {"ok": False, "error": "user_not_found"})
            return await self._answered(call, {"ok": True, "channel": {"id": f"D{users}"}})
        refused = _refusal(method, params)
        if refused is not None:
            call.refused = refused[1]
            return await self._answered(call, {"ok": False, "error": refused[0]})
        return await self._answered(call, {"ok": True, **self._answer(method, params, token)})

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "auth.test":
            bot = BOTS.get(token or "")
            if bot is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"url": "https://acme.slack.com/", "user": "opsloop", **bot}
        if method == "chat.postMessage":
            return self._post(params)
        if method == "conversations.replies":
            return self._replies(params)
        if method == "chat.update":
            return {"channel": params["channel"], "ts": params["ts"]}
        if method == "chat.postEphemeral":
            return {"message_ts": self.next_ts()}
        if method == "views.open":
            return {"view": {"id": f"V{next(self._ts)}"}}
        if method == "users.info":
            user = params["user"]
            default = {"id": user, "name": user.lower(), "profile": {"real_name": f"Real {user}"}}
            return {"user": self.users.get(user, default)}
        if method == "usergroups.list":
            return {"usergroups": self.usergroups}
        if method == "apps.connections.open":
            if token != "xapp-test":
                return {"ok": False, "error": "invalid_auth"}
            return {"url": f"ws://127.0.0.1:{self.port}/link"}
        if method == "files.getUploadURLExternal":
            return {"upload_url": f"http://127.0.0.1:{self.port}/upload/F1", "file_id": "F1"}
        if method == "files.completeUploadExternal":
            return {"files": [{"id": "F1", "title": "snippet"}]}
        if method == "oauth.v2.access":
            return self.oauth_access
        return {"ok": False, "error": "unknown_method"}

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata is not None and not _valid_metadata(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        ts, channel = self.next_ts(), params["channel"]
        message = {"type": "message", "ts": ts, "text": params.get("text", ""), "user": "UBOT"}
        if metadata is not None:
            message["metadata"] = metadata
        thread = params.get("thread_ts")
        if thread:
            message["thread_ts"] = thread
        self.messages.setdefault((channel, thread or ts), []).append(message)
        return {"channel": channel, "ts": ts, "message": message}

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: a thread's messages, metadata only when asked for."""
        thread = self.messages.get((params["channel"], params["ts"]))
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        with_metadata = str(params.get("include_all_metadata", "")).lower() in {"1", "true"}
        start = int(params.get("cursor") or 0)
        limit = min(int(params.get("limit") or 1000), 1000)
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        shown = [
            m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in page
        ]
        return {
            "messages": shown,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    async def _upload(self, request: web.Request) -> web.Response:
        body = await request.read()
        file_id = request.match_info["file_id"]
        self.calls.append(Call("upload", {"file_id": file_id, "body": body}, None))
        return web.Response(text="OK")

    async def _respond(self, request: web.Request) -> web.Response:
        """A slash command's or a click's ``response_url``."""
        call = Call("respond", await request.json(), None)
        self.calls.append(call)
        await self._answered(call, {"ok": True})
        return web.Response(text="ok")

    # ------------------------------------------------------------ Socket Mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1})
        self.connected.set()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            envelope = data.get("envelope_id")
            if envelope in self.acks and not self.acks[envelope].done():
                self.acks[envelope].set_result(data)
        return socket

    async def send_envelope(self, envelope: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send an envelope to the connected client; the future is its acknowledgement."""
        await asyncio.wait_for(self.connected.wait(), 10)
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[envelope["envelope_id"]] = acked
        await self._sockets[-1].send_json(envelope)
        return acked
