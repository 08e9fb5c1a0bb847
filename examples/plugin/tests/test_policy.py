"""My team's policy, tried on the flags tool: which change needs whom."""

from __future__ import annotations

from pathlib import Path

import pytest
from bot.errors import DecisionRefusedError
from bot.testing import CallTool, Reply, ScriptedModel, Testbot

from myteam.ops import plugin

POLICY = Path(__file__).parent.parent / "policy.toml"


def turn_on(flag: str, environment: str) -> CallTool:
    arguments = {"flag": flag, "environment": environment, "enabled": True}
    return CallTool(tool="set_flag", arguments=arguments)


async def test_outside_production_a_flag_changes_at_once() -> None:
    model = ScriptedModel([turn_on("new-checkout", "staging"), Reply(text="On.")])
    async with Testbot(plugins=[plugin], model=model, policy=POLICY) as bot:
        turn = await bot.send("turn new-checkout on in staging", as_="cat")

        assert turn.request is None
        assert [use.call.tool for use in turn.tool_calls] == ["set_flag"]


async def test_in_production_someone_else_on_call_approves() -> None:
    model = ScriptedModel([turn_on("new-checkout", "production"), Reply(text="On.")])
    async with Testbot(plugins=[plugin], model=model, policy=POLICY) as bot:
        asked = await bot.send("turn new-checkout on in production", as_="ann")
        assert asked.request is not None

        with pytest.raises(DecisionRefusedError, match="four-eyes"):
            await bot.approve(as_="ann")
        done = await bot.approve(as_="bob")
        assert done.replies == ["On."]


async def test_a_kill_switch_needs_two_on_call_people() -> None:
    model = ScriptedModel([turn_on("kill-payments", "staging"), Reply(text="Killed.")])
    async with Testbot(plugins=[plugin], model=model, policy=POLICY) as bot:
        asked = await bot.send("flip kill-payments in staging", as_="cat")
        assert asked.request is not None
        assert "(kill switches need two on-call people)" in asked.request.question

        first = await bot.approve(as_="ann")
        assert first.tool_calls == [] and "still needed" in first.sent[0].text
        done = await bot.approve(as_="bob")
        assert [use.call.tool for use in done.tool_calls] == ["set_flag"]
