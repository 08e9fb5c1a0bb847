"""Slack's text formats: mrkdwn escaping out, plain text in, and long text in pieces."""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["escape", "mention", "plain_text", "slack_date"]

_ENTITY = re.compile(r"<([^<>]*)>")
_URL = re.compile(r"^(?:https?|mailto|ftp|tel):", re.IGNORECASE)


def escape(text: str) -> str:
    """Text shown as is in mrkdwn: ``&``, ``<`` and ``>`` escaped, nothing else.

    Without it a reply quoting ``<!channel>`` would ping a whole channel, and ``<url|x>``
    would turn into a link the agent never wrote.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(principal: str | None) -> str:
    """``slack:U123`` as a Slack mention; any other principal escaped as text."""
    if principal is None:
        return "someone"
    channel, _, user = principal.partition(":")
    if channel == "slack" and user:
        return f"<@{user}>"
    return escape(principal)


def _entity(match: re.Match[str], bot_user_id: str | None) -> str:
    inner = match[1]
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "" if user == bot_user_id else f"@{label or user}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        if special in {"here", "channel", "everyone"}:
            return f"@{special}"
        return label or f"@{special}"
    if _URL.match(target):
        bare = re.sub(r"^(?:https?://|mailto:)", "", target, flags=re.IGNORECASE)
        if not label or label in {target, bare}:
            return label or target
        return f"{label} ({target})"
    return match[0]


def plain_text(text: str, *, bot_user_id: str | None = None) -> str:
    """What a person typed, from Slack's wire form: entities resolved, escapes undone.

    The bot's own mention is dropped (it only addressed the message to opsloop).
    """
    resolved = _ENTITY.sub(lambda m: _entity(m, bot_user_id), text)
    resolved = resolved.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", resolved).strip()


def slack_date(when: datetime) -> str:
    """A date Slack shows in each reader's own time zone, with a UTC fallback."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"
