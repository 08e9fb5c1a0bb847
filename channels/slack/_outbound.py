"""Bot outbound in, Slack Web API calls out: ``send(outbound)`` for the ``slack`` channel.

- a reply: ``chat.postMessage`` in the thread (split, or a snippet when very long);
- a request: a Block Kit message with the exact call and its buttons; where it was posted
  is kept (``set_message_ref``) so the decision can edit it;
- a resolution: ``chat.update`` of that message: who decided, when, and no more buttons;
- a notice: ``chat.postEphemeral``, seen only by the person it is for.

A 429 from Slack becomes :class:`~bot.plugins.DeliveryRetryError` with its Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import DecisionNotice, OutboundReply, RequestPrompt, RequestResolved, split_text
from bot.plugins import DeliveryContext, DeliveryRetryError
from bot.store import OutboxItem, Store
from channels.slack._blocks import (
    MESSAGE_TEXT,
    fit,
    request_blocks,
    request_text,
    resolved_blocks,
    resolved_text,
)
from channels.slack._settings import SlackSettings, load_slack_settings
from channels.slack._text import escape
from channels.slack._workspaces import Workspaces

__all__ = ["PIECE_CHARS", "SNIPPET_AFTER", "SlackSender"]

log = logging.getLogger(__name__)

PIECE_CHARS = 3500
"""A reply longer than this goes out in several messages…"""
SNIPPET_AFTER = 3
"""…unless it needs more than this many: then it is uploaded as a text snippet."""

_GONE = frozenset({"user_not_in_channel", "channel_not_found", "not_in_channel", "is_archived"})


class SlackSender:
    """Delivers outbound messages to Slack: a :data:`bot.plugins.Sender`."""

    def __init__(self, settings: SlackSettings | None = None) -> None:
        """Use ``settings``, or read them from the environment on first use."""
        self._settings = settings
        self._workspaces: Workspaces | None = None

    @property
    def workspaces(self) -> Workspaces:
        """Bot tokens by team."""
        if self._workspaces is None:
            self._settings = self._settings or load_slack_settings()
            self._workspaces = Workspaces(self._settings)
        return self._workspaces

    async def __call__(self, item: OutboxItem, context: DeliveryContext) -> None:
        """Deliver one message.

        Raises:
            DeliveryRetryError: Slack rate-limited the call; try again after ``retry_after``.
        """
        message = item.message
        workspaces = self.workspaces
        token = await workspaces.token_for(message.conversation.tenant, context.store.db)
        client = AsyncWebClient(token=token, base_url=workspaces.settings.api_url)
        public = context.settings.public_url
        link = f"{public.rstrip('/')}/threads/{item.thread_id}" if public else None
        try:
            if isinstance(message, OutboundReply):
                await _reply(client, message)
            elif isinstance(message, RequestPrompt):
                await _request(client, message, context.store, link)
            elif isinstance(message, RequestResolved):
                await _resolved(client, message, context.store, link)
            elif isinstance(message, DecisionNotice):
                await _notice(client, message)
            else:  # pragma: no cover - the union is closed
                raise TypeError(f"no Slack delivery for {type(message).__name__}")
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                retry_after = _retry_after(exc.response.headers)
                raise DeliveryRetryError("Slack rate limit", retry_after=retry_after) from exc
            raise


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                return None
    return None


async def _reply(client: AsyncWebClient, message: OutboundReply) -> None:
    where = message.conversation
    pieces = split_text(message.text, PIECE_CHARS)
    if len(pieces) > SNIPPET_AFTER:
        opening = escape(pieces[0][:300].rstrip())
        await client.files_upload_v2(
            channel=where.room,
            thread_ts=where.thread_key,
            content=message.text,
            filename="opsloop-reply.txt",
            title=f"opsloop ({message.agent}): the whole answer",
            initial_comment=f"{opening}…\n_The answer is long: all of it is in the snippet._",
        )
        return
    for piece in pieces:
        await client.chat_postMessage(
            channel=where.room,
            thread_ts=where.thread_key,
            text=escape(piece),
            unfurl_links=False,
            unfurl_media=False,
        )


async def _request(
    client: AsyncWebClient, message: RequestPrompt, store: Store, link: str | None
) -> None:
    request = message.request
    if (await store.human_request(request.request_id)).message_ref:
        return  # posted already: this is a redelivery after the post went through
    where = message.conversation
    posted = await client.chat_postMessage(
        channel=where.room,
        thread_ts=where.thread_key,
        text=request_text(request),
        blocks=request_blocks(request, link),
    )
    ref = {"team": where.tenant, "channel": posted["channel"], "ts": posted["ts"]}
    await store.set_message_ref(request.request_id, ref)


async def _resolved(
    client: AsyncWebClient, message: RequestResolved, store: Store, link: str | None
) -> None:
    stored = await store.human_request(message.request_id)
    outcome = resolved_text(message.decision, message.actor, stored.decided_at, message.comment)
    ref = stored.message_ref
    if not ref:  # the request message never went out (decided elsewhere first): say it here
        where = message.conversation
        await client.chat_postMessage(
            channel=where.room, thread_ts=where.thread_key, text=fit(outcome, MESSAGE_TEXT, link)
        )
        return
    await client.chat_update(
        channel=ref["channel"],
        ts=ref["ts"],
        text=fit(outcome, MESSAGE_TEXT, link),
        blocks=resolved_blocks(stored.request, outcome, link),
    )


async def _notice(client: AsyncWebClient, message: DecisionNotice) -> None:
    if message.to.channel != "slack":
        return  # decided elsewhere (CLI, console): that person saw the refusal there
    where = message.conversation
    try:
        await client.chat_postEphemeral(
            channel=where.room,
            user=message.to.user_id,
            thread_ts=where.thread_key,
            text=escape(message.text),
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in _GONE:
            raise
        log.info("notice to %s not delivered: %s", message.to.user_id, exc.response["error"])
