"""Runbook HTTP actions against a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web

from bot.errors import ToolError
from tests.bot.runbooks.conftest import SECRET, StandIn, call, example, load

pytestmark = pytest.mark.usefixtures("secret")


def echo_runbook(tmp_path, url: str, *, returns: str = "auto", extra: str = "") -> str:
    return f"""
        kind = "runbook"
        description = "echo"
        [arguments.note]
        required = false
        [http]
        method = "POST"
        url = "{url}/echo"
        returns = "{returns}"
        {extra}
        [http.headers]
        Authorization = "Bearer {{secret.TOKEN}}"
    """


async def test_the_ci_example_triggers_a_workflow_on_the_stand_in(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_VAR_GITHUB_API", stand_in.url)
    monkeypatch.setenv("OPSLOOP_SECRET_GITHUB_TOKEN", SECRET)
    tool = example("ci-workflow.toml")
    args = {"owner": "acme", "repo": "shop", "workflow": "deploy.yml"}

    assert await call(tool, **args) == {"status": 204}

    [seen] = stand_in.seen
    assert seen.method == "POST"
    assert seen.path == "/repos/acme/shop/actions/workflows/deploy.yml/dispatches"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert seen.headers["Accept"] == "application/vnd.github+json"
    assert seen.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert seen.headers["Idempotency-Key"] == "th_1:7"
    assert seen.json() == {"ref": "main"}
    assert tool.attributes(tool.validate(args)) == {"repository": "acme/shop", "ref": "main"}
    assert (tool.tier, tool.source, tool.origin, tool.untrusted_output) == (
        "write",
        "runbook",
        "ci-workflow.toml",
        True,
    )


async def test_the_cdn_example_purges_a_path(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "OPSLOOP_VAR_CDN_API": stand_in.url,
        "OPSLOOP_VAR_CDN_ZONE": "zone42",
        "OPSLOOP_VAR_SITE_URL": "https://www.example.com",
        "OPSLOOP_SECRET_CDN_TOKEN": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    stand_in.answer = lambda seen: web.json_response({"success": True, "result": {"id": "p1"}})
    tool = example("cdn-flush.toml")

    assert await call(tool, path="/assets/app.js") == {"status": 200, "body": True}

    [seen] = stand_in.seen
    assert (seen.method, seen.path) == ("POST", "/client/v4/zones/zone42/purge_cache")
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert seen.json() == {"files": ["https://www.example.com/assets/app.js"]}
    assert tool.attributes(tool.validate({"path": "/a"})) == {
        "environment": "production",
        "path": "/a",
    }


async def test_the_yaml_example_reads_a_health_report(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_VAR_HEALTH_API", stand_in.url)
    stand_in.answer = lambda seen: web.json_response({"status": "ok", "checks": {"db": "ok"}})
    tool = example("service-health.yaml")

    result = await call(tool, service="checkout", environment="staging")

    assert result == {"status": 200, "body": {"status": "ok", "checks": {"db": "ok"}}}
    assert [(s.method, s.path) for s in stand_in.seen] == [("GET", "/staging/checkout/healthz")]
    assert (tool.name, tool.tier) == ("service-health", "read")


async def test_argument_values_are_quoted_as_one_path_segment_or_query_value(
    stand_in: StandIn, tmp_path
) -> None:
    tool = load(
        tmp_path,
        f"""
        kind = "runbook"
        description = "d"
        [arguments.name]
        [http]
        url = "{stand_in.url}/items/{{name}}/x?q={{name}}&page=1"
        """,
    )
    await call(tool, name="../a b?c=d&e#f/")
    quoted = "..%2Fa%20b%3Fc%3Dd%26e%23f%2F"
    assert stand_in.seen[0].path == f"/items/{quoted}/x?q={quoted}&page=1"


@pytest.mark.parametrize("value", [".", ".."])
async def test_a_dot_segment_is_refused_not_resolved_into_another_path(
    stand_in: StandIn, tmp_path, value: str
) -> None:
    """Regression: repo="..", workflow=".." sent the request to /repos/actions/dispatches."""
    tool = load(
        tmp_path,
        f"""
        kind = "runbook"
        description = "d"
        [arguments.repo]
        [http]
        url = "{stand_in.url}/repos/{{repo}}/dispatches"
        """,
    )
    with pytest.raises(ToolError, match="would change the path"):
        await call(tool, repo=value)
    assert stand_in.seen == []


async def test_a_json_body_keeps_the_types_of_whole_placeholders(
    stand_in: StandIn, tmp_path
) -> None:
    tool = load(
        tmp_path,
        f"""
        kind = "runbook"
        description = "d"
        [arguments.replicas]
        type = "integer"
        [arguments.force]
        type = "boolean"
        [arguments.ratio]
        type = "number"
        [arguments.note]
        required = false
        [http]
        method = "PATCH"
        url = "{stand_in.url}/scale"
        [http.json]
        spec = {{ replicas = "{{replicas}}", force = "{{force}}", ratio = "{{ratio}}" }}
        label = "x{{replicas}}-{{force}} {{{{literal}}}}"
        note = "{{note}}"
        list = ["{{replicas}}", 3, true]
        """,
    )
    await call(tool, replicas=4, force=False, ratio=0.5)
    assert stand_in.seen[0].json() == {
        "spec": {"replicas": 4, "force": False, "ratio": 0.5},
        "label": "x4-false {literal}",
        "note": None,
        "list": [4, 3, True],
    }


async def test_an_unexpected_status_is_a_tool_error_without_the_secret(
    stand_in: StandIn, tmp_path
) -> None:
    stand_in.answer = lambda seen: web.Response(
        status=403, text=f"denied for {seen.headers['Authorization']}"
    )
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url))
    with pytest.raises(ToolError) as caught:
        await call(tool)
    message = str(caught.value)
    assert "answered 403, expected 2xx" in message
    assert "denied for Bearer ***" in message
    assert SECRET not in message
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_an_unexpected_failure_is_told_without_the_secret(
    stand_in: StandIn, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last guard: an exception nobody foresaw, quoting the secret, is scrubbed too."""
    import bot.declared.runbooks as runbooks

    async def broken(plan, values, lookups, key):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"state was {lookups.secret('TOKEN')}")

    monkeypatch.setattr(runbooks, "run_http", broken)
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url))
    with pytest.raises(ToolError) as caught:
        await call(tool)
    assert str(caught.value).endswith("RuntimeError: state was ***")
    assert SECRET not in str(caught.value) and caught.value.__context__ is None


