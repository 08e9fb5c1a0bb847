"""Approve with changes from Slack: a button, a modal of the call's arguments, the edit runs."""

from __future__ import annotations

import json

from tests.channels.slack import payloads
from tests.channels.slack.block_kit import view_errors
from tests.channels.slack.conftest import SlackHarness
from tests.channels.slack.test_decisions import asked, click, tool_events

EDIT_VIEW = "opsloop_edit_arguments"


def submission(meta: str, user: str, view_id: str, **texts: str | None) -> dict:
    return payloads.view_submission(
        EDIT_VIEW,
        block_id="",
        text="",
        private_metadata=meta,
        user=user,
        view_id=view_id,
        values={f"arg:{key}": value for key, value in texts.items()},
    )


async def opened_edit(slack: SlackHarness, user: str = "U_ONCALL") -> tuple[object, dict, str]:
    request, prompt = await asked(slack)
    response = await slack.interact(click(prompt, "opsloop_edit", user))
    assert response.status_code == 200
    [opened] = await slack.fake.called("views.open")
    assert opened.params["trigger_id"] == "111.222.abc"
    view = opened.params["view"]
    return request, view, view["private_metadata"]


async def test_the_modal_edits_the_call_and_the_edited_call_runs_once(
    slack: SlackHarness,
) -> None:
    request, view, meta = await opened_edit(slack)
    assert len(slack.dispatcher.of("process")) == 1  # opening the modal decides nothing
    assert view_errors(view) == []  # the fake took it: valid Block Kit
    assert view["callback_id"] == EDIT_VIEW
    assert view["title"]["text"] == "Approve with changes"
    assert json.loads(meta)["request"] == request.id
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert {k: b["element"].get("initial_value") for k, b in inputs.items()} == {
        "arg:service": "checkout",
        "arg:environment": "production",
        "arg:version": "1.4.2",
    }
    assert all(b["element"]["action_id"] == "value" for b in inputs.values())

    edited = submission(
        meta, "U_ONCALL", "V0ED1", service="checkout", environment="production", version="1.4.3"
    )
    closed = await slack.interact(edited)
    assert (closed.status_code, closed.text) == (200, "")
    assert (await slack.interact(edited)).status_code == 200  # redelivered: dropped
    assert len(slack.dispatcher.of("process")) == 2
    await slack.work()

    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_ONCALL")
    thread = await slack.ops.store.load_thread(request.thread_id)
    calls, results = tool_events(thread)
    assert [c.arguments["version"] for c in calls] == ["1.4.3"]
    assert len(results) == 1
    response = next(e for e in thread.events if e.kind == "human_response")
    assert response.changes == {"version": "1.4.3"}
    [update] = slack.fake.of("chat.update")
    assert update.params["text"].startswith(
        ":white_check_mark: *Approved with changes (version → 1.4.3)* by <@U_ONCALL>"
    )


async def test_invalid_values_come_back_in_the_modal_and_nothing_is_stored(
    slack: SlackHarness,
) -> None:
    request, _, meta = await opened_edit(slack)
    bad = submission(meta, "U_ONCALL", "V0ED2", service="Check Out!", version="1.4.3")
    refused = await slack.interact(bad)
    body = refused.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"arg:service"}
    assert "pattern" in body["errors"]["arg:service"]
    same = submission(meta, "U_ONCALL", "V0ED3", service="checkout", version="1.4.2")
    nothing = (await slack.interact(same)).json()
    assert nothing["response_action"] == "errors"
    assert "Nothing is changed" in next(iter(nothing["errors"].values()))
    assert len(slack.dispatcher.of("process")) == 1  # only the mention
    assert (await slack.ops.store.human_request(request.id)).status == "pending"


async def test_a_policy_refusal_of_an_edit_comes_later_as_a_private_notice(
    slack: SlackHarness,
) -> None:
    request, _, meta = await opened_edit(slack, user="U_DEV")
    edited = submission(meta, "U_DEV", "V0ED4", version="1.4.3")
    closed = await slack.interact(edited)
    assert (closed.status_code, closed.text) == (200, "")
    await slack.work()
    assert (await slack.ops.store.human_request(request.id)).status == "pending"
    [told] = slack.fake.of("chat.postEphemeral")
    assert told.params["user"] == "U_DEV"
    assert "slack:U_DEV may not decide" in told.params["text"]
    calls, _ = tool_events(await slack.ops.store.load_thread(request.thread_id))
    assert calls == []


async def test_the_fake_refuses_a_modal_slack_would_refuse() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "A title far too long for Slack"},
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "version"},
                "element": {"type": "plain_text_input", "initial_value": "x" * 10, "max_length": 5},
            }
        ],
    }
    errors = view_errors(view)
    assert any(e.startswith("title:") for e in errors)
    assert any("block_id: required" in e for e in errors)
    assert any("action_id: required" in e for e in errors)
    assert any("initial_value" in e for e in errors)
    assert any(e.startswith("submit:") for e in errors)
