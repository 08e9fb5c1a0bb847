"""A local stand-in for Discord's REST API on 127.0.0.1 (payloads are in ``payloads.py``).

It keeps channels, threads and messages the way Discord does (a thread started from a
message has the message's id; posting into a thread that does not exist is "unknown
channel"; a second response to an interaction is "already acknowledged"), records every
call, and answers 429 or 401 where a test asks it to. It refuses what Discord refuses:

- anything over Discord's documented sizes (content 2,000 characters, five rows of five
  buttons, a label of 80, a custom id of 100, a nonce of 25, a thread name of 100, a
  modal's title and labels of 45) is ``400`` with code 50035, "Invalid Form Body";
- an interaction acknowledged more than 3 seconds after it was dispatched is ``404`` with
  code 10062, "Unknown interaction";
- ``enforce_nonce`` dedupes a message only "in the past few minutes" (``nonce_window``);
  a test moves the fake's clock on with ``skew``;
- ``POST /users/@me/channels`` takes exactly ``{"recipient_id": <snowflake>}`` and answers
  the one DM channel with that user (the same one each time); a message to a user in
  ``closed_dms`` is ``403`` with code 50007, "Cannot send messages to this user".
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.channels.discord.fake_gateway import FakeGateway
from tests.channels.discord.payloads import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    COMMAND_ID,
    GUILD_ID,
    TIMESTAMP,
    VOICE_ID,
    application,
    interaction_payload,
    message_payload,
    thread,
    user,
)


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    body: Any
    query: dict[str, str]


@dataclass
class FakeDiscord:
    """Discord's REST API, as much of it as opsloop uses."""

    calls: list[Call] = field(default_factory=list)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    rate_limits: list[list[Any]] = field(default_factory=list)
    """[path regex, retry_after, n]: the matching call after the next n gets a 429 (once)."""
    url: str = ""
    gateway: FakeGateway = field(default_factory=FakeGateway)
    ack_window: float = 3.0
    """Seconds within which an interaction must be acknowledged, as on Discord."""
    nonce_window: float = 180.0
    """Seconds for which ``enforce_nonce`` remembers a nonce ("the past few minutes")."""
    skew: float = 0.0
    """Seconds added to the fake's clock: a test lets time pass without waiting."""
    no_thread_permission: set[str] = field(default_factory=set)
    """Channels where the bot may not create threads (403, Missing Permissions)."""
    closed_dms: set[str] = field(default_factory=set)
    """Users who take no direct messages from the bot (403, Cannot send messages)."""
    dms: dict[str, str] = field(default_factory=dict)
    """The DM channel opened with each user, by user id."""
    _acknowledged: dict[str, int] = field(default_factory=dict)
    _interactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _originals: dict[str, str] = field(default_factory=dict)
    _nonces: dict[str, tuple[str, float]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1100000000000001000))
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        base = {"guild_id": GUILD_ID, "nsfw": False, "rate_limit_per_user": 0, "parent_id": None}
        text = {"id": CHANNEL_ID, "type": 0, "name": "ops", "topic": None}
        voice = {"id": VOICE_ID, "type": 2, "name": "war-room", "bitrate": 64000}
        self.channels[CHANNEL_ID] = base | text
        self.channels[VOICE_ID] = base | voice | {"user_limit": 0, "rtc_region": None}

    # ------------------------------------------------------------ server

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle)
        app.router.add_get("/gateway", self.gateway.socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api/v10"
        self.gateway.url = f"ws://127.0.0.1:{port}/gateway"
        return self.url

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def now(self) -> float:
        """The fake's clock, in seconds."""
        return time.monotonic() + self.skew

    def find(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    def original(self, interaction: dict[str, Any]) -> dict[str, Any]:
        """The message an interaction's response created."""
        return self.messages[self._originals[interaction["token"]]]

    def followups(self, interaction: dict[str, Any]) -> list[dict[str, Any]]:
        """The bodies of the follow-up messages sent for an interaction."""
        return [c.body for c in self.find("POST", rf"/webhooks/{APP_ID}/{interaction['token']}")]

    def callbacks(self, interaction: dict[str, Any]) -> list[dict[str, Any]]:
        """The bodies of the responses (callbacks) made to an interaction."""
        pattern = rf"/interactions/{interaction['id']}/{interaction['token']}/callback"
        return [c.body for c in self.find("POST", pattern)]

    def posted_in(self, channel_id: str) -> list[dict[str, Any]]:
        """Messages everyone sees in a channel (or thread), oldest first; no ephemeral ones."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == channel_id and not m["flags"] & 64
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        call = Call(request.method, path, body, dict(request.query))
        self.calls.append(call)
        if request.headers.get("Authorization") == "Bot refused":
            return _error(401, 0, "401: Unauthorized")
        for limit in list(self.rate_limits):
            regex, retry_after, skip = limit
            if re.fullmatch(regex, path) and skip:
                limit[2] -= 1
            elif re.fullmatch(regex, path):
                self.rate_limits.remove(limit)
                return _json(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": retry_after,
                        "global": False,
                    },
                    429,
                    {"Retry-After": str(int(retry_after) + 1), "Via": "1.1 google"},
                )
        for method, regex, handler in self._routes():
            match = re.fullmatch(regex, path)
            if method == request.method and match:
                errors = _form_errors(body) if isinstance(body, dict) else {}
                if errors:
                    return _json(
                        {"code": 50035, "errors": errors, "message": "Invalid Form Body"}, 400
                    )
                return handler(body or {}, *match.groups())
        return _error(404, 0, "404: Not Found")

    def _routes(self) -> list[tuple[str, str, Callable[..., web.Response]]]:
        return [
            ("GET", r"/users/@me", lambda _: _json(user(BOT_ID, "opsloop", bot=True))),
            ("GET", r"/oauth2/applications/@me", lambda _: _json(application())),
            ("GET", r"/gateway/bot", lambda _: _json(self.gateway.location())),
            ("PUT", r"/applications/\d+/(?:guilds/\d+/)?commands", self._commands),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("PATCH", r"/webhooks/\d+/([^/]+)/messages/@original", self._edit_original),
            ("POST", r"/webhooks/\d+/([^/]+)", self._followup),
            ("GET", r"/channels/(\d+)/messages", self._history),
            ("POST", r"/channels/(\d+)/messages", self._post),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._start_thread),
            ("POST", r"/users/@me/channels", self._open_dm),
        ]

    # ------------------------------------------------------------ endpoints

    def _commands(self, body: list[dict[str, Any]]) -> web.Response:
        return _json(
            [{**c, "id": COMMAND_ID, "application_id": APP_ID, "version": "1"} for c in body]
        )

    def _callback(self, body: dict[str, Any], interaction_id: str, token: str) -> web.Response:
        if self.now() - self._interactions[token]["created"] > self.ack_window:
            return _error(404, 10062, "Unknown interaction")
        if interaction_id in self._acknowledged:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        kind = body["type"]
        if kind == 9 and (problems := _modal_errors(body.get("data") or {})):
            return _json({"code": 50035, "message": "Invalid Form Body", "errors": problems}, 400)
        self._acknowledged[interaction_id] = kind
        flags = (body.get("data") or {}).get("flags", 0)
        answer: dict[str, Any] = {
            "interaction": {"id": interaction_id, "type": self._interactions[token]["type"]}
        }
        if kind in (4, 5):  # a message (type 5: "thinking…" until edited)
            message = self._original(token, flags | (128 if kind == 5 else 0))
            message["content"] = (body.get("data") or {}).get("content", "")
            answer["interaction"] |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & 64),
            }
            answer["resource"] = {"type": kind, "message": message}
        return _json(answer)

    def _original(self, token: str, flags: int) -> dict[str, Any]:
        if token not in self._originals:
            where = self._interactions[token]
            message = self.add_message(where["channel_id"], "", flags=flags)
            message["interaction_metadata"] = {
                "id": where["id"],
                "type": where["type"],
                "user": where["user"],
            }
            self._originals[token] = message["id"]
        return self.messages[self._originals[token]]

    def _edit_original(self, body: dict[str, Any], token: str) -> web.Response:
        message = self._original(token, 0)
        message["flags"] = message["flags"] & ~128
        message.update({k: body[k] for k in ("content", "components") if k in body})
        return _json(message)

    def _followup(self, body: dict[str, Any], token: str) -> web.Response:
        where = self._interactions[token]
        message = self.add_message(
            where["channel_id"], body.get("content", ""), flags=body.get("flags", 0)
        )
        return _json(message)

    def _open_dm(self, body: dict[str, Any]) -> web.Response:
        recipient = body.get("recipient_id")
        if set(body) != {"recipient_id"} or not re.fullmatch(r"\d{15,21}", str(recipient)):
            errors = {"recipient_id": {"_errors": [{"code": "BASE_TYPE_REQUIRED"}]}}
            return _json({"code": 50035, "errors": errors, "message": "Invalid Form Body"}, 400)
        if recipient not in self.dms:
            dm = self.next_id()
            self.channels[dm] = {
                "id": dm,
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user(str(recipient), f"user-{recipient}")],
            }
            self.dms[str(recipient)] = dm
        return _json(self.channels[self.dms[str(recipient)]])

    def _post(self, body: dict[str, Any], channel_id: str) -> web.Response:
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        recipients = self.channels[channel_id].get("recipients") or [{}]
        if recipients[0].get("id") in self.closed_dms:
            return _error(403, 50007, "Cannot send messages to this user")
        nonce = body.get("nonce")
        seen = self._nonces.get(nonce) if nonce else None
        if body.get("enforce_nonce") and seen and self.now() - seen[1] <= self.nonce_window:
            return _json(self.messages[seen[0]])
        message = self.add_message(
            channel_id, body.get("content", ""), components=body.get("components", [])
        )
        if "message_reference" in body:
            message["message_reference"] = body["message_reference"]
        if nonce:
            self._nonces[nonce] = (message["id"], self.now())
        return _json(message)

    def _history(self, body: dict[str, Any], channel_id: str) -> web.Response:
        # GET /channels/{id}/messages: newest first, at most 50 (the default); no ephemerals.
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        return _json(list(reversed(self.posted_in(channel_id)))[:50])

    def _edit(self, body: dict[str, Any], channel_id: str, message_id: str) -> web.Response:
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return _error(404, 10008, "Unknown Message")
        message.update({k: body[k] for k in ("content", "components") if k in body})
        message["edited_timestamp"] = TIMESTAMP
        return _json(message)

    def _start_thread(self, body: dict[str, Any], channel_id: str, message_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        if channel["type"] != 0:
            return _error(400, 50024, "Cannot execute action on this channel type")
        if channel_id in self.no_thread_permission:
            return _error(403, 50013, "Missing Permissions")
        if message_id not in self.messages:
            return _error(404, 10008, "Unknown Message")
        if message_id in self.channels:
            return _error(400, 160004, "A thread has already been created for this message")
        self.channels[message_id] = thread(message_id, channel_id, body["name"])
        return _json(self.channels[message_id], 201)

    # ------------------------------------------------------------ data

    def add_message(self, channel_id: str, content: str, **extra: Any) -> dict[str, Any]:
        """A message by the bot in a channel, as if posted earlier."""
        guild = self.channels.get(channel_id, {}).get("type") != 1  # not a DM
        message = message_payload(
            self.next_id(),
            channel_id,
            user(BOT_ID, "opsloop", bot=True),
            content,
            guild=guild,
            **extra,
        )
        self.messages[message["id"]] = message
        return message

    def next_id(self) -> str:
        return str(next(self._ids))

    def interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        by: dict[str, Any],
        channel_id: str = CHANNEL_ID,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE dispatch, registered so its callbacks and webhooks work."""
        interaction_id = self.next_id()
        token = f"token-{interaction_id}"
        channel = self.channels[channel_id]
        payload = interaction_payload(interaction_id, token, kind, data, by=by, channel=channel)
        if channel["type"] == 1:  # in a DM: a user, no guild or member (context 1: BOT_DM)
            del payload["guild_id"], payload["guild_locale"]
            payload["user"] = payload.pop("member")["user"]
            payload["context"] = 1
        if message is not None:
            payload["message"] = message
        self._interactions[token] = {
            "created": self.now(),
            "id": interaction_id,
            "type": kind,
            "channel_id": channel_id,
            "user": by["user"],
        }
        return payload


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json", without a charset, as Discord sends it (discord.py checks).
    body = json.dumps(data).encode()
    return web.Response(
        body=body, status=status, headers={"Content-Type": "application/json", **(headers or {})}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status)


_LIMITS = {"content": 2000, "label": 80, "custom_id": 100, "nonce": 25, "name": 100}
"""Discord's documented maximum lengths of the string fields opsloop sends."""
_MODAL_LIMITS = {"title": 45, "label": 45}


def _form_errors(body: dict[str, Any], where: str = "", modal: bool = False) -> dict[str, Any]:
    """What Discord would refuse in a JSON body, as its ``errors`` object (empty: none)."""
    errors: dict[str, Any] = {}

    def refuse(path: str, message: str) -> None:
        errors[path] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": message}]}

    limits = _LIMITS | (_MODAL_LIMITS if modal else {})
    for key, value in body.items():
        path = f"{where}.{key}" if where else key
        if isinstance(value, str) and key in limits and len(value) > limits[key]:
            refuse(path, f"Must be {limits[key]} or fewer in length.")
        elif key == "max_length" and isinstance(value, int) and value > 4000:
            refuse(path, "int value should be less than or equal to 4000.")
        elif key == "components" and isinstance(value, list):
            if len(value) > 5:
                refuse(path, "Must be 5 or fewer in length.")
            for n, child in enumerate(value):
                errors |= _form_errors(child, f"{path}.{n}", modal)
        elif key == "data" and isinstance(value, dict):
            errors |= _form_errors(value, path, modal=body.get("type") == 9)
    return errors


def _modal_errors(data: dict[str, Any]) -> dict[str, Any]:
    """What Discord refuses in a modal response (type 9) beyond lengths: its shape.

    A custom id and a title; one to five action rows (type 1), each holding exactly one
    text input (type 4) with a custom id, a label of 1 to 45 characters, a style of 1 or 2,
    lengths within 0 to 4,000 and a prefilled value no longer than its maximum.
    """
    errors: dict[str, Any] = {}

    def refuse(path: str, message: str) -> None:
        errors[path] = {"_errors": [{"code": "BASE_TYPE_BAD_VALUE", "message": message}]}

    if not data.get("custom_id"):
        refuse("data.custom_id", "This field is required")
    if not 1 <= len(data.get("title") or "") <= 45:
        refuse("data.title", "Must be between 1 and 45 in length.")
    rows = data.get("components") or []
    if not 1 <= len(rows) <= 5:
        refuse("data.components", "Must be between 1 and 5 in length.")
    for n, row in enumerate(rows):
        where = f"data.components.{n}"
        inputs = row.get("components") or []
        if row.get("type") != 1 or len(inputs) != 1 or inputs[0].get("type") != 4:
            refuse(where, "An action row of a modal holds exactly one text input.")
            continue
        field = inputs[0]
        most = field.get("max_length", 4000)
        if not field.get("custom_id"):
            refuse(f"{where}.components.0.custom_id", "This field is required")
        if not 1 <= len(field.get("label") or "") <= 45:
            refuse(f"{where}.components.0.label", "Must be between 1 and 45 in length.")
        if field.get("style") not in (1, 2):
            refuse(f"{where}.components.0.style", "Value must be one of (1, 2).")
        if not 0 <= field.get("min_length", 0) <= most <= 4000:
            refuse(f"{where}.components.0.max_length", "Lengths must be within 0 to 4000.")
        if len(field.get("value") or "") > most:
            refuse(f"{where}.components.0.value", f"Must be {most} or fewer in length.")
    return errors