async def test_a_secret_echoed_back_never_reaches_the_output_or_the_logs(
    stand_in: StandIn, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(seen):
        token = seen.headers["Authorization"].removeprefix("Bearer ")
        return web.json_response(
            {"raw": token, "in_text": f"token={token};", "escaped": json.dumps(token)}
        )

    stand_in.answer = echo
    for returns in ("json", "text", "auto", "json:raw"):
        tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url, returns=returns))
        output = await call(tool)
        assert SECRET not in json.dumps(output) and SECRET not in str(output)
        assert "***" in json.dumps(output)
    assert len(stand_in.seen) == 4
    assert all(s.headers["Authorization"] == f"Bearer {SECRET}" for s in stand_in.seen)
    assert "HTTP Request" in caplog.text  # the client logged, and without the secret
    assert SECRET not in caplog.text


async def test_a_long_body_is_cut_at_max_bytes_and_says_so(stand_in: StandIn, tmp_path) -> None:
    stand_in.answer = lambda seen: web.Response(text="x" * 100_000)
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url, extra="max_bytes = 1000"))
    output = await call(tool)
    assert output["truncated"] is True
    assert output["body"] == "x" * 1000 + "…[cut at 1000 bytes]"


async def test_a_cut_never_leaves_the_start_of_a_secret(stand_in: StandIn, tmp_path) -> None:
    stand_in.answer = lambda seen: web.Response(text="x" * 995 + SECRET + "y" * 5000)
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url, extra="max_bytes = 1000"))
    output = await call(tool)
    assert output["body"] == "x" * 995 + "…[cut at 1000 bytes]"


