"""One MCP server's session, kept up: connect, list tools, notice a drop, reconnect.

A :class:`ServerLink` lives on the hub's event loop (:mod:`bot.mcp._hub`). It connects with
a bounded timeout, keeps the tool list and refreshes it when the server says
``notifications/tools/list_changed``, and when the session drops (the process exits, the
connection closes, a call finds it broken) it says so at once, so calls fail fast with the
reason, and reconnects with exponential backoff until the hub closes.

The session speaks the initialize handshake (protocol 2025-11-25 and before): every
published server speaks it, and on it a server may announce tool changes by itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import anyio
import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client._transport import ReadStream, TransportStreams
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from bot.declared._secrets import fill_secrets
from bot.mcp._config import McpServer
from bot.mcp._tools import McpToolError

__all__ = ["Backoff", "McpUnavailableError", "ServerLink"]

log = logging.getLogger(__name__)

_PAGES = 100
"""The most ``tools/list`` pages read (a server that pages forever cannot hang us)."""


class McpUnavailableError(McpToolError):
    """The server is not connected; the message says why."""


@dataclass(frozen=True)
class Backoff:
    """How long to wait between connection attempts: doubling, capped."""

    first_seconds: float = 0.5
    """The wait after the first failure."""
    max_seconds: float = 30.0
    """The longest wait."""

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row."""
        return float(min(self.max_seconds, self.first_seconds * 2 ** max(failures - 1, 0)))


class _Watched:
    """A read stream that says when it ends: the session is gone when it does."""

    def __init__(self, inner: Any, on_end: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # ``last_context``, where the transport has one

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end("the server closed the connection")
            raise
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _secrets(server: McpServer, values: dict[str, str], field: str) -> dict[str, str]:
    return {
        key: fill_secrets(value, where=f"MCP server {server.name}: {field}.{key}")
        for key, value in values.items()
    }


def program(command: str) -> str:
    """The executable ``command`` names.

    As given when it has a path; else found on ``PATH``, else beside opsloop's own Python (a
    server installed in opsloop's virtual environment).

    Raises:
        McpUnavailableError: found nowhere; the message says where it was looked for.
    """
    if os.sep in command:
        return command
    found = shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))
    if found is None:
        raise McpUnavailableError(
            f"command {command!r} not found on PATH nor beside opsloop's Python "
            f"({Path(sys.executable).parent})"
        )
    return found


@asynccontextmanager
async def _transport(
    server: McpServer, on_end: Callable[[str], None]
) -> AsyncIterator[TransportStreams]:
    if server.command is not None:
        params = StdioServerParameters(
            command=program(server.command),
            args=list(server.args),
            env=_secrets(server, server.env, "env"),
        )
        async with stdio_client(params) as (read, write):
            yield cast(ReadStream[SessionMessage | Exception], _Watched(read, on_end)), write
        return
    assert server.url is not None
    headers = _secrets(server, server.headers, "headers")
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(server.url, http_client=http) as (read, write),
    ):
        yield cast(ReadStream[SessionMessage | Exception], _Watched(read, on_end)), write


