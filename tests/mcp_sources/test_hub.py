"""The hub against real servers: connect, call, refresh, time out, lose and regain a server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.mcp import Backoff, McpHub, McpServer, McpToolError, McpUnavailableError, mcp_tools
from bot.tools import Tool, ToolContext
from tests.mcp_sources.servers import (
    TIME_SERVER,
    TOKEN,
    env_echo_server,
    http_server,
    restartable_time_server,
    wait_for,
)

CTX = ToolContext(thread_id="t", idempotency_key="t:1", requested_by=None, approved_by=None)


@pytest.fixture
def url() -> Iterator[str]:
    with http_server() as address:
        yield address


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSLOOP_SECRET_TEST_TOKEN", TOKEN)
    return TOKEN


def http(url: str, **extra) -> McpServer:
    return McpServer(
        name="web", url=url, headers={"Authorization": "Bearer {secret.TEST_TOKEN}"}, **extra
    )


def by_name(hub: McpHub) -> dict[str, Tool]:
    tools, _ = mcp_tools(hub)
    return {t.name: t for t in tools}


async def run(tool: Tool, **arguments):
    return await tool.run(CTX, tool.validate(arguments))


@pytest.fixture
def hubs() -> Iterator[list[McpHub]]:
    made: list[McpHub] = []
    yield made
    for hub in made:
        hub.close()


def started(hubs: list[McpHub], *servers: McpServer, backoff: Backoff | None = None) -> McpHub:
    hub = McpHub(servers, backoff=backoff)
    hubs.append(hub)
    hub.start()
    return hub


async def test_the_published_time_server_answers_at_once(hubs) -> None:
    server = McpServer(name="time", command=TIME_SERVER, args=("--local-timezone", "UTC"))
    hub = started(hubs, server)
    tools = by_name(hub)
    assert set(tools) == {"get_current_time", "convert_time"}
    now = tools["get_current_time"]
    assert (now.tier, now.source, now.origin, now.untrusted_output) == ("read", "mcp", "time", True)
    assert now.repeatable is True
    # The model is shown the server's own schema.
    assert now.spec.parameters["required"] == ["timezone"]
    result = await run(now, timezone="Europe/Paris")
    assert result["timezone"] == "Europe/Paris"


async def test_http_server_with_a_header_secret(hubs, url, token) -> None:
    hub = started(hubs, http(url))
    assert hub.state("web").connected
    tools = by_name(hub)
    assert await run(tools["echo"], text="hi") == "echo: hi"
    # structured content comes through as data
    assert await run(tools["numbers"]) == {"one": 1, "two": 2}
    # no hints at all: a write
    assert tools["unhinted"].tier == "write"


async def test_a_missing_or_wrong_secret_leaves_the_server_out(hubs, url, monkeypatch) -> None:
    hub = started(hubs, http(url))
    state = hub.state("web")
    assert not state.connected
    assert "OPSLOOP_SECRET_TEST_TOKEN" in (state.error or "")
    assert mcp_tools(hub) == ((), {})

    monkeypatch.setenv("OPSLOOP_SECRET_TEST_TOKEN", "wrong-token-value")
    other = started(hubs, http(url))
    error = other.state("web").error or ""
    assert not other.state("web").connected and error
    assert "wrong-token-value" not in error


async def test_tool_list_refreshes_when_the_server_says_it_changed(hubs, url, token) -> None:
    hub = started(hubs, http(url))
    assert "late" not in hub.state("web").tools
    assert await run(by_name(hub)["grow"]) == "grown"
    state = wait_for(lambda: hub.state("web").refreshes and hub.state("web"), what="a refresh")
    assert "late" in state.tools
    assert hub.input_schema("web", "late")["required"] == ["n"]
    result = await hub.call("web", "late", {"n": 21})
    assert result.content[0].text == "42"


async def test_a_hanging_call_times_out_and_the_session_stays(hubs, url, token) -> None:
    hub = started(hubs, http(url, timeout_seconds=0.5))
    tools = by_name(hub)
    began = time.monotonic()
    with pytest.raises(McpToolError, match=r"hang on MCP server web gave no result within 0.5s"):
        await run(tools["hang"])
    assert time.monotonic() - began < 5
    assert await run(tools["echo"], text="still here") == "echo: still here"


async def test_error_results_and_refusals_are_tool_errors(hubs, url, token) -> None:
    hub = started(hubs, http(url))
    with pytest.raises(McpToolError, match="the disk is full"):
        await run(by_name(hub)["fails"])
    with pytest.raises(McpToolError):
        await hub.call("web", "no_such_tool", {})


async def test_results_are_capped_and_the_cut_is_said(hubs, url, token) -> None:
    hub = started(hubs, http(url, max_result_bytes=1000))
    text = await run(by_name(hub)["flood"])
    assert text.startswith("x" * 1000)
    assert text.endswith("[result cut: 1000 of 100000 bytes shown]")


async def test_arguments_are_checked_against_the_schema_before_the_call(hubs, url, token) -> None:
    from pydantic import ValidationError

    hub = started(hubs, http(url))
    echo = by_name(hub)["echo"]
    with pytest.raises(ValidationError) as caught:
        echo.validate({"text": 5})
    assert caught.value.errors()[0]["loc"] == ("text",)
    with pytest.raises(ValidationError, match="'text' is a required property"):
        echo.validate({})
    # what is validated dumps back to exactly what was given
    assert echo.validate({"text": "a"}).model_dump(mode="json") == {"text": "a"}


async def test_a_server_that_never_answers_does_not_hang_start_up(hubs) -> None:
    import sys

    silent = McpServer(
        name="silent",
        command=sys.executable,
        args=("-c", "import time; time.sleep(60)"),
        connect_timeout_seconds=0.5,
    )
    began = time.monotonic()
    hub = started(hubs, silent)
    assert time.monotonic() - began < 10
    assert hub.state("silent").error == "no answer within 0.5s"
    with pytest.raises(McpUnavailableError, match="MCP server silent is unavailable: no answer"):
        await hub.call("silent", "anything", {})


async def test_a_killed_server_fails_fast_then_comes_back(hubs, tmp_path: Path) -> None:
    command, args = restartable_time_server(tmp_path / "state")
    server = McpServer(name="time", command=command, args=args)
    hub = started(hubs, server, backoff=Backoff(first_seconds=0.05, max_seconds=0.2))
    now = by_name(hub)["get_current_time"]
    assert (await run(now, timezone="UTC"))["timezone"] == "UTC"

    os.kill(int((tmp_path / "state" / "pid-0").read_text()), signal.SIGKILL)
    wait_for(lambda: not hub.state("time").connected, what="the loss to be noticed")
    began = time.monotonic()
    with pytest.raises(McpUnavailableError, match="MCP server time is unavailable: "):
        await run(now, timezone="UTC")
    assert time.monotonic() - began < 1

    (tmp_path / "state" / "allow-restart").touch()
    wait_for(lambda: hub.state("time").connected, what="the reconnection")
    assert hub.state("time").connects == 2
    assert (await run(now, timezone="UTC"))["timezone"] == "UTC"


async def test_calls_cross_from_any_loop(hubs, url, token) -> None:
    hub = started(hubs, http(url))
    echo = by_name(hub)["echo"]

    def elsewhere(text: str) -> str:
        return asyncio.run(run(echo, text=text))

    results = await asyncio.gather(
        *(asyncio.to_thread(elsewhere, str(n)) for n in range(3)), run(echo, text="here")
    )
    assert results == ["echo: 0", "echo: 1", "echo: 2", "echo: here"]


async def test_close_is_clean_and_later_calls_fail_clearly(url, token) -> None:
    hub = McpHub([http(url)])
    await hub.astart()
    await hub.aclose()
    await hub.aclose()
    with pytest.raises(McpUnavailableError, match="unavailable"):
        await hub.call("web", "echo", {"text": "x"})


async def test_a_server_that_echoes_its_secret_shows_it_hidden(hubs, url, token) -> None:
    """Regression: runbooks hid their secrets in results, MCP servers did not."""
    hub = started(hubs, http(url))
    shown = await run(by_name(hub)["whoami"])
    assert shown == "you are Bearer ***"
    assert TOKEN not in shown


async def test_a_stdio_servers_secret_reaches_it_and_never_comes_back(
    hubs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_SECRET_SERVICE_TOKEN", TOKEN)
    command, args = env_echo_server(tmp_path / "env")
    server = McpServer(
        name="env", command=command, args=args, env={"SERVICE_TOKEN": "{secret.SERVICE_TOKEN}"}
    )
    tools = by_name(started(hubs, server))

    # The server got the value (its length) and what it says back has it hidden.
    assert await run(tools["show_token"]) == f"token=*** length={len(TOKEN)}"
    with pytest.raises(McpToolError) as caught:
        await run(tools["fail_loudly"])
    assert str(caught.value).endswith("bad token ***") and TOKEN not in str(caught.value)


async def test_risk_fails_closed_and_the_declaration_decides_per_tool(hubs, url, token) -> None:
    tools = by_name(started(hubs, http(url)))
    # Read-only and destructive at once: a write. A name opsloop keeps is never offered.
    assert tools["contradicts"].tier == "write"
    assert "ask_human" not in tools

    hub = started(
        hubs,
        http(url, tier="read", tools={"unhinted": {"tier": "write"}}).model_copy(
            update={"name": "web2"}
        ),
    )
    tiers = {name: tool.tier for name, tool in by_name(hub).items()}
    assert (tiers["unhinted"], tiers["contradicts"]) == ("write", "read")  # the tool's own wins