async def test_json_too_long_to_read_whole_is_a_tool_error(stand_in: StandIn, tmp_path) -> None:
    stand_in.answer = lambda seen: web.json_response({"items": ["x" * 100] * 100})
    tool = load(
        tmp_path, echo_runbook(tmp_path, stand_in.url, returns="json", extra="max_bytes = 500")
    )
    with pytest.raises(ToolError, match=r"over max_bytes \(500\)"):
        await call(tool)


async def test_a_slow_server_times_out(stand_in: StandIn, tmp_path) -> None:
    stand_in.answer = stand_in.hang
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url, extra="timeout_seconds = 0.3"))
    with pytest.raises(ToolError, match=r"no complete response within 0.3s"):
        await call(tool)
    assert len(stand_in.seen) == 1


async def test_redirects_are_followed_on_the_same_host_only(stand_in: StandIn, tmp_path) -> None:
    other = stand_in.url.replace("127.0.0.1", "localhost")

    def answer(seen):
        if seen.path == "/echo":
            return web.Response(status=307, headers={"Location": "/moved"})
        if seen.path == "/moved":
            return web.Response(status=307, headers={"Location": f"{other}/stolen"})
        return web.Response(text="should not get here")

    stand_in.answer = answer
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url))
    with pytest.raises(ToolError, match=r"redirected to another host \(localhost\)"):
        await call(tool)
    assert [s.path for s in stand_in.seen] == ["/echo", "/moved"]


async def test_a_missing_secret_is_named_not_shown(
    stand_in: StandIn, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLOOP_SECRET_TOKEN")
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url))
    with pytest.raises(ToolError, match="not configured: set OPSLOOP_SECRET_TOKEN"):
        await call(tool)
    assert stand_in.seen == []


async def test_a_connection_failure_is_a_tool_error_without_the_secret(tmp_path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tool = load(tmp_path, echo_runbook(tmp_path, f"http://127.0.0.1:{port}"))
    with pytest.raises(ToolError, match=r"POST 127\.0\.0\.1 failed: ConnectError") as caught:
        await call(tool)
    assert SECRET not in str(caught.value)


async def test_a_line_break_cannot_add_a_header(stand_in: StandIn, tmp_path) -> None:
    tool = load(
        tmp_path,
        f"""
        kind = "runbook"
        description = "d"
        [arguments.note]
        [http]
        url = "{stand_in.url}/x"
        headers = {{ X-Note = "{{note}}" }}
        """,
    )
    with pytest.raises(ToolError, match="header X-Note: a value may not hold a line break"):
        await call(tool, note="hi\r\nX-Admin: yes")
    assert stand_in.seen == []


async def test_only_http_and_https_urls_are_requested(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_VAR_BASE", "file:///etc")
    tool = load(
        tmp_path,
        """
        kind = "runbook"
        description = "d"
        [http]
        url = "{var.BASE}/passwd"
        """,
    )
    with pytest.raises(ToolError, match="must be http:// or https://"):
        await call(tool)


async def test_a_secret_spelt_in_json_escapes_is_hidden_once_parsed(
    stand_in: StandIn, tmp_path
) -> None:
    def echo(seen):
        token = seen.headers["Authorization"].removeprefix("Bearer ")
        spelt = "".join(f"\\u{ord(c):04x}" for c in token)
        return web.Response(text=f'{{"{spelt}": "{spelt}"}}', content_type="application/json")

    stand_in.answer = echo
    tool = load(tmp_path, echo_runbook(tmp_path, stand_in.url, returns="json"))
    assert await call(tool) == {"status": 200, "body": {"***": "***"}}


async def test_a_runbooks_own_idempotency_key_wins(stand_in: StandIn, tmp_path) -> None:
    tool = load(
        tmp_path,
        echo_runbook(tmp_path, stand_in.url).replace(
            "[http.headers]", '[http.headers]\nidempotency-key = "mine-{note}"'
        ),
    )
    await call(tool, note="1")
    assert stand_in.seen[0].headers.getall("Idempotency-Key") == ["mine-1"]
