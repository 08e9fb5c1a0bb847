"""The flags tools, tried the way people use them: in a chat, through the policy."""

from __future__ import annotations

from bot.testing import CallTool, Reply, ScriptedModel, Testbot

from myteam.flags import FLAGS
from myteam.ops import plugin

STAGING = {"flag": "new-checkout", "environment": "staging", "enabled": False}
PRODUCTION = {"flag": "new-checkout", "environment": "production", "enabled": True}


async def test_a_flag_outside_production_changes_at_once() -> None:
    model = ScriptedModel([CallTool(tool="set_flag", arguments=STAGING), Reply(text="Done.")])
    async with Testbot(plugins=[plugin], model=model) as bot:
        turn = await bot.send("turn the new-checkout flag off in staging", as_="dev-1")

        [call] = turn.tool_calls
        assert call.output == {**STAGING, "was_enabled": True}
        assert bot.get(FLAGS).get("new-checkout", "staging") is False
        assert turn.replies == ["Done."]


async def test_a_flag_in_production_waits_for_on_call() -> None:
    model = ScriptedModel([CallTool(tool="set_flag", arguments=PRODUCTION), Reply(text="On.")])
    async with Testbot(plugins=[plugin], model=model) as bot:
        asked = await bot.send("turn new-checkout on in production", as_="dev-1")

        assert asked.request is not None and asked.tool_calls == []
        assert "may approve: role:oncall" in asked.sent[-1].text
        assert bot.get(FLAGS).get("new-checkout", "production") is False

        done = await bot.approve(as_="oncall-1", comment="go")
        [call] = done.tool_calls
        assert call.call.approved_by == "cli:oncall-1"
        assert bot.get(FLAGS).get("new-checkout", "production") is True
        assert done.replies == ["On."]
