"""The MCP hub: every declared server's session, on one event loop of their own.

A process calls tools from different loops: a worker between tasks, the API from uvicorn's
loop, the CLI from ``asyncio.run``. Sessions cannot move between loops, so the hub runs
them all on a dedicated loop in a background thread, one session per server per process,
and a call crosses over (``run_coroutine_threadsafe``) and back (``wrap_future``) under the
server's timeout. A call never waits on a server that is down: it fails at once with the
reason, while the session reconnects in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types

from bot.errors import ConfigError
from bot.mcp._config import McpServer
from bot.mcp._link import Backoff, McpUnavailableError, ServerLink
from bot.mcp._tools import McpToolError
from bot.tools import Resource

__all__ = ["MCP_HUB", "LinkState", "McpHub"]

log = logging.getLogger(__name__)

_GRACE_SECONDS = 5.0
"""Added to a server's own timeouts where the hub waits on it from outside (it keeps them)."""


@dataclass(frozen=True)
class LinkState:
    """One server's connection, as seen from outside."""

    connected: bool
    """Whether a session is up now."""
    error: str | None
    """Why not, when it is not."""
    tools: tuple[str, ...]
    """The tool names last listed."""
    connects: int
    """Sessions opened so far (more than one: it reconnected)."""
    refreshes: int
    """Tool lists refreshed on the server's ``tools/list_changed``."""


class McpHub:
    """The sessions of the declared MCP servers, for one process."""

    def __init__(self, servers: Sequence[McpServer], *, backoff: Backoff | None = None) -> None:
        """Prepare; nothing connects until :meth:`start` or :meth:`astart`.

        Raises:
            ConfigError: two servers have one name.
        """
        names = [s.name for s in servers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"more than one MCP server is called {', '.join(twice)}")
        self.servers: tuple[McpServer, ...] = tuple(servers)
        """The declared servers."""
        self._backoff = backoff or Backoff()
        self._links: dict[str, ServerLink] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def _launch(self) -> asyncio.AbstractEventLoop | None:
        if self._closed:
            raise RuntimeError("the MCP hub is closed")
        if not self.servers or self._loop is not None:
            return None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_serve, args=(loop,), name="opsloop-mcp", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        return loop

    def _bound(self) -> float:
        return max(s.connect_timeout_seconds for s in self.servers) + _GRACE_SECONDS

    def start(self) -> None:
        """Connect every server, waiting (boundedly) for each first attempt to end."""
        loop = self._launch()
        if loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._begin(), loop)
            future.result(timeout=self._bound() + _GRACE_SECONDS)

    async def astart(self) -> None:
        """:meth:`start`, without blocking the caller's loop."""
        loop = self._launch()
        if loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._begin(), loop)
            await asyncio.wait_for(asyncio.wrap_future(future), self._bound() + _GRACE_SECONDS)

    async def _begin(self) -> None:
        for server in self.servers:
            link = self._links[server.name] = ServerLink(server, self._backoff)
            link.start()
        waits = [asyncio.ensure_future(link.settled.wait()) for link in self._links.values()]
        _, pending = await asyncio.wait(waits, timeout=self._bound())
        for waiting in pending:
            waiting.cancel()

    def close(self) -> None:
        """End every session and stop the hub's thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._end(), loop)
            future.result(timeout=self._bound() + 10)
        except Exception:
            log.exception("closing the MCP sessions failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    async def aclose(self) -> None:
        """:meth:`close`, without blocking the caller's loop."""
        await asyncio.to_thread(self.close)

    async def _end(self) -> None:
        await asyncio.gather(*(link.close() for link in self._links.values()))

    # ------------------------------------------------------------------ calls

    async def call(
        self, server: str, tool: str, arguments: dict[str, Any]
    ) -> mcp_types.CallToolResult:
        """Call ``tool`` on ``server`` from any loop; its result, within the server's timeout.

        Raises:
            McpUnavailableError: the server is not connected; the message says why.
            McpToolError: the call timed out or the server refused it.
        """
        link = self._links.get(server)
        loop = self._loop
        if link is None or loop is None or self._closed:
            raise McpUnavailableError(f"MCP server {server} is unavailable: not connected here")
        if asyncio.get_running_loop() is loop:
            return await link.call(tool, arguments)
        future = asyncio.run_coroutine_threadsafe(link.call(tool, arguments), loop)
        limit = link.server.timeout_seconds
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit + _GRACE_SECONDS)
        except TimeoutError:
            raise McpToolError(
                f"{tool} on MCP server {server} gave no result within {limit:g}s"
            ) from None

    # ------------------------------------------------------------------ state

    def listed(self, server: str) -> tuple[mcp_types.Tool, ...] | None:
        """The server's tools as last listed; ``None`` if it never answered."""
        link = self._links.get(server)
        tools = link.tools if link is not None else None
        return None if tools is None else tuple(tools.values())

    def input_schema(self, server: str, tool: str) -> dict[str, Any] | None:
        """The tool's argument schema as the server last listed it."""
        link = self._links.get(server)
        found = (link.tools or {}).get(tool) if link is not None else None
        return found.input_schema if found is not None else None

    def state(self, server: str) -> LinkState:
        """How the connection to ``server`` stands.

        Raises:
            KeyError: no such server.
        """
        link = self._links.get(server)
        if link is None:
            if server not in {s.name for s in self.servers}:
                raise KeyError(server)
            return LinkState(False, "not started", (), 0, 0)
        return LinkState(
            connected=link.connected,
            error=link.error,
            tools=tuple(link.tools or ()),
            connects=link.connects,
            refreshes=link.refreshes,
        )

    def unavailable(self) -> dict[str, str]:
        """The servers not connected now, and why."""
        states = {s.name: self.state(s.name) for s in self.servers}
        return {
            name: st.error or "not connected" for name, st in states.items() if not st.connected
        }


MCP_HUB: Resource[McpHub] = Resource("mcp")
"""The process's MCP hub, among the runtime's resources (closed with them)."""


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
