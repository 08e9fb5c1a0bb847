"""The public testing kit: an opsloop in one process, driven as people drive it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.agent import Agent
from bot.errors import ConfigError, DecisionRefusedError
from bot.events import HumanRequested, ThreadStatus, ToolReturned
from bot.inventory import INVENTORY
from bot.plugins import Plugin
from bot.policy import load_policy
from bot.testing import (
    CallTool,
    FunctionModel,
    ModelRequest,
    OfflineModel,
    Reply,
    ScriptedModel,
    Testbot,
)
from bot.tools import Resource, ToolContext, tool

DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


class Ledger:
    """A plugin's service: what was written, and whether opsloop closed it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


LEDGER: Resource[Ledger] = Resource("ledger")
made: list[Ledger] = []


class NoteArgs(BaseModel):
    text: str
    environment: str


@tool(tier="write", touches=("environment",))
async def write_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Write a line in the ledger."""
    ctx.get(LEDGER).lines.append(args.text)
    return f"noted in {ctx.get(LEDGER).name}"


def _ledger(_made: object) -> Ledger:
    made.append(Ledger("from the factory"))
    return made[-1]


PLUGIN = Plugin(
    name="ledgers",
    agents=(
        Agent(
            name="clerk", description="Keeps the ledger.", prompt="assistant", tools=(write_note,)
        ),
    ),
    resources={LEDGER: _ledger},
)


async def test_a_read_runs_and_the_reply_is_recorded_as_sent() -> None:
    model = ScriptedModel(
        [CallTool(tool="list_services", arguments={"environment": "staging"}), Reply(text="4 up")]
    )
    async with Testbot(shipped_agents=True, model=model) as bot:
        turn = await bot.send("what is running in staging?")

        assert turn.status == ThreadStatus.WAITING
        assert turn.thread.agent == "inspector"
        [use] = turn.tool_calls
        assert use.call.tool == "list_services"
        assert isinstance(use.output, list) and len(use.output) == 4
        assert turn.replies == ["4 up"] == bot.replies
        assert [(s.kind, s.channel, s.text) for s in turn.sent] == [("reply", "cli", "4 up")]
        assert await bot.ops.store.pending_outbound(due_only=False) == []


async def test_an_approval_is_asked_with_its_id_then_the_exact_call_runs() -> None:
    async with Testbot(
        shipped_agents=True, model=ScriptedModel([DEPLOY, Reply(text="done")])
    ) as bot:
        asked = await bot.send("deploy checkout 1.4.2 to production", as_="dev-1")

        assert asked.status == ThreadStatus.PAUSED and asked.tool_calls == []
        assert asked.request is not None and asked.request.tool == "deploy"
        request_id = asked.request.request_id
        [card] = asked.sent
        assert card.kind == "request"
        assert card.text.startswith(f"approval needed {request_id}: Approve deploy(")
        assert "may approve: role:oncall; requested by cli:dev-1" in card.text
        assert [r.id for r in await bot.pending()] == [request_id]

        done = await bot.approve(as_="oncall-1", comment="ship it")

        assert done.status == ThreadStatus.WAITING and done.request is None
        [use] = done.tool_calls
        assert use.call.approved_by == "cli:oncall-1"
        assert use.call.arguments == DEPLOY.arguments
        assert [s.text for s in done.sent] == [
            f"approved {request_id} by oncall-1: ship it",
            "done",
        ]
        assert await bot.pending() == []
        assert [u.call.tool for u in await bot.tool_calls()] == ["deploy"]
        status = await bot.get(INVENTORY).service_status("checkout", "production")
        assert status["version"] == "1.4.2"


async def test_a_refused_decision_raises_is_told_to_its_author_and_changes_nothing() -> None:
    async with Testbot(shipped_agents=True, model=ScriptedModel([DEPLOY])) as bot:
        await bot.send("deploy checkout 1.4.2 to production", as_="dev-1")

        with pytest.raises(DecisionRefusedError, match="cli:dev-2 may not decide"):
            await bot.approve(as_="dev-2")

        assert bot.sent[-1].kind == "notice"
        assert bot.sent[-1].text.startswith("to dev-2: cli:dev-2 may not decide request hr_")
        assert len(await bot.pending()) == 1
        assert await bot.tool_calls() == []


async def test_a_rejection_reason_reaches_the_agent() -> None:
    async with Testbot(shipped_agents=True, model=OfflineModel()) as bot:
        await bot.send("restart search in production")
        turn = await bot.reject(as_="oncall-2", reason="freeze until Monday")

        assert turn.tool_calls == [], "a rejected call never runs"
        [result] = [e for e in turn.events if isinstance(e, ToolReturned)]
        assert result.output == {
            "rejected": True,
            "by": "cli:oncall-2",
            "reason": "freeze until Monday",
        }
        assert "freeze until Monday" in turn.text
        assert turn.sent[0].text.startswith("rejected hr_")


async def test_a_question_is_answered_and_the_thread_goes_on() -> None:
    model = ScriptedModel(
        [
            CallTool(tool="ask_human", arguments={"question": "Which one?", "options": ["a", "b"]}),
            Reply(text="b it is"),
        ]
    )
    async with Testbot(shipped_agents=True, model=model) as bot:
        asked = await bot.send("restart checkout")
        assert asked.sent[0].text.endswith(": Which one? (options: a, b)")

        answered = await bot.answer("b")

        assert answered.replies == ["b it is"]
        assert "b</human_response>" in model.requests[1].context


async def test_people_are_named_as_the_policy_names_them() -> None:
    async with Testbot(shipped_agents=True) as bot:
        assert bot.identity("oncall-1").principal == "cli:oncall-1"
        assert bot.identity("slack:U024BE7LH").principal == "slack:U024BE7LH"
        assert bot.identity("someone").principal == "cli:someone"


async def test_a_plugin_passed_directly_brings_its_agent_tool_and_resource() -> None:
    calls = [
        CallTool(tool="write_note", arguments={"text": "hi", "environment": "qa"}),
        Reply(text="ok"),
    ]
    async with Testbot(plugins=[PLUGIN], model=ScriptedModel(calls)) as bot:
        turn = await bot.send("write hi in qa")

        assert turn.thread.agent == "clerk"
        assert [u.output for u in turn.tool_calls] == ["noted in from the factory"]
        assert bot.get(LEDGER).lines == ["hi"]
        assert [a.name for a in bot.ops.runtime.agents.agents] == ["clerk"]
    assert made[-1].closed, "a resource with aclose() is closed with the bot"


async def test_a_fake_resource_replaces_the_plugins_own() -> None:
    """The plugin's factory is not even run: the real client may need credentials."""
    made.clear()
    fake = Ledger("fake")
    calls = [
        CallTool(tool="write_note", arguments={"text": "hi", "environment": "qa"}),
        Reply(text="ok"),
    ]
    async with Testbot(
        plugins=[PLUGIN], model=ScriptedModel(calls), resources={LEDGER: fake}
    ) as bot:
        turn = await bot.send("write hi in qa")

        assert turn.tool_calls[0].output == "noted in fake"
        assert made == [], "the factory of the resource a fake replaces never runs"
    assert fake.lines == ["hi"] and fake.closed


