"""The console's Tools page, and the source tag on a timeline's calls of tools not built in.

The page must show what ``opsloop tools list`` shows (one report, :func:`check_policy`), so
the tests compare its rows with that report rather than with words of their own.
"""

from __future__ import annotations

import dataclasses
import html
import re

import pytest

from bot.policy import Policy
from bot.policy_check import check_policy
from bot.tools import Tool
from tests.channels.web.test_console import (  # noqa: F401 (fixtures)
    SCRIPT,
    Console,
    MakeConsole,
    console_settings,
    make_console,
)

SHIPPED = ["deploy", "list_services", "recent_deploys", "restart", "rollback", "service_status"]

BLIND = Policy.model_validate(
    {
        "version": 1,
        "roles": {"oncall": ["web:oncall-1"]},
        "rules": [
            {"tiers": ["write"], "environments": ["production"], "approval": "required",
             "approvers": ["role:oncall"]},
            {"name": "anything goes", "approval": "none"},
        ],
    }
)  # fmt: skip
"""A rule that allows writes without naming a tool or what they touch: skipped for them."""


@pytest.fixture
async def ui(make_console: MakeConsole) -> Console:  # noqa: F811  (the fixture imported above)
    """A console on the ``policy`` fixture's policy (the bundled one unless parametrized)."""
    return await make_console()


def rows(page: str) -> dict[str, str]:
    """Each table row's HTML by the tool it shows."""
    found = re.findall(r'<tr data-tool="([^"]+)"[^>]*>(.*?)</tr>', page, re.S)
    return dict(found)


def shipped_tool(ui: Console, name: str) -> Tool:
    for agent in ui.ops.runtime.agents.agents:
        if (found := agent.tool(name)) is not None:
            return found
    raise AssertionError(f"no agent has {name}")


def with_tools(ui: Console, *tools: Tool) -> None:
    """Put ``tools`` in force in place of the agents' own of the same name."""
    runtime = ui.ops.runtime
    ui.ops.runtime = dataclasses.replace(
        runtime, tools={**runtime.tools, **{t.name: t for t in tools}}
    )


async def test_a_signed_in_person_sees_every_shipped_tool_and_its_rules(
    ui: Console,
) -> None:
    await ui.login()

    response = await ui.client.get("/tools")

    assert response.status_code == 200
    page = response.text
    assert '<a href="/tools" aria-current="page">Tools</a>' in page
    found = rows(page)
    assert list(found) == SHIPPED
    rt = ui.ops.runtime
    report = {r.tool.name: r for r in check_policy(rt.policy, rt.tools, rt.agents.agents).tools}
    for name, row in found.items():
        tool = report[name]
        # The same words as ``opsloop tools list``: each rule that may decide, in order.
        assert [html.unescape(t) for t in re.findall(r"<li>(.*?)</li>", row)] == [
            use.text for use in tool.rules
        ], name
        assert f'<span class="badge tier-{tool.tool.tier}">' in row
        agents = re.findall(r'<span class="agent">(.*?)</span>', row)
        assert agents == list(tool.agents), name
    deploy = found["deploy"]
    assert "<code>environment</code>, <code>service</code>" in deploy
    assert "production changes need on-call approval" in deploy
    assert 'class="source-tag source-built-in">built-in</span>' in deploy
    assert "has-warning" not in page
    assert 'id="policy-warnings"' not in page
    assert "Policy OK" in page


async def test_the_admin_sees_it_too(ui: Console) -> None:
    assert (await ui.post_token("console-test-token-0123456789")).status_code == 303
    response = await ui.client.get("/tools")
    assert response.status_code == 200
    assert list(rows(response.text)) == SHIPPED


async def test_signed_out_the_page_sends_you_to_sign_in(ui: Console) -> None:
    response = await ui.client.get("/tools")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "deploy" not in response.text


@pytest.mark.parametrize("policy", [BLIND])
async def test_a_blind_rule_shows_the_policy_check_s_warnings_above_the_table(
    ui: Console,
) -> None:
    await ui.login()

    page = (await ui.client.get("/tools")).text

    rt = ui.ops.runtime
    warnings = check_policy(rt.policy, rt.tools, rt.agents.agents).warnings
    assert any("'anything goes' allows changes without naming a tool" in w for w in warnings)
    box = page[page.index('id="policy-warnings"') : page.index("<table")]
    shown = [html.unescape(w) for w in re.findall(r"<li>(.*?)</li>", box, re.S)]
    assert shown == list(warnings)
    assert f"<strong>{len(warnings)} warnings</strong>" in box
    restart = html.unescape(rows(page)["restart"])
    assert 'class="has-warning"' in page
    assert "skipped: 'anything goes' (allows changes without naming them)" in restart
    assert "! otherwise → approval by role:oncall" in restart  # the fail-closed default
    assert "Policy OK" not in page


async def test_a_tool_from_elsewhere_shows_its_source_here_and_in_the_timeline(
    ui: Console,
) -> None:
    await ui.login()
    built_in = await ui.say("what is running in staging?")
    assert "source-tag" not in (await ui.client.get(f"/threads/{built_in}")).text
    listed = shipped_tool(ui, "list_services")
    with_tools(
        ui,
        dataclasses.replace(listed, source="mcp", origin="git", description=f"list them {SCRIPT}"),
    )

    page = (await ui.client.get("/tools")).text
    row = rows(page)["list_services"]
    assert '<span class="source-tag source-mcp">mcp</span> <span class="origin">git</span>' in row
    assert SCRIPT not in page  # a description from an MCP server is text, never markup
    assert "list them &lt;script&gt;" in row

    thread_id = await ui.say("what is running in staging?")
    timeline = (await ui.client.get(f"/threads/{thread_id}")).text
    tag = '<span class="source-tag source-mcp" title="where this tool came from">mcp · git</span>'
    assert f"<code>list_services</code> {tag}" in timeline
    assert timeline.count(tag) == 2  # the call and its result
