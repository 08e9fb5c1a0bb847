"""Request cards by mail: the approval mail for an ``email:`` notify place or escalation step.

A card is a mail of its own (not a reply in the request's thread, which may be in Slack,
Discord or the console): its Message-ID names it as a card (:data:`CARD_PREFIX`) and its
index record carries the request id, so a reply to it (In-Reply-To / References) decides
that request. When the request is decided, a short mail in the card's thread says by whom.
"""

from __future__ import annotations

import hashlib

from bot.events import HumanRequested
from bot.outbound import RequestProgress, RequestResolved, changes_text

__all__ = [
    "CARD_PREFIX",
    "card_message_id",
    "card_subject",
    "is_card",
    "progress_text",
    "resolution_text",
]

CARD_PREFIX = "opsloop.card."
"""How the Message-ID of every card mail starts; its thread key is that Message-ID."""

_SUBJECT_ROOM = 150
_DONE = {"approve": "approved", "reject": "rejected", "answer": "answered"}


def card_message_id(request_id: str, place: str, domain: str) -> str:
    """The Message-ID of the card for ``request_id`` at ``place``: one per request and place."""
    digest = hashlib.sha256(f"{request_id}\n{place}".encode()).hexdigest()[:20]
    return f"{CARD_PREFIX}{request_id}.{digest}@{domain}"


def is_card(thread_key: str | None) -> bool:
    """Whether a conversation of the mail index is a card's thread."""
    return thread_key is not None and thread_key.startswith(CARD_PREFIX)


def card_subject(request: HumanRequested) -> str:
    """``Approval needed: <the question>`` (one line, clipped)."""
    first = (request.question.strip().splitlines() or [request.request_id])[0]
    if len(first) > _SUBJECT_ROOM:
        first = first[: _SUBJECT_ROOM - 1] + "…"
    kind = "Approval needed" if request.type == "approval" else "Question"
    return f"{kind}: {first}"


def resolution_text(message: RequestResolved) -> str:
    """``Request … was approved by …`` (and the comment), as every mail of a decision says."""
    who = message.actor.label if message.actor else "expiry"
    verb = _DONE[message.decision.value]
    text = f"Request {message.request_id} was {verb} by {who}."
    if message.changes:
        text += f"\nWith changes: {changes_text(message.changes)}."
    if message.comment:
        text += f"\n\n{message.comment}"
    return text


def progress_text(message: RequestProgress) -> str:
    """Who has approved a request that needs several approvals, and who is still needed."""
    return (
        f"Request {message.request_id} was approved by {', '.join(message.approved_by)}."
        f"\nStill needed: {'; '.join(message.still_needed)}."
        "\n\nIt stays open until then; one rejection rejects it."
    )