async def test_a_policy_file_decides_and_cards_for_other_places_are_recorded(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = 1\n[roles]\nclerks = ["cli:ann"]\n'
        '[[rules]]\ntools = ["write_note"]\napproval = "required"\n'
        'approvers = ["role:clerks"]\nnotify = ["slack:#ledger"]\n'
    )
    calls = [
        CallTool(tool="write_note", arguments={"text": "hi", "environment": "qa"}),
        Reply(text="ok"),
    ]
    async with Testbot(plugins=[PLUGIN], model=ScriptedModel(calls), policy=policy) as bot:
        asked = await bot.send("write hi in qa", as_="bob")

        assert [(s.channel, s.place) for s in asked.sent] == [
            ("cli", None),
            ("slack", "slack:#ledger"),
        ]
        with pytest.raises(DecisionRefusedError):
            await bot.approve(as_="oncall-1")
        done = await bot.approve(as_="ann")
        assert done.replies == ["ok"]


async def test_a_function_model_sees_the_plugin_agents_tools() -> None:
    def decide(request: ModelRequest) -> Reply:
        return Reply(text=", ".join(t.name for t in request.tools))

    async with Testbot(plugins=[PLUGIN], model=FunctionModel(decide)) as bot:
        assert (await bot.send("what can you do?")).text == "write_note, ask_human"


