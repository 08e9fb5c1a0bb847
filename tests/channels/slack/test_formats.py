"""Slack's text formats and Block Kit: escaping, Slack markup in, pieces, request messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.events import HumanDecision, HumanRequested, Identity
from bot.outbound import split_text
from channels.slack._blocks import request_blocks, resolved_blocks, resolved_text
from channels.slack._inbound import action_event, message_event, view_event
from channels.slack._text import escape, mention, plain_text
from tests.channels.slack import payloads

WHEN = datetime(2026, 11, 21, 20, 15, tzinfo=UTC)
DEV = Identity(channel="slack", user_id="U_DEV")


def approval(**arguments: object) -> HumanRequested:
    return HumanRequested(
        request_id="hr_1",
        type="approval",
        tool="deploy",
        arguments=dict(arguments),
        call_id="c1",
        question="Approve deploy?",
        approvers=("role:oncall", "slack:U_LEAD"),
        requested_by="slack:U_DEV",
        four_eyes=True,
        expires_at=WHEN,
    )


def test_escape_leaves_only_the_three_characters_slack_reserves() -> None:
    assert escape("a & b < c > d *bold* `code`") == "a &amp; b &lt; c &gt; d *bold* `code`"
    assert escape("&amp;") == "&amp;amp;"  # already-escaped text stays literally as written


@pytest.mark.parametrize(
    ("wire", "typed"),
    [
        ("<@UBOT> deploy checkout", "deploy checkout"),
        ("<@UBOT|opsloop> hi <@U2> and <@U3|dana>", "hi @U2 and @dana"),
        ("see <#C1|ops> and <#C2>", "see #ops and #C2"),
        ("<!here> <!subteam^S1|@sre> <!date^1700000000^{date}|Nov 14>", "@here @sre Nov 14"),
        (
            "<https://ci.example/run/7|run 7> <https://x.example> <http://y.example|y.example>",
            "run 7 (https://ci.example/run/7) https://x.example y.example",
        ),
        ("<mailto:a@example.com|a@example.com>", "a@example.com"),
        ("a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"),
        ("<strange>", "<strange>"),
    ],
)
def test_plain_text_reads_slack_markup_as_a_person_typed_it(wire: str, typed: str) -> None:
    assert plain_text(wire, bot_user_id="UBOT") == typed


def test_mention_names_slack_people_and_escapes_others() -> None:
    assert mention("slack:U1") == "<@U1>"
    assert mention("web:<b>") == "web:&lt;b&gt;"
    assert mention(None) == "someone"


def test_split_text_cuts_at_line_ends_and_never_loses_text() -> None:
    text = "\n".join(["a" * 40] * 10)
    pieces = split_text(text, 100)
    assert all(len(p) <= 100 for p in pieces) and "\n".join(pieces) == text
    assert split_text("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
    assert split_text("short", 100) == ["short"]


def test_an_approval_shows_the_exact_arguments_escaped_and_who_may_decide() -> None:
    blocks = request_blocks(approval(service="<!channel>", version="1.4.2"))
    text = json.dumps(blocks)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert '\\"version\\": \\"1.4.2\\"' in text
    [context] = [b for b in blocks if b["type"] == "context"]
    facts = context["elements"][0]["text"]
    assert facts.startswith("Requested by <@U_DEV> · may answer: role:oncall, <@U_LEAD>")
    assert "the requester may not approve" in facts


def test_huge_arguments_stay_within_slacks_block_limits() -> None:
    blocks = request_blocks(approval(script="\n".join(f"echo {n}" * 30 for n in range(400))))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections)
    assert len(blocks) <= 50
    assert "the thread's timeline shows them all" in json.dumps(blocks)


def test_a_resolved_request_says_who_when_and_why() -> None:
    oncall = Identity(channel="slack", user_id="U_ONCALL")
    web = Identity(channel="web", user_id="oncall-1", display_name="On <Call>")
    assert resolved_text(HumanDecision.APPROVE, oncall, WHEN, None) == (
        ":white_check_mark: *Approved* by <@U_ONCALL> "
        "<!date^1795292100^{date_short_pretty} at {time}|2026-11-21 20:15 UTC>"
    )
    assert resolved_text(HumanDecision.REJECT, web, None, "freeze & <b>").endswith(
        "*Rejected* by On &lt;Call&gt; (web): freeze &amp; &lt;b&gt;"
    )
    assert resolved_text(HumanDecision.REJECT, None, WHEN, "late").startswith(
        ":hourglass: *Expired (rejected)* <!date^"
    )
    blocks = resolved_blocks(approval(service="checkout"), "done")
    assert blocks[-1]["text"]["text"] == "done"
    assert all(b["type"] != "actions" for b in blocks)


def test_idempotency_keys_come_from_slacks_own_ids() -> None:
    event = payloads.app_mention("<@UBOT> hi", ts="1.2", thread_ts="1.1")
    received = message_event(event, team="T1", sender=DEV, bot_user_id="UBOT")
    assert received.idempotency_key == "slack:T1:C1:1.2"
    assert received.conversation.thread_key == "1.1"

    body = payloads.block_actions(
        {"action_id": "opsloop_approve", "value": "hr_1", "action_ts": "9.9"},
        user="U_DEV",
        message_ts="1.3",
    )
    clicked = action_event(
        body, body["actions"][0], actor=DEV, decision=HumanDecision.APPROVE, request_id="hr_1"
    )
    assert clicked.idempotency_key == "slack:T1:action:1.3:opsloop_approve:U_DEV:9.9"
    assert clicked.conversation.thread_key == payloads.TOP_TS

    meta = json.dumps({"request": "hr_1", "team": "T1", "channel": "C1", "thread": "1.1"})
    submitted = payloads.view_submission(
        "opsloop_reject_reason",
        block_id="reason",
        text=" no ",
        private_metadata=meta,
        user="U_DEV",
        view_id="V9",
    )
    rejected = view_event(submitted, actor=DEV, decision=HumanDecision.REJECT, field="reason")
    assert (rejected.idempotency_key, rejected.comment) == ("slack:T1:view:V9", "no")
