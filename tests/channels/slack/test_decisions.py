"""Human decisions from Slack: buttons and modals in, the request message edited out."""

from __future__ import annotations

import json
from typing import Any

from bot.events import CallTool, Reply, ThreadStatus, ToolCalled, ToolReturned
from bot.model import ScriptedModel
from bot.store import Database, HumanRequest
from tests.channels.slack import payloads
from tests.channels.slack.conftest import MakeSlack, SlackHarness
from tests.channels.slack.fake_slack import Call
from tests.channels.slack.payloads import CHANNEL, TOP_TS

DEPLOY = "<@UBOT> deploy checkout 1.4.2 to production"


async def asked(slack: SlackHarness, text: str = DEPLOY) -> tuple[HumanRequest, Call]:
    """Mention opsloop with ``text`` and return the request and the message that shows it."""
    await slack.event(payloads.app_mention(text), event_id="Ev1")
    await slack.work()
    [prompt] = slack.posted()
    return await slack.only_request(), prompt


def button(prompt: Call, action_id: str) -> dict[str, Any]:
    [actions] = [b for b in prompt.params["blocks"] if b["type"] == "actions"]
    [found] = [e for e in actions["elements"] if e["action_id"] == action_id]
    return {**found, "block_id": actions["block_id"]}


def click(
    prompt: Call, action_id: str, user: str, action_ts: str = "1700000200.1"
) -> dict[str, Any]:
    """The block_actions payload of ``user`` clicking a button of the request message."""
    return payloads.block_actions(
        {**button(prompt, action_id), "action_ts": action_ts},
        user=user,
        message_ts=prompt.answer["ts"],
        message_text=prompt.params["text"],
    )


def tool_events(thread: Any) -> tuple[list[ToolCalled], list[ToolReturned]]:
    calls = [e for e in thread.events if isinstance(e, ToolCalled) and e.tool == "deploy"]
    results = [e for e in thread.events if isinstance(e, ToolReturned) and e.tool == "deploy"]
    return calls, results


async def test_an_allowed_click_resumes_the_thread_runs_the_action_once_and_updates_the_message(
    make_slack: MakeSlack, database: Database
) -> None:
    slack = await make_slack(database=database)  # on SQLite, then on PostgreSQL
    request, prompt = await asked(slack)
    assert await slack.thread_status(request) == ThreadStatus.PAUSED

    approve = click(prompt, "opsloop_approve", "U_ONCALL")
    assert (await slack.interact(approve)).status_code == 200
    assert (await slack.interact(approve)).status_code == 200  # redelivered: dropped
    assert len(slack.dispatcher.of("process")) == 2  # the mention and one click
    await slack.work()

    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_ONCALL")
    thread = await slack.ops.store.load_thread(request.thread_id)
    calls, results = tool_events(thread)
    assert [c.approved_by for c in calls] == ["slack:U_ONCALL"]
    assert calls[0].arguments == request.request.arguments
    assert len(results) == 1

    [update] = slack.fake.of("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (CHANNEL, prompt.answer["ts"])
    assert update.params["text"].startswith(":white_check_mark: *Approved* by <@U_ONCALL> <!date^")
    blocks = update.params["blocks"]
    assert all(b["type"] != "actions" for b in blocks)  # the buttons are gone
    assert '\\"service\\": \\"checkout\\"' in json.dumps(blocks)  # what was approved stays
    [_, reply] = slack.posted()
    assert reply.params["thread_ts"] == TOP_TS
    assert "deploy checkout" in reply.params["text"]
    assert slack.fake.of("chat.postEphemeral") == []


async def test_a_click_by_someone_who_may_not_decide_changes_nothing_and_is_told_privately(
    slack: SlackHarness,
) -> None:
    request, prompt = await asked(slack)
    await slack.interact(click(prompt, "opsloop_approve", "U_DEV"))
    await slack.work()

    assert (await slack.ops.store.human_request(request.id)).status == "pending"
    assert await slack.thread_status(request) == ThreadStatus.PAUSED
    assert slack.fake.of("chat.update") == []
    assert len(slack.posted()) == 1
    [told] = slack.fake.of("chat.postEphemeral")
    assert (told.params["channel"], told.params["user"]) == (CHANNEL, "U_DEV")
    assert told.params["thread_ts"] == TOP_TS
    assert "slack:U_DEV may not decide" in told.params["text"]


async def test_a_second_click_is_told_the_request_was_already_decided(
    slack: SlackHarness,
) -> None:
    request, prompt = await asked(slack)
    await slack.interact(click(prompt, "opsloop_approve", "U_ONCALL"))
    await slack.work()
    await slack.interact(click(prompt, "opsloop_approve", "U_ONCALL2", action_ts="1700000201.1"))
    await slack.work()

    [told] = slack.fake.of("chat.postEphemeral")
    assert told.params["user"] == "U_ONCALL2"
    assert "already approved by slack:U_ONCALL" in told.params["text"]
    assert len(slack.fake.of("chat.update")) == 1
    calls, _ = tool_events(await slack.ops.store.load_thread(request.thread_id))
    assert len(calls) == 1


async def test_a_user_group_member_may_decide_and_groups_are_looked_up_once(
    slack: SlackHarness,
) -> None:
    request, prompt = await asked(slack)
    await slack.interact(click(prompt, "opsloop_approve", "U_SRE"))  # on call through S_SRE
    await slack.work()
    assert (await slack.ops.store.human_request(request.id)).decided_by == "slack:U_SRE"
    assert len(slack.fake.of("usergroups.list")) == 1  # cached between the two requests


async def test_reject_asks_why_in_a_modal_and_the_reason_reaches_the_agent(
    slack: SlackHarness,
) -> None:
    request, prompt = await asked(slack)
    response = await slack.interact(click(prompt, "opsloop_reject", "U_ONCALL"))
    assert response.status_code == 200
    assert len(slack.dispatcher.of("process")) == 1  # opening the modal decides nothing
    [opened] = await slack.fake.called("views.open")
    assert opened.params["trigger_id"] == "111.222.abc"
    view = opened.params["view"]
    assert view["callback_id"] == "opsloop_reject_reason"
    meta = view["private_metadata"]
    assert json.loads(meta) == {
        "request": request.id,
        "team": "T1",
        "channel": CHANNEL,
        "thread": TOP_TS,
    }

    blank = payloads.view_submission(
        "opsloop_reject_reason",
        block_id="reason",
        text="  ",
        private_metadata=meta,
        user="U_ONCALL",
    )
    refused = await slack.interact(blank)
    assert refused.json() == {
        "response_action": "errors",
        "errors": {"reason": "Please write something."},
    }
    submitted = payloads.view_submission(
        "opsloop_reject_reason",
        block_id="reason",
        text="change freeze until Monday",
        private_metadata=meta,
        user="U_ONCALL",
        view_id="V0DEF",
    )
    closed = await slack.interact(submitted)
    assert (closed.status_code, closed.text) == (200, "")
    await slack.work()

    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.comment) == ("rejected", "change freeze until Monday")
    [update] = slack.fake.of("chat.update")
    assert update.params["text"].startswith(":x: *Rejected* by <@U_ONCALL> <!date^")
    assert update.params["text"].endswith(": change freeze until Monday")
    calls, [result] = tool_events(await slack.ops.store.load_thread(request.thread_id))
    assert calls == [] and result.output["reason"] == "change freeze until Monday"
    [_, reply] = slack.posted()
    assert "change freeze until Monday" in reply.params["text"]


