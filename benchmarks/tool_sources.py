"""What a declared tool costs on top of calling its backend directly.

Two tool sources, each timed as the runtime runs a call (arguments validated, the action,
the result capped and scrubbed) beside the peer a team would otherwise use:

- an MCP tool (``mcp-server-time``'s ``get_current_time`` over stdio) through opsloop's hub,
  against the same call made with the MCP SDK's own client session on the caller's loop;
- an HTTP runbook against a local stand-in, against one bare ``httpx2`` request (on a
  kept-alive client, and on a new client each time, as a runbook makes one per call).

Run: ``uv run python benchmarks/tool_sources.py [--calls N]``. Prints p50/p95 per call.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
from aiohttp import web
from mcp import Client, StdioServerParameters

from bot.declared import load_declared
from bot.mcp import McpHub
from bot.mcp._tools import mcp_tools
from bot.tools import Tool, ToolContext

TIME_SERVER = shutil.which("mcp-server-time") or str(
    Path(sys.executable).with_name("mcp-server-time")
)
CTX = ToolContext(thread_id="bench", idempotency_key="bench:1", requested_by=None, approved_by=None)


async def timed(call: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    for _ in range(5):  # warm up
        await call()
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return took


def line(name: str, took: list[float]) -> str:
    p95 = statistics.quantiles(took, n=20)[18]
    return f"{name:<44} p50 {statistics.median(took):7.3f} ms   p95 {p95:7.3f} ms"


async def run_tool(tool: Tool, arguments: dict[str, object]) -> object:
    return await tool.run(CTX, tool.validate(arguments))


async def mcp(calls: int, folder: Path) -> None:
    (folder / "time.toml").write_text(f'kind = "mcp"\ncommand = "{TIME_SERVER}"\n')
    hub = McpHub(load_declared(folder).mcp_servers)
    await hub.astart()
    try:
        [tool] = [t for t in mcp_tools(hub)[0] if t.name == "get_current_time"]
        args = {"timezone": "UTC"}
        ours = await timed(lambda: run_tool(tool, args), calls)
    finally:
        await hub.aclose()
    params = StdioServerParameters(command=TIME_SERVER, args=[])
    async with Client(params, mode="legacy") as client:
        bare = await timed(lambda: client.call_tool("get_current_time", args), calls)
    print(line("MCP get_current_time via opsloop's hub", ours))
    print(line("MCP get_current_time, SDK session direct", bare))


async def http(calls: int, folder: Path) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "id": request.match_info["id"]})

    app = web.Application()
    app.router.add_post("/flush/{id}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    (folder / "flush.toml").write_text(
        f"""kind = "runbook"
name = "flush"
description = "Flush one id."
[arguments.id]
pattern = "[a-z0-9]{{1,20}}"
[http]
method = "POST"
url = "http://127.0.0.1:{port}/flush/{{id}}"
json = {{ id = "{{id}}" }}
returns = "json"
"""
    )
    [tool] = load_declared(folder).tools
    try:
        ours = await timed(lambda: run_tool(tool, {"id": "abc"}), calls)
        url = f"http://127.0.0.1:{port}/flush/abc"
        async with httpx2.AsyncClient() as client:
            bare = await timed(lambda: client.post(url, json={"id": "abc"}), calls)

        async def fresh() -> object:
            async with httpx2.AsyncClient() as client:
                return await client.post(url, json={"id": "abc"})

        new = await timed(fresh, calls)
    finally:
        await runner.cleanup()
    print(line("HTTP runbook call (validate, request, cap)", ours))
    print(line("one httpx2 request, kept-alive client", bare))
    print(line("one httpx2 request, a new client each time", new))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per case (200)")
    calls = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as mcp_dir, tempfile.TemporaryDirectory() as http_dir:
        await mcp(calls, Path(mcp_dir))
        await http(calls, Path(http_dir))


if __name__ == "__main__":
    asyncio.run(main())
