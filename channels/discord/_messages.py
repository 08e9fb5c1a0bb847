"""What opsloop's Discord messages look like: text, buttons and their custom ids.

Pure functions, shared by the sender (which posts them) and the gateway (which reads the
custom ids back when someone clicks). A button carries everything a click needs in its
custom id, so buttons keep working after a restart: nothing is kept in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.events import HumanDecision, HumanRequested, Identity
from bot.outbound import split_text as cut_text

__all__ = [
    "CUSTOM_ID",
    "MAX_PIECES",
    "MESSAGE_LIMIT",
    "clip",
    "custom_id",
    "mention",
    "message_pieces",
    "progress_text",
    "prompt_text",
    "request_components",
    "resolution_text",
    "split_text",
]

MESSAGE_LIMIT = 2000
"""Discord's limit on a message's content, in characters."""

MAX_PIECES = 5
"""Messages one text is posted in at most; the rest is left to the console's thread page.

Discord lets a bot post about five messages in five seconds to a channel, and nobody reads
a wall of twenty; the console shows the whole text."""

CUSTOM_ID = (
    r"opsloop:(?P<action>approve|reject|answer):(?P<request>hr_[0-9a-f]+)"
    r"(?::(?P<option>[0-9]{1,2}))?"
)
"""A button's (and its modal's) custom id: the decision, the request and, for a question's
suggested answer, the option's index."""

_CUSTOM_ID = re.compile(CUSTOM_ID)

_PRIMARY, _SECONDARY, _SUCCESS, _DANGER = 1, 2, 3, 4
_MAX_BUTTONS = 25  # five rows of five
_FENCE = "```"


def custom_id(action: HumanDecision, request_id: str, option: int | None = None) -> str:
    """The custom id of a decision button (at most 100 characters, as Discord requires)."""
    value = f"opsloop:{action.value}:{request_id}" + ("" if option is None else f":{option}")
    if len(value) > 100 or not _CUSTOM_ID.fullmatch(value):
        raise ValueError(f"not a valid opsloop custom id: {value!r}")
    return value


def mention(who: Identity | str | None) -> str:
    """How to name a person in a message: a Discord mention where possible."""
    principal = who.principal if isinstance(who, Identity) else who
    if principal is None:
        return "nobody"
    if principal.startswith("discord:"):
        return f"<@{principal.removeprefix('discord:')}>"
    return f"`{clip(principal, 100)}`"


def _timestamp(when: datetime, style: str) -> str:
    return f"<t:{int(when.timestamp())}:{style}>"


def prompt_text(request: HumanRequested) -> str:
    """The text of a human request: the exact action and arguments, or the question."""
    if request.type == "approval":
        arguments = json.dumps(request.arguments or {}, indent=2, ensure_ascii=False)
        lines = [
            f"**Approval needed** · `{request.request_id}`",
            request.question,
            f"Action `{request.tool}` with exactly these arguments:",
            f"{_FENCE}json\n{arguments}\n{_FENCE}",
        ]
    else:
        lines = [f"**Question** · `{request.request_id}`", request.question]
        if any(len(option) > 80 for option in request.options):
            lines += [f"{n}. {option}" for n, option in enumerate(request.options, start=1)]
    who = ", ".join(mention(a) for a in request.approvers) or "anyone"
    lines.append(f"Who may decide: {who} · expires {_timestamp(request.expires_at, 'R')}")
    return "\n".join(lines)


def resolution_text(
    decision: HumanDecision,
    actor: Identity | None,
    comment: str | None,
    decided_at: datetime | None,
) -> str:
    """The line added to a request once it is decided: what, who and when."""
    when = f" {_timestamp(decided_at, 'f')}" if decided_at else ""
    note = f": {comment[:300]}" if comment else ""
    if actor is None:
        return f"⌛ **Expired**{when}, counted as rejected{note}"
    verb = {
        HumanDecision.APPROVE: "✅ **Approved**",
        HumanDecision.REJECT: "❌ **Rejected**",
        HumanDecision.ANSWER: "💬 **Answered**",
    }[decision]
    return f"{verb} by {mention(actor)}{when}{note}"


def progress_text(approved_by: Sequence[str], still_needed: Sequence[str]) -> str:
    """The line added to a request after one approval of several: who, and who is still needed."""
    who = ", ".join(mention(p) for p in approved_by) or "nobody"
    needed = "; ".join(still_needed) or "nobody"
    return f"☑️ Approved by {who} · still needed: {clip(needed, 300)}"


def _button(label: str, style: int, custom: str, disabled: bool) -> dict[str, Any]:
    if len(label) > 80:
        label = label[:79] + "…"
    return {"type": 2, "style": style, "label": label, "custom_id": custom, "disabled": disabled}


def request_components(request: HumanRequested, *, disabled: bool = False) -> list[dict[str, Any]]:
    """The buttons under a request: Approve / Reject, or a question's options and "Other"."""
    rid = request.request_id
    if request.type == "approval":
        buttons = [
            _button("Approve", _SUCCESS, custom_id(HumanDecision.APPROVE, rid), disabled),
            _button("Reject", _DANGER, custom_id(HumanDecision.REJECT, rid), disabled),
        ]
    else:
        options = request.options[: _MAX_BUTTONS - 1]
        buttons = [
            _button(option, _PRIMARY, custom_id(HumanDecision.ANSWER, rid, n), disabled)
            for n, option in enumerate(options)
        ]
        other = "Other answer…" if options else "Answer…"
        buttons.append(_button(other, _SECONDARY, custom_id(HumanDecision.ANSWER, rid), disabled))
    return [{"type": 1, "components": buttons[i : i + 5]} for i in range(0, len(buttons), 5)]


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with "…" where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_pieces(text: str, limit: int = MESSAGE_LIMIT, *, more_at: str | None) -> list[str]:
    """``text`` as at most :data:`MAX_PIECES` messages of at most ``limit`` characters.

    What does not fit is cut, and the last message says so, with a link to ``more_at``
    (the thread's page in the console, when there is a public one), where the whole text is.
    """
    pieces = split_text(text, limit)
    if len(pieces) <= MAX_PIECES:
        return pieces
    where = f"all of it: <{more_at}>" if more_at else "all of it is in the console"
    note = clip(f"\n… cut here, too long for Discord; {where}", limit // 2)
    last = split_text(pieces[MAX_PIECES - 1], limit - len(note))[0]
    return [*pieces[: MAX_PIECES - 1], last + note]


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line breaks or spaces.

    A code block cut in two is closed at the end of one piece and opened again in the next.
    """
    fenced = _FENCE in text
    pieces = cut_text(text, limit - 8 if fenced else limit)
    if not fenced:
        return pieces
    out, open_block = [], False
    for piece in pieces:
        if open_block:
            piece = f"{_FENCE}\n{piece}"
        open_block = piece.count(_FENCE) % 2 == 1
        out.append(f"{piece}\n{_FENCE}" if open_block else piece)
    return out