QUESTION = CallTool(
    tool="ask_human",
    arguments={"question": "Which environment, <@U_DEV>?", "options": ["staging", "production"]},
)


async def test_a_question_offers_its_options_as_buttons(make_slack: MakeSlack) -> None:
    slack = await make_slack(ScriptedModel([QUESTION, Reply(text="Production it is.")]))
    request, prompt = await asked(slack, "<@UBOT> deploy checkout please")
    assert "Which environment, &lt;@U_DEV&gt;?" in prompt.params["text"]  # escaped: no ping
    labels = [
        e["text"]["text"]
        for b in prompt.params["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert labels == ["staging", "production", "Answer…"]

    await slack.interact(click(prompt, "opsloop_option_1", "U_DEV"))
    await slack.work()
    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.comment) == ("answered", "production")
    [update] = slack.fake.of("chat.update")
    assert update.params["text"].startswith(":speech_balloon: *Answered* by <@U_DEV>")
    assert update.params["text"].endswith(": production")
    assert slack.posted()[-1].params["text"] == "Production it is."


async def test_a_question_takes_a_free_text_answer_in_a_modal(make_slack: MakeSlack) -> None:
    slack = await make_slack(ScriptedModel([QUESTION, Reply(text="Canary first, then.")]))
    request, prompt = await asked(slack, "<@UBOT> deploy checkout please")
    await slack.interact(click(prompt, "opsloop_answer", "U_DEV"))
    [opened] = await slack.fake.called("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == "opsloop_answer_text"
    assert "Which environment" in view["blocks"][0]["text"]["text"]

    answer = payloads.view_submission(
        "opsloop_answer_text",
        block_id="answer",
        text="a canary in production first",
        private_metadata=view["private_metadata"],
        user="U_DEV",
    )
    assert (await slack.interact(answer)).status_code == 200
    await slack.work()
    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.comment) == ("answered", "a canary in production first")
    assert slack.posted()[-1].params["text"] == "Canary first, then."


async def test_a_modal_that_cannot_open_is_explained(slack: SlackHarness) -> None:
    _, prompt = await asked(slack)
    slack.fake.errors["views.open"] = "expired_trigger_id"
    await slack.interact(click(prompt, "opsloop_reject", "U_ONCALL"))
    [told] = await slack.fake.called("chat.postEphemeral")
    assert (told.params["user"], told.params["thread_ts"]) == ("U_ONCALL", TOP_TS)
    assert "click again" in told.params["text"]
