"""Discord's gateway, faked: a websocket that says HELLO, takes IDENTIFY and sends dispatches.

Frames go out as uncompressed JSON text, which discord.py reads whatever compression it
asked for (only binary frames are decompressed).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.channels.discord.payloads import APP_ID, BOT_ID, GUILD_ID, user

__all__ = ["FakeGateway"]


@dataclass
class FakeGateway:
    """The websocket side; ``FakeDiscord`` serves it at ``/gateway``."""

    received: list[dict[str, Any]] = field(default_factory=list)
    """Every frame a client sent (IDENTIFY, heartbeats…)."""
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    """The websocket's address, once the server is up."""
    privileged: bool = True
    """Whether the portal allows the Message Content intent; if not, IDENTIFY asking for it
    is closed with 4014, as Discord does."""
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _seq: int = 0

    def location(self) -> dict[str, Any]:
        """GET /gateway/bot's answer: where to connect."""
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.url, "shards": 1, "session_start_limit": limit}

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """The gateway connection."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 45000}, "s": None, "t": None})
        async for frame in ws:
            data = json.loads(frame.data)
            self.received.append(data)
            if data["op"] == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif data["op"] == 2 and not self.privileged and data["d"]["intents"] & 1 << 15:
                await ws.close(code=4014, message=b"Disallowed intent(s).")
            elif data["op"] == 2:
                await self.dispatch("READY", self._ready())
                self.identified.set()
        self._sockets.remove(ws)
        return ws

    def identify(self) -> dict[str, Any]:
        """The data of the one IDENTIFY a client sent."""
        [identify] = [f["d"] for f in self.received if f["op"] == 2]
        data: dict[str, Any] = identify
        return data

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one dispatch (op 0) to every connected client."""
        self._seq += 1
        for ws in self._sockets:
            await ws.send_json({"op": 0, "t": event, "s": self._seq, "d": data})

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": user(BOT_ID, "opsloop", bot=True),
            "guilds": [{"id": GUILD_ID, "unavailable": True}],
            "session_id": "session-1",
            "resume_gateway_url": self.url,
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
            "shard": [0, 1],
        }
