"""Block Kit: the request message, its resolved form, and the two modals.

Every piece of text that came from a person or the model goes through :func:`escape`, and
every block stays within Slack's documented limits (Slack refuses the whole message with
``invalid_blocks`` otherwise, and the buttons never appear): text that does not fit is cut
short (never inside an escape) and ends with a link to the thread in the console.
"""

from __future__ import annotations

import json
import re
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
    "fit",
    "option_value",
    "progress_blocks",
    "progress_text",
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

SECTION_TEXT = 3000
"""Slack's limit on a section's text (after escaping: Slack counts what it is sent)."""
CONTEXT_TEXT = 3000
"""…on a context element's text."""
BUTTON_VALUE = 2000
"""…on a button's value."""
BUTTON_TEXT = 75
"""…on a button's label."""
CONFIRM_TEXT = 300
"""…on a confirmation dialog's text."""
MESSAGE_TEXT = 3000
"""What opsloop allows a request message's notification text (Slack's limit is 40,000)."""
_MAX_ARGUMENT_SECTIONS = 10
_MAX_OPTIONS = 20  # an actions block holds 25 elements; "Answer…" is one more
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def fit(text: str, limit: int, link: str | None = None) -> str:
    """Escaped ``text`` in at most ``limit`` characters, cut short with a pointer if need be.

    Args:
        text: mrkdwn, already escaped.
        limit: the most characters Slack takes there.
        link: where the whole text can be read (the thread in the console), if known.
    """
    if len(text) <= limit:
        return text
    more = f"… <{link}|the rest is in the console>" if link else "… _(cut short)_"
    cut = text[: max(0, limit - len(more))]
    cut = _ENTITY_TAIL.sub("", cut)  # never leave half of "&amp;"
    if cut.count("<") > cut.count(">"):  # nor half of a mention or a date
        cut = cut[: cut.rfind("<")]
    return cut + more


def _escaped_pieces(text: str, limit: int, budget: int | None = None) -> list[str]:
    """``text`` escaped, in pieces of at most ``limit`` characters, cut before escaping."""
    pieces: list[str] = []
    for piece in split_text(text, budget or limit):
        escaped = escape(piece)
        if len(escaped) <= limit:
            pieces.append(escaped)
        else:  # escaping made it longer: cut that piece finer (at worst 5 times finer)
            finer = max(1, min(len(piece) - 1, limit * len(piece) // len(escaped)))
            pieces.extend(_escaped_pieces(piece, limit, finer))
    return pieces


def _section(text: str, link: str | None = None) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT, link)}}


def _context(text: str, link: str | None = None) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": fit(text, CONTEXT_TEXT, link)}],
    }


def _plain(text: str, limit: int = BUTTON_TEXT) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _arguments(request: HumanRequested, link: str | None) -> list[Block]:
    shown = json.dumps(request.arguments or {}, indent=2, sort_keys=True, ensure_ascii=False)
    pieces = _escaped_pieces(shown, SECTION_TEXT - 6)
    blocks = [_section(f"```{piece}```") for piece in pieces[:_MAX_ARGUMENT_SECTIONS]]
    if len(pieces) > _MAX_ARGUMENT_SECTIONS:
        where = f"<{link}|the thread in the console>" if link else "the thread's timeline"
        blocks.append(_context(f"_The arguments go on; {where} shows them all._"))
    return blocks


def _description(request: HumanRequested, link: str | None) -> list[Block]:
    if request.type == "approval":
        tool = fit(escape(request.tool or "?"), 200)
        blocks = [
            _section(f":raised_hand: *Approval needed*\n{escape(request.question)}", link),
            _section(f"*Action:* `{tool}` with exactly these arguments:"),
            *_arguments(request, link),
        ]
    else:
        blocks = [_section(f":question: *Question*\n{escape(request.question)}", link)]
    who = ", ".join(mention(a) if a.startswith("slack:") else escape(a) for a in request.approvers)
    facts = [f"Requested by {mention(request.requested_by)}"] if request.requested_by else []
    facts.append(f"may answer: {who or 'anyone'}")
    if request.four_eyes and request.type == "approval":
        facts.append("the requester may not approve")
    facts.append(f"expires {slack_date(request.expires_at)}")
    facts.append(f"request `{escape(request.request_id)}`")
    return [*blocks, _context(" · ".join(facts), link)]


def option_value(request_id: str, index: int) -> str:
    """An option button's value: the request and which of its options (a few characters).

    The answer itself is read back from the stored request: an option's text, JSON-encoded,
    could pass the 2,000 characters Slack keeps in a value.
    """
    value = json.dumps({"request": request_id, "option": index})
    assert len(value) <= BUTTON_VALUE
    return value


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
                        "text": fit(f"Approve `{escape(request.tool or '?')}` as shown?", 300),
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
                "value": option_value(rid, index),
            }
            for index, option in enumerate(request.options[:_MAX_OPTIONS])
        ]
        elements.append(
            {"type": "button", "action_id": ANSWER, "text": _plain("Answer…"), "value": rid}
        )
    return {"type": "actions", "block_id": f"opsloop_request:{rid}", "elements": elements}


def request_blocks(request: HumanRequested, link: str | None = None) -> list[Block]:
    """The message asking for a decision: what exactly, who may answer, and the buttons.

    Args:
        request: the request.
        link: the thread in the console, where text cut short here can be read in full.
    """
    return [*_description(request, link), _buttons(request)]


def progress_text(approved_by: tuple[str, ...], still_needed: tuple[str, ...]) -> str:
    """Who has approved and who is still needed, in one line of mrkdwn."""
    who = ", ".join(mention(p) for p in approved_by) or "nobody"
    needed = "; ".join(escape(n) for n in still_needed) or "nobody"
    return f":white_check_mark: Approved by {who} · still needed: {needed}"


def progress_blocks(request: HumanRequested, progress: str, link: str | None = None) -> list[Block]:
    """The request message after a partial approval: the progress line; the buttons stay."""
    return [*_description(request, link), _context(progress, link), _buttons(request)]


def request_text(request: HumanRequested) -> str:
    """The notification and screen-reader text of the request message."""
    kind = "Approval needed" if request.type == "approval" else "Question"
    return fit(f"{kind}: {escape(request.question)}", MESSAGE_TEXT)


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


def resolved_blocks(request: HumanRequested, outcome: str, link: str | None = None) -> list[Block]:
    """The request message once decided: the same description, the outcome, no buttons."""
    return [*_description(request, link), _section(outcome, link)]


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
            _section(question or "Your answer, please."),
            _input("answer", "Your answer", "The agent carries on with it."),
        ],
    }
