"""Stand-ins for runbook tests: a recording HTTP server on loopback, a fake program on PATH,
and a way to load a runbook from text."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web
from multidict import CIMultiDict

from bot.declared._load import read_declaration
from bot.declared.runbooks import parse_runbook
from bot.tools import Tool, ToolContext

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "runbooks"

SECRET = f'tok/en+{uuid.uuid4().hex}"q&'
"""A secret with characters that URL-quoting and JSON-escaping change."""


_REAL_SEND = httpx2.AsyncHTTPTransport.handle_async_request
"""The real transport, saved before ``tests.model_guard`` replaces it for each test."""
LOOPBACK = ("127.0.0.1", "localhost")


@pytest.fixture(autouse=True)
def _loopback_is_allowed(_no_real_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runbooks really send HTTP, to stand-ins on loopback; anything else stays refused."""
    guarded = httpx2.AsyncHTTPTransport.handle_async_request

    async def send(self: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> httpx2.Response:
        if request.url.host in LOOPBACK:
            return await _REAL_SEND(self, request)
        return await guarded(self, request)

    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", send)


@dataclass
class Seen:
    """One request the stand-in received."""

    method: str
    path: str
    """The raw (still percent-encoded) path and query."""
    headers: CIMultiDict[str]
    """Looked up without regard to case, as HTTP says."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Seen], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class StandIn:
    """A real HTTP server on 127.0.0.1 that records every request and answers as told."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answer: Handler = lambda seen: web.Response(status=204)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown, for handlers that hang until then."""

    async def hang(self, seen: Seen) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(status=204)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen = Seen(
            method=request.method,
            path=request.raw_path,
            headers=CIMultiDict(request.headers),
            body=await request.read(),
        )
        server.seen.append(seen)
        answer = server.answer(seen)
        return await answer if asyncio.iscoroutine(answer) else answer  # type: ignore[return-value]

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


def load(tmp_path: Path, text: str, name: str = "runbook.toml") -> Tool:
    """The tool a runbook file with ``text`` declares."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    tool, _ = parse_runbook(path, read_declaration(path))
    return tool


def example(name: str) -> Tool:
    """The tool a shipped example declares."""
    path = EXAMPLES / name
    tool, _ = parse_runbook(path, read_declaration(path))
    return tool


async def call(tool: Tool, **arguments: Any) -> Any:
    """Run ``tool`` as the runtime would: validate, then run."""
    ctx = ToolContext(
        thread_id="th_1", idempotency_key="th_1:7", requested_by=None, approved_by=None
    )
    return await tool.run(ctx, tool.validate(arguments))


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """``OPSLOOP_SECRET_TOKEN``, set for the test."""
    monkeypatch.setenv("OPSLOOP_SECRET_TOKEN", SECRET)
    return SECRET


@dataclass
class FakeProgram:
    """A program on PATH that records its argv, environment and working directory."""

    bin: Path
    record: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def install(self, name: str, body: str = "") -> Path:
        """Put ``name`` on PATH: it records its call, then runs ``body`` (Python)."""
        script = self.bin / name
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys\n"
            f"with open({str(self.record)!r}, 'a') as f:\n"
            "    f.write(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ),"
            " 'cwd': os.getcwd()}) + '\\n')\n" + textwrap.dedent(body)
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeProgram:
    """A bin folder put first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return FakeProgram(bin=folder, record=tmp_path / "calls.jsonl")
