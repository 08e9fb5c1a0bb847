"""The done-when through the web console: an MCP write tool pauses, and is approved there.

``mcp-server-git`` declared by file; a person asks in the console, the commit waits for an
approval that another person gives through the console's HTTP routes, then it is made.
(Slack, Discord and email drive the same human request through their own harnesses.)
"""

from __future__ import annotations

from pathlib import Path

import httpx2

from bot.api import create_app
from bot.app import Opsloop
from bot.config import load_settings
from bot.events import CallTool, Reply
from bot.model import ScriptedModel
from channels import web
from tests.channels.web.test_console import TOKEN, Console
from tests.fakes import RecordingDispatcher
from tests.mcp_sources.servers import declare_git, git_log, git_repo


async def test_an_mcp_commit_is_approved_in_the_console(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "notes.txt").unlink()
    (repo / "README.md").write_text("changed\n")
    tools = tmp_path / "tools"
    declare_git(tools, repo)
    settings = load_settings(
        OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools), OPSLOOP_API_TOKEN=TOKEN
    )
    add = CallTool(tool="git_add", arguments={"repo_path": str(repo), "files": ["README.md"]})
    commit = CallTool(
        tool="git_commit", arguments={"repo_path": str(repo), "message": "via-console"}
    )
    model = ScriptedModel([add, commit, Reply(text="done")])
    ops = await Opsloop.from_settings(settings, models={"default": model})
    dispatcher = RecordingDispatcher()
    app = create_app(settings, ops=ops, dispatcher=dispatcher, plugins=(web.plugin,))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://console.test"
    )
    console = Console(client=client, ops=ops, dispatcher=dispatcher)
    try:
        await console.login("dev-1")
        thread_id = await console.say("call git_add and commit README.md")
        oncall = console.browser()
        await oncall.login("oncall-1")
        for tool in ("git_add", "git_commit"):
            [request] = (await console.thread(thread_id))["pending_requests"]
            assert request["tool"] == tool
            assert git_log(repo) == ["first"]
            await oncall.decide(request["request_id"], "approve")
        thread = await console.thread(thread_id)
        assert thread["status"] == "waiting"
        assert git_log(repo) == ["via-console", "first"]
    finally:
        for other in console.browsers:
            await other.aclose()
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await ops.aclose()
    model.assert_consumed()
