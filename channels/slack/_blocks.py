"""Block Kit: the request message, its resolved form, and the two modals.

Every piece of text that came from a person or the model goes through :func:`escape`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.events import HumanDecision, HumanRequested, Identity
from bot.outbound import split_text
from channels.slack._text import escape, mention, slack_date

__all__ = [
    "ANSWER",
    "ANSWER_VIEW",
    "APPROVE",
    "OPTION",
    "REJECT",
    "REJECT_VIEW",
    "answer_modal",
    "option_value",
    "reject_modal",
    "request_blocks",
    "request_text",
    "resolved_blocks",
    "resolved_text",
]

Block = dict[str, Any]

APPROVE = "opsloop_approve"
"""Action id of the Approve button; its value is the request id."""
REJECT = "opsloop_reject"
"""Action id of the Reject button: opens :data:`REJECT_VIEW` for the reason."""
ANSWER = "opsloop_answer"
"""Action id of the "Answer…" button: opens :data:`ANSWER_VIEW` for free text."""
OPTION = "opsloop_option"
"""Prefix of the option buttons' action ids (``opsloop_option_0``…)."""
REJECT_VIEW = "opsloop_reject_reason"
"""Callback id of the modal asking why a request is rejected."""
ANSWER_VIEW = "opsloop_answer_text"
"""Callback id of the modal taking a free-text answer."""

_SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters
_MAX_ARGUMENT_SECTIONS = 10
_BUTTON_LABEL = 75


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _plain(text: str, limit: int = _BUTTON_LABEL) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _arguments(request: HumanRequested) -> list[Block]:
    shown = json.dumps(request.arguments or {}, indent=2, sort_keys=True, ensure_ascii=False)
    pieces = split_text(escape(shown), _SECTION_LIMIT - 8)
    blocks = [_section(f"```{piece}```") for piece in pieces[:_MAX_ARGUMENT_SECTIONS]]
    if len(pieces) > _MAX_ARGUMENT_SECTIONS:
        blocks.append(_context("_The arguments go on; the thread's timeline shows them all._"))
    return blocks


def _description(request: HumanRequested) -> list[Block]:
    if request.type == "approval":
        blocks = [
            _section(f":raised_hand: *Approval needed*\n{escape(request.question)}"),
            _section(f"*Action:* `{escape(request.tool or '?')}` with exactly these arguments:"),
            *_arguments(request),
        ]
    else:
        blocks = [_section(f":question: *Question*\n{escape(request.question)}")]
    who = ", ".join(mention(a) if a.startswith("slack:") else escape(a) for a in request.approvers)
    facts = [f"Requested by {mention(request.requested_by)}"] if request.requested_by else []
    facts.append(f"may answer: {who or 'anyone'}")
    if request.four_eyes and request.type == "approval":
        facts.append("the requester may not approve")
    facts.append(f"expires {slack_date(request.expires_at)}")
    facts.append(f"request `{escape(request.request_id)}`")
    return [*blocks, _context(" · ".join(facts))]


def option_value(request_id: str, option: str) -> str:
    """An option button's value: the request and the exact answer (Slack keeps 2000 chars)."""
    return json.dumps({"request": request_id, "answer": option[:1900]})


def _buttons(request: HumanRequested) -> Block:
    rid = request.request_id
    if request.type == "approval":
        elements: list[Block] = [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": _plain("Approve"),
                "style": "primary",
                "value": rid,
                "confirm": {
                    "title": _plain("Run it?", 100),
                    "text": {
                        "type": "mrkdwn",
                        "text": f"Approve `{escape(request.tool or '?')}` as shown?",
                    },
                    "confirm": _plain("Approve", 30),
                    "deny": _plain("Cancel", 30),
                },
            },
            {
                "type": "button",
                "action_id": REJECT,
                "text": _plain("Reject…"),
                "style": "danger",
                "value": rid,
            },
        ]
    else:
        elements = [
            {
                "type": "button",
                "action_id": f"{OPTION}_{index}",
                "text": _plain(option),
                "value": option_value(rid, option),
            }
            for index, option in enumerate(request.options[:20])
        ]
        elements.append(
            {"type": "button", "action_id": ANSWER, "text": _plain("Answer…"), "value": rid}
        )
    return {"type": "actions", "block_id": f"opsloop_request:{rid}", "elements": elements}


def request_blocks(request: HumanRequested) -> list[Block]:
    """The message asking for a decision: what exactly, who may answer, and the buttons."""
    return [*_description(request), _buttons(request)]


def request_text(request: HumanRequested) -> str:
    """The notification and screen-reader text of the request message."""
    kind = "Approval needed" if request.type == "approval" else "Question"
    return f"{kind}: {escape(request.question)}"


_OUTCOME = {
    HumanDecision.APPROVE: (":white_check_mark:", "Approved"),
    HumanDecision.REJECT: (":x:", "Rejected"),
    HumanDecision.ANSWER: (":speech_balloon:", "Answered"),
}


def resolved_text(
    decision: HumanDecision, actor: Identity | None, when: datetime | None, comment: str | None
) -> str:
    """Who decided what and when, in one line of mrkdwn."""
    emoji, verb = _OUTCOME[decision]
    if actor is None:
        emoji, verb, by = ":hourglass:", "Expired (rejected)", ""
    elif actor.channel == "slack":
        by = f" by <@{actor.user_id}>"
    else:
        by = f" by {escape(actor.label)} ({escape(actor.channel)})"
    at = f" {slack_date(when)}" if when is not None else ""
    said = f": {escape(comment)}" if comment else ""
    return f"{emoji} *{verb}*{by}{at}{said}"


def resolved_blocks(request: HumanRequested, outcome: str) -> list[Block]:
    """The request message once decided: the same description, the outcome, no buttons."""
    return [*_description(request), _section(outcome[:_SECTION_LIMIT])]


def _modal(callback_id: str, title: str, submit: str, meta: dict[str, str]) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, 24),
        "submit": _plain(submit, 24),
        "close": _plain("Cancel", 24),
        "private_metadata": json.dumps(meta),
    }


def _input(block_id: str, label: str, hint: str) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, 2000),
        "hint": _plain(hint, 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": True,
            "min_length": 1,
            "max_length": 3000,
        },
    }


def reject_modal(meta: dict[str, str]) -> Block:
    """The modal asking why; ``meta`` carries the request and where it was posted."""
    return {
        **_modal(REJECT_VIEW, "Reject request", "Reject", meta),
        "blocks": [
            _input("reason", "Why reject it?", "The agent reads this as the tool's result."),
        ],
    }


def answer_modal(question: str, meta: dict[str, str]) -> Block:
    """The modal taking a free-text answer; ``question`` is mrkdwn (the request's own text)."""
    return {
        **_modal(ANSWER_VIEW, "Answer", "Send", meta),
        "blocks": [
            _section(question[:_SECTION_LIMIT] or "Your answer, please."),
            _input("answer", "Your answer", "The agent carries on with it."),
        ],
    }