async def test_unused_scripted_decisions_fail_the_test_on_a_clean_exit() -> None:
    with pytest.raises(AssertionError, match="1 unused decisions"):
        async with Testbot(
            shipped_agents=True, model=ScriptedModel([Reply(text="a"), Reply(text="b")])
        ) as bot:
            await bot.send("hello")


async def test_deciding_with_nothing_pending_says_so() -> None:
    async with Testbot(shipped_agents=True, model=ScriptedModel([Reply(text="hi")])) as bot:
        await bot.send("hello")
        with pytest.raises(
            AssertionError, match=r"no request is pending; sent so far:\n\[reply\] hi"
        ):
            await bot.approve()


def _exists(path: str) -> bool:
    return Path(path).exists()


async def test_a_bot_without_agents_does_not_start_and_leaves_nothing_behind() -> None:
    bot = Testbot()
    with pytest.raises(ConfigError, match="no agents"):
        await bot.start()
    assert bot._home is not None and not _exists(bot._home.name)
    with pytest.raises(RuntimeError, match="not started"):
        bot.ops  # noqa: B018


async def test_the_database_goes_away_with_the_bot() -> None:
    async with Testbot(shipped_agents=True, model=ScriptedModel([Reply(text="hi")])) as bot:
        await bot.send("hello")
        url = bot.ops.store.db.url
        assert _exists(url.split("///", 1)[1])
    assert not _exists(url.split("///", 1)[1])


async def test_the_policy_may_be_given_as_an_object_and_clock_and_settings_pass_through() -> None:
    policy = load_policy()
    policy = policy.model_copy(update={"rules": ()})  # every write needs on-call
    at = []

    def clock():
        from bot.events import utcnow

        at.append(1)
        return utcnow()

    async with Testbot(
        shipped_agents=True,
        model=OfflineModel(),
        policy=policy,
        clock=clock,
        settings={"OPSLOOP_MAX_MESSAGE_CHARS": 50},
    ) as bot:
        turn = await bot.send("restart search in staging")
        assert isinstance(turn.request, HumanRequested)
        assert at, "the runtime used the given clock"
        assert bot.ops.runtime.settings.max_message_chars == 50


async def test_a_resource_that_fails_to_start_closes_what_was_made_before_it() -> None:
    def broken(_made: object) -> Ledger:
        raise ConfigError("ledger: no credentials")

    plugin = Plugin(
        name="broken",
        agents=PLUGIN.agents,
        resources={LEDGER: _ledger, Resource[Ledger]("second"): broken},
    )
    with pytest.raises(ConfigError, match="no credentials"):
        await Testbot(plugins=[plugin]).start()
    assert made[-1].closed


async def test_the_shells_settings_do_not_reach_the_bot(monkeypatch) -> None:
    """A plugin's test behaves the same on every machine: no OPSLOOP_* from the shell."""
    monkeypatch.setenv("OPSLOOP_CONTEXT_TOKENS", "1234")
    monkeypatch.setenv("OPSLOOP_INVENTORY", "nowhere")
    async with Testbot(shipped_agents=True) as bot:
        settings = bot.ops.runtime.settings
        assert settings.context_tokens != 1234 and settings.inventory == "demo"
