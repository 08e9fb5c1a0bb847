"""Request messages within Slack's Block Kit limits, and a fake that refuses what Slack does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import load_settings
from bot.events import CallTool, HumanDecision, Reply
from bot.model import ScriptedModel
from channels.slack._blocks import fit, request_blocks, resolved_blocks, resolved_text
from tests.channels.slack import payloads
from tests.channels.slack.block_kit import block_errors
from tests.channels.slack.conftest import MakeSlack, SlackHarness
from tests.channels.slack.fake_slack import Call
from tests.channels.slack.test_decisions import asked, click
from tests.channels.slack.test_formats import DEV, WHEN, approval

CONSOLE = "https://ops.example.com"


async def console_linked(make_slack: MakeSlack, tmp_path: Path, *decisions: Any) -> SlackHarness:
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_PUBLIC_URL=CONSOLE)
    model = ScriptedModel(list(decisions)) if decisions else None
    return await make_slack(model, settings_=settings)


def accepted(call: Call) -> None:
    assert call.answer["ok"], (call.answer, call.refused)
    assert block_errors(call.params.get("blocks") or []) == []


def texts(call: Call) -> list[str]:
    found = []
    for block in call.params["blocks"]:
        if block["type"] == "section":
            found.append(block["text"]["text"])
        found += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return found


async def test_a_question_with_long_non_ascii_options_and_escapes_is_posted(
    make_slack: MakeSlack, tmp_path: Path
) -> None:
    """Regression: a 1,900-character option became a 2,418+ character button value, and a
    question full of ``&`` escaped past 3,000 characters: Slack refused the whole message."""
    option = "é" * 1900
    question = "Deploy R&D build? " + "&" * 1500
    ask = CallTool(
        tool="ask_human", arguments={"question": question, "options": [option, "staging"]}
    )
    slack = await console_linked(make_slack, tmp_path, ask, Reply(text="Noted."))
    request, prompt = await asked(slack, "<@UBOT> deploy checkout please")
    accepted(prompt)
    [section] = [t for t in texts(prompt) if t.startswith(":question:")]
    assert len(section) <= 3000
    assert section.endswith(f"<{CONSOLE}/threads/{request.thread_id}|the rest is in the console>")
    assert "&am…" not in section and not section.split("…")[0].endswith("&")

    await slack.interact(click(prompt, "opsloop_option_0", "U_DEV"))
    await slack.work()
    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.comment) == ("answered", option)  # the whole option
    [update] = slack.fake.of("chat.update")
    accepted(update)


def test_an_approval_with_a_long_argument_and_a_long_reason_stays_within_limits() -> None:
    """Regression: a long argument's section reached 3,269 characters once escaped."""
    request = approval(service="checkout", note="R&D <urgent> " * 400)
    link = f"{CONSOLE}/threads/th_1"
    blocks = request_blocks(request, link)
    assert block_errors(blocks) == []
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    shown = [text for text in sections if text.startswith("```")]
    assert len(shown) > 1
    assert " ".join(s.strip("`") for s in shown).count("R&amp;D &lt;urgent&gt;") == 400

    reason = "not & now " * 299  # 2,990 characters; 3,587 escaped
    outcome = resolved_text(HumanDecision.REJECT, DEV, WHEN, reason)
    resolved = resolved_blocks(request, outcome, link)
    assert block_errors(resolved) == []
    assert resolved[-1]["text"]["text"].endswith(f"<{link}|the rest is in the console>")


async def test_a_long_decision_comment_still_updates_the_message(
    make_slack: MakeSlack, tmp_path: Path
) -> None:
    """Regression: the outcome was cut at 2,900 characters, inside an escape or not at all."""
    slack = await console_linked(make_slack, tmp_path)
    request, prompt = await asked(slack, "<@UBOT> deploy checkout 1.4.2 to production")
    accepted(prompt)
    await slack.interact(click(prompt, "opsloop_reject", "U_ONCALL"))
    [opened] = await slack.fake.called("views.open")
    accepted(opened)
    submitted = payloads.view_submission(
        "opsloop_reject_reason",
        block_id="reason",
        text="not & now " * 299,
        private_metadata=opened.params["view"]["private_metadata"],
        user="U_ONCALL",
    )
    assert (await slack.interact(submitted)).status_code == 200
    await slack.work()
    assert (await slack.ops.store.human_request(request.id)).status == "rejected"
    [update] = slack.fake.of("chat.update")
    accepted(update)
    assert texts(update)[-1].endswith("|the rest is in the console>")


async def test_the_fake_refuses_what_slack_refuses(slack: SlackHarness) -> None:
    """The fake answers ``invalid_blocks`` and ``msg_too_long`` like Slack, so tests fail too."""
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    button = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "a",
                "text": {"type": "plain_text", "text": "b"},
                "value": "v" * 2001,
            },
        ],
    }
    client = AsyncWebClient(token="xoxb-test", base_url=slack.fake.api_url)
    for blocks in ([section], [button], [{"type": "divider"}] * 51):
        try:
            await client.chat_postMessage(channel="C1", text="t", blocks=blocks)
        except SlackApiError as exc:
            assert exc.response["error"] == "invalid_blocks"
        else:
            raise AssertionError(f"the fake took {json.dumps(blocks)[:80]}")
    try:
        await client.chat_postMessage(channel="C1", text="x" * 40_001)
    except SlackApiError as exc:
        assert exc.response["error"] == "msg_too_long"
    else:
        raise AssertionError("the fake took 40,001 characters")


def test_fit_cuts_short_without_breaking_escapes_or_mentions() -> None:
    assert fit("short", 10) == "short"
    cut = fit("a" * 10 + "&amp;" * 10, 30)
    assert len(cut) <= 30 and cut.endswith("… _(cut short)_") and "&am…" not in cut
    mention = fit("x" * 5 + "<@U0123456789> and more text here", 26)
    assert "<@U" not in mention and len(mention) <= 26
