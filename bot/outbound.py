"""Messages opsloop sends back into a conversation, derived from thread events.

The runtime commits them to the outbox in the same transaction as the events that
produced them; a channel adapter delivers them (``send(outbound)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Discriminator, TypeAdapter

from bot.events import (
    AgentReply,
    ApprovalGiven,
    ConversationRef,
    DecisionRefused,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
)

__all__ = [
    "DecisionNotice",
    "Outbound",
    "OutboundReply",
    "RequestProgress",
    "RequestPrompt",
    "RequestResolved",
    "outbound_adapter",
    "outbound_for",
    "place_conversation",
    "split_text",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation: ConversationRef
    """Where to deliver."""


class OutboundReply(_Out):
    """The agent's answer, posted in the thread."""

    kind: Literal["reply"] = "reply"
    text: str
    """The answer."""
    agent: str
    """Which agent answered."""


class RequestPrompt(_Out):
    """A human request: Approve / Reject buttons, or a question with options."""

    kind: Literal["request"] = "request"
    request: HumanRequested
    """The request, with the exact tool and arguments."""
    target: str | None = None
    """The place this card is for (``slack:#deploys``, ``slack:U123``), outside the thread;
    ``None`` for the card in the thread itself."""


class RequestResolved(_Out):
    """A request was decided: edit the original message to say who and when; drop buttons."""

    kind: Literal["resolved"] = "resolved"
    request_id: str
    """The request decided."""
    decision: HumanDecision
    """Approve, reject or answer."""
    actor: Identity | None
    """Who decided; ``None`` when it expired."""
    comment: str | None
    """Reason or answer."""
    target: str | None = None
    """The place whose card to update (as :attr:`RequestPrompt.target`); ``None``: the thread's."""


class RequestProgress(_Out):
    """A request that needs several approvers got one more: show who, and who is still needed.

    Channels update the request's message in place; its buttons stay.
    """

    kind: Literal["progress"] = "progress"
    request_id: str
    """The request."""
    approved_by: tuple[str, ...]
    """The principals that have approved so far."""
    still_needed: tuple[str, ...]
    """Who must still approve, in words."""
    actor: Identity | None = None
    """Who approved just now."""
    comment: str | None = None
    """Their note."""
    target: str | None = None
    """The place whose card to update (as :attr:`RequestPrompt.target`); ``None``: the thread's."""


class DecisionNotice(_Out):
    """Tell one person (privately where the channel can) that their decision was refused."""

    kind: Literal["notice"] = "notice"
    to: Identity
    """Whom to tell."""
    text: str
    """What to say."""


Outbound: TypeAlias = Annotated[
    OutboundReply | RequestPrompt | RequestResolved | RequestProgress | DecisionNotice,
    Discriminator("kind"),
]
"""Everything a channel may be asked to deliver."""

outbound_adapter: TypeAdapter[Any] = TypeAdapter(Outbound)


def place_conversation(place: str, home: ConversationRef) -> ConversationRef:
    """Where a card for ``place`` (``slack:#deploys``…) goes: that room, outside any thread.

    The thread key is the room itself (a conversation kept in the channel), and the
    workspace the thread's own when the thread is on the same platform.
    """
    channel, _, room = place.partition(":")
    tenant = home.tenant if home.channel == channel else ""
    return ConversationRef(channel=channel, tenant=tenant, room=room, thread_key=room)


def outbound_for(conversation: ConversationRef, events: Iterable[object]) -> list[Outbound]:
    """The messages that new thread events call for, in order.

    A request goes to its thread and, as a card of its own, to each ``notify`` place.
    """
    out: list[Outbound] = []
    for event in events:
        if isinstance(event, AgentReply):
            out.append(OutboundReply(conversation=conversation, text=event.text, agent=event.agent))
        elif isinstance(event, HumanRequested):
            out.append(RequestPrompt(conversation=conversation, request=event))
            out += [
                RequestPrompt(
                    conversation=place_conversation(place, conversation),
                    request=event,
                    target=place,
                )
                for place in event.notify
            ]
        elif isinstance(event, HumanResponded):
            out.append(
                RequestResolved(
                    conversation=conversation,
                    request_id=event.request_id,
                    decision=event.decision,
                    actor=event.actor,
                    comment=event.comment,
                )
            )
        elif isinstance(event, ApprovalGiven):
            out.append(
                RequestProgress(
                    conversation=conversation,
                    request_id=event.request_id,
                    approved_by=event.approved_by,
                    still_needed=event.still_needed,
                    actor=event.actor,
                    comment=event.comment,
                )
            )
        elif isinstance(event, DecisionRefused):
            out.append(DecisionNotice(conversation=conversation, to=event.actor, text=event.reason))
    return out


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, for platforms with a size limit.

    Cuts at a line break where one falls in the second half of the piece, else at a space,
    else mid-word; the character cut at is dropped (re-joining with it gives the text back).
    """
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit + 1)
        if cut == -1:
            cut = text.rfind(" ", limit // 2, limit + 1)
        if cut == -1:
            pieces.append(text[:limit])
            text = text[limit:]
        else:
            pieces.append(text[:cut])
            text = text[cut + 1 :]
    pieces.append(text)
    return pieces