def describe(exc: BaseException) -> str:
    """A one-line reason for a failure (the first of a group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.message
    if isinstance(exc, McpUnavailableError):  # ours: it says what is wrong already
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _list_tools(client: Client) -> dict[str, mcp_types.Tool]:
    tools: dict[str, mcp_types.Tool] = {}
    cursor: str | None = None
    for _ in range(_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools.update((tool.name, tool) for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


class ServerLink:
    """One server's session on the hub's loop, reconnected when it drops."""

    def __init__(self, server: McpServer, backoff: Backoff) -> None:
        """Prepare (nothing runs until :meth:`start`)."""
        self.server = server
        self.backoff = backoff
        self.tools: dict[str, mcp_types.Tool] | None = None
        """The tool list as last listed (kept while disconnected); ``None`` before any."""
        self.error: str | None = "not connected yet"
        """Why it is not connected, or ``None`` while it is."""
        self.connects = 0
        """Sessions opened so far."""
        self.refreshes = 0
        """Tool lists refreshed on the server's notice."""
        self.settled = asyncio.Event()
        """Set once the first attempt to connect has succeeded or failed."""
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._told: str | None = None

    @property
    def name(self) -> str:
        """The server's name."""
        return self.server.name

    def start(self) -> None:
        """Begin connecting, in the background of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mcp:{self.name}")

    async def close(self) -> None:
        """End the session and stop reconnecting."""
        self._closing = True
        self._wake.set()
        if self._scope is not None:
            self._scope.cancel()
        for task in (*self._background, self._task):
            if task is not None:
                task.cancel()
        for task in (*self._background, self._task):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    log.debug("MCP server %s: closing", self.name, exc_info=True)
        self._client, self.error = None, "closed"

    @property
    def connected(self) -> bool:
        """Whether a session is up now."""
        return self._client is not None

    def _lost(self, reason: str) -> None:
        if self._client is not None and not self._closing:
            log.warning("MCP server %s: session lost (%s); reconnecting", self.name, reason)
        self._client = None
        self.error = reason
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            before = self.connects
            await self._session()
            self.settled.set()
            if self._closing:
                return
            failures = 1 if self.connects > before else failures + 1
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.backoff.delay(failures))
            except TimeoutError:
                pass

    async def _session(self) -> None:
        self._wake.clear()
        scope = self._scope = anyio.CancelScope(
            deadline=anyio.current_time() + self.server.connect_timeout_seconds
        )
        connected = False
        try:
            with scope:
                client = Client(
                    _transport(self.server, self._lost),
                    mode="legacy",
                    message_handler=self._on_message,
                    cache=None,
                )
                async with client:
                    self.tools = await _list_tools(client)
                    scope.deadline = math.inf
                    self._client, self.error, connected = client, None, True
                    self.connects += 1
                    self.settled.set()
                    log.info("MCP server %s: connected, %d tools", self.name, len(self.tools))
                    await self._wake.wait()
            if scope.cancelled_caught and not connected:
                self.error = f"no answer within {self.server.connect_timeout_seconds:g}s"
        except Exception as exc:
            if not connected or self.error is None:
                self.error = describe(exc)
        finally:
            self._client = None
            self._scope = None
        self.error = self.error or "the session ended"
        if not connected and not self._closing and self.error != self._told:
            log.warning(
                "MCP server %s (%s) is unavailable: %s", self.name, self.server.where, self.error
            )
        self._told = None if connected else self.error

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            task = asyncio.get_running_loop().create_task(self._refresh())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message, Exception):
            log.warning("MCP server %s: %s", self.name, describe(message))

    async def _refresh(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            with anyio.fail_after(self.server.timeout_seconds):
                self.tools = await _list_tools(client)
        except Exception as exc:
            log.warning("MCP server %s: refreshing its tools failed: %s", self.name, describe(exc))
            return
        self.refreshes += 1
        log.info("MCP server %s: tool list refreshed, %d tools", self.name, len(self.tools))

    def unavailable(self) -> McpUnavailableError:
        """The error a call gets while the server is not connected."""
        return McpUnavailableError(f"MCP server {self.name} is unavailable: {self.error}")

    async def call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call ``tool``: its result, or a clear error, within the server's timeout.

        Raises:
            McpUnavailableError: the server is not connected (or the session broke now).
            McpToolError: the call timed out, or the server refused it.
        """
        client = self._client
        if client is None:
            raise self.unavailable()
        if self.tools is not None and tool not in self.tools:
            raise McpToolError(f"MCP server {self.name} no longer offers {tool}")
        timeout = self.server.timeout_seconds
        late = McpToolError(f"{tool} on MCP server {self.name} gave no result within {timeout:g}s")
        try:
            with anyio.fail_after(timeout):
                return await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            raise late from None
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise late from None
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self._lost("the connection closed")
                raise self.unavailable() from None
            raise McpToolError(f"MCP server {self.name} refused {tool}: {exc.message}") from None
        except (
            OSError,
            httpx2.HTTPError,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ) as exc:
            self._lost(describe(exc))
            raise self.unavailable() from None
