"""Inbound: discord.py objects to opsloop events (``to_event(raw) -> Event``).

Where a conversation lives: the tenant is the guild, the room the text channel, and the
thread key the Discord thread's id. A request made in a channel gets its thread started
from the request message (by the sender), and a thread started from a message has that
message's id, so the request message's id is the thread key from the start. A request
made inside a thread belongs to that thread; a direct message is its own room and thread
(every message in a DM with the bot is for opsloop).
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.events import ActionReceived, ConversationRef, HumanDecision, Identity, MessageReceived

__all__ = [
    "PREFIX",
    "action_event",
    "command_event",
    "conversation_of",
    "identity_of",
    "message_event",
    "message_text",
    "modal_text",
]

PREFIX = "!ops"
"""The prefix command, read only with the message-content intent."""

_CHAT = {discord.MessageType.default, discord.MessageType.reply}


def identity_of(user: discord.User | discord.Member) -> Identity:
    """A person by immutable user id; in a guild, their roles are their groups.

    The roles are the role ids Discord sent with the event itself (the ``member.roles`` of
    the interaction or message), not the roles as discord.py's cache knows them: that cache
    is empty until the guild's data arrives (just after connecting, during an outage), and
    ``Member.roles`` silently drops any role it does not hold, which would refuse a
    role-based approver for no reason they could see.
    """
    groups: tuple[str, ...] = ()
    if isinstance(user, discord.Member):
        # ``_roles`` holds exactly the payload's ids (``@everyone`` is never among them).
        groups = tuple(str(role) for role in user._roles if role != user.guild.id)
    return Identity(
        channel="discord",
        user_id=str(user.id),
        display_name=user.display_name,
        groups=groups,
        auth="discord",
    )


def conversation_of(channel: Any, guild_id: int | None, message_id: int) -> ConversationRef:
    """The conversation a message (or command) at ``message_id`` in ``channel`` belongs to."""
    tenant = str(guild_id or "")
    if isinstance(channel, discord.Thread):
        room, key = str(channel.parent_id), str(channel.id)
    elif isinstance(channel, discord.DMChannel):
        room = key = str(channel.id)
    else:
        room, key = str(channel.id), str(message_id)
    return ConversationRef(channel="discord", tenant=tenant, room=room, thread_key=key)


def message_text(message: discord.Message, me: int, *, prefix: bool) -> str | None:
    """What a message asks opsloop, or ``None`` when it is not for opsloop.

    It is for opsloop when it mentions the bot, starts with ``!ops`` (``prefix``: only with
    the message-content intent), is written in a thread opsloop started, or is a direct
    message to the bot.
    """
    if message.author.bot or message.webhook_id is not None or message.type not in _CHAT:
        return None
    content = message.content
    # "@opsloop" may be the bot itself or, when people pick it, its managed role.
    roles = [r.id for r in message.role_mentions if r.tags and r.tags.bot_id == me]
    if roles or any(user.id == me for user in message.mentions):
        for token in (f"<@{me}>", f"<@!{me}>", *(f"<@&{role}>" for role in roles)):
            content = content.replace(token, " ")
        return content.strip()
    if prefix and re.match(rf"{re.escape(PREFIX)}(\s|$)", content):
        return content[len(PREFIX) :].strip()
    if isinstance(message.channel, discord.DMChannel):
        return content.strip()
    channel = message.channel
    if isinstance(channel, discord.Thread) and channel.owner_id == me and content.strip():
        return content.strip()
    return None


def message_event(message: discord.Message, text: str) -> MessageReceived:
    """A mention, prefix command or thread follow-up."""
    return MessageReceived(
        idempotency_key=f"discord:message:{message.id}",
        conversation=conversation_of(
            message.channel, message.guild.id if message.guild else None, message.id
        ),
        sender=identity_of(message.author),
        text=text,
    )


def command_event(
    interaction: discord.Interaction[Any], text: str, message_id: int
) -> MessageReceived:
    """``/ops``, answered at ``message_id`` (the interaction's response)."""
    return MessageReceived(
        idempotency_key=f"discord:interaction:{interaction.id}",
        conversation=conversation_of(interaction.channel, interaction.guild_id, message_id),
        sender=identity_of(interaction.user),
        text=text,
    )


def action_event(
    interaction: discord.Interaction[Any],
    decision: HumanDecision,
    request_id: str,
    comment: str | None,
) -> ActionReceived:
    """A click on a decision button, or the modal it opened."""
    message = interaction.message
    return ActionReceived(
        idempotency_key=f"discord:interaction:{interaction.id}",
        conversation=conversation_of(
            interaction.channel, interaction.guild_id, message.id if message else interaction.id
        ),
        actor=identity_of(interaction.user),
        request_id=request_id,
        decision=decision,
        comment=comment,
    )


def modal_text(data: Any, field: str) -> str | None:
    """The value of the text input ``field`` in a modal submission's raw ``data``."""
    if isinstance(data, dict):
        if data.get("custom_id") == field and isinstance(data.get("value"), str):
            return str(data["value"])
        children = [*data.get("components", []), data.get("component")]
        return next((v for c in children if (v := modal_text(c, field)) is not None), None)
    return None
