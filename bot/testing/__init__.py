"""The testing kit for plugin authors: a whole opsloop in one process, for pytest.

:class:`Testbot` runs opsloop with your plugin on a throw-away SQLite database: send a
message as a person, see the tool calls, the replies and the approval requests it would
have sent, approve or reject as another person. The model is code (:class:`ScriptedModel`
plays canned decisions, :class:`FunctionModel` decides with your function) or the offline
model, so no test reaches a real LLM::

    from bot.testing import CallTool, Reply, ScriptedModel, Testbot
    from myteam.ops import plugin

    async def test_purge_asks_first():
        model = ScriptedModel([CallTool(tool="purge", arguments={"path": "/"}), Reply(text="done")])
        async with Testbot(plugins=[plugin], model=model) as bot:
            turn = await bot.send("purge / please", as_="dev-1")
            assert turn.request is not None  # paused for approval
            done = await bot.approve(as_="oncall-1")
            assert done.replies == ["done"]

See ``docs/extending.md``.
"""

from __future__ import annotations

from bot.events import CallTool, Reply
from bot.model import FunctionModel, ModelRequest, ScriptedModel
from bot.model.offline import OfflineModel
from bot.testing._bot import Testbot, Turn
from bot.testing._sent import Sent, ToolUse

__all__ = [
    "CallTool",
    "FunctionModel",
    "ModelRequest",
    "OfflineModel",
    "Reply",
    "ScriptedModel",
    "Sent",
    "Testbot",
    "ToolUse",
    "Turn",
]
