"""Slack payload in, bot event out: ``to_event`` for each kind of thing Slack sends.

Pure translation, no I/O. Idempotency keys come from Slack's own ids, so a retry
(``X-Slack-Retry-Num``) or a Socket Mode redelivery is the same event and ingest drops it:

- a message: ``channel`` + ``ts``, Slack's unique id of a message. The same message comes
  as ``app_mention`` and as ``message.channels``, under two event ids; this key
  makes them one;
- a slash command: its ``trigger_id``;
- a button click: the message's ``ts``, the ``action_id``, the user and the ``action_ts``
  (one click; a second click is a new event, which the core tells it was decided already);
- a modal submission: the ``view`` id.
"""

from __future__ import annotations

import json
from typing import Any

from bot.events import (
    ActionReceived,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
)
from channels.slack._text import plain_text

__all__ = [
    "ACCEPTED_SUBTYPES",
    "action_event",
    "command_event",
    "conversation",
    "from_a_bot",
    "message_event",
    "view_event",
    "view_meta",
]

ACCEPTED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
"""Message subtypes that are something a person said (not edits, joins, deletions…)."""


def conversation(team: str, channel: str, thread_ts: str) -> ConversationRef:
    """Where a Slack thread lives."""
    return ConversationRef(channel="slack", tenant=team, room=channel, thread_key=thread_ts)


def from_a_bot(event: dict[str, Any]) -> bool:
    """Whether a message event was posted by a bot or an integration."""
    return bool(event.get("bot_id")) or event.get("subtype") == "bot_message"


def message_event(
    event: dict[str, Any], *, team: str, sender: Identity, bot_user_id: str | None
) -> MessageReceived:
    """An ``app_mention`` or ``message`` event; replies go to its thread (or start one)."""
    channel, ts = event["channel"], event["ts"]
    return MessageReceived(
        idempotency_key=f"slack:{team}:{channel}:{ts}",
        conversation=conversation(team, channel, event.get("thread_ts") or ts),
        sender=sender,
        text=plain_text(event.get("text") or "", bot_user_id=bot_user_id),
    )


def command_event(command: dict[str, Any], *, sender: Identity, thread_ts: str) -> MessageReceived:
    """A slash command; ``thread_ts`` is the message opsloop posted to hold its thread."""
    team = command["team_id"]
    return MessageReceived(
        idempotency_key=f"slack:{team}:command:{command['trigger_id']}",
        conversation=conversation(team, command["channel_id"], thread_ts),
        sender=sender,
        text=plain_text(command.get("text") or ""),
    )


def _team(body: dict[str, Any]) -> str:
    team = body.get("team") or {}
    return str(team.get("id") or body.get("user", {}).get("team_id") or "")


def action_event(
    body: dict[str, Any],
    action: dict[str, Any],
    *,
    actor: Identity,
    decision: HumanDecision,
    request_id: str,
    comment: str | None = None,
) -> ActionReceived:
    """A button click on a request message."""
    team = _team(body)
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or body.get("channel", {}).get("id", "")
    message_ts = container.get("message_ts") or message.get("ts", "")
    thread = container.get("thread_ts") or message.get("thread_ts") or message_ts
    click = f"{message_ts}:{action['action_id']}:{actor.user_id}:{action.get('action_ts', '')}"
    return ActionReceived(
        idempotency_key=f"slack:{team}:action:{click}",
        conversation=conversation(team, channel, thread),
        actor=actor,
        request_id=request_id,
        decision=decision,
        comment=comment,
    )


def view_meta(body: dict[str, Any], request_id: str) -> dict[str, str]:
    """What a modal opened from a click must remember: the request and where it was asked."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    return {
        "request": request_id,
        "team": _team(body),
        "channel": container.get("channel_id") or body.get("channel", {}).get("id", ""),
        "thread": container.get("thread_ts") or message.get("thread_ts") or "",
    }


def view_event(
    body: dict[str, Any], *, actor: Identity, decision: HumanDecision, field: str
) -> ActionReceived:
    """A submitted reject or answer modal; its text is the reason or the answer."""
    view = body["view"]
    meta = json.loads(view.get("private_metadata") or "{}")
    team = meta.get("team") or _team(body)
    values = view.get("state", {}).get("values", {})
    text = (values.get(field, {}).get("value", {}).get("value") or "").strip()
    return ActionReceived(
        idempotency_key=f"slack:{team}:view:{view['id']}",
        conversation=conversation(team, meta.get("channel", ""), meta.get("thread", "")),
        actor=actor,
        request_id=meta["request"],
        decision=decision,
        comment=text or None,
    )
