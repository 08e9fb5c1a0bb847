"""Bot outbound in, Slack Web API calls out: ``send(outbound)`` for the ``slack`` channel.

- a reply: ``chat.postMessage`` in the thread (split, or a snippet when very long);
- a request: a Block Kit message with the exact call and its buttons; where it was posted
  is kept (``set_message_ref``) so the decision can edit it;
- a resolution: ``chat.update`` of that message: who decided, when, and no more buttons;
- progress (one approval of several): ``chat.update`` of that message with who has
  approved and who is still needed; the buttons stay;
- a notice: ``chat.postEphemeral``, seen only by the person it is for.

A request card for a place outside the thread (a ``notify`` room, an escalation step's
person) goes to that channel, or to the person's DM (``conversations.open``), recorded per
place (``add_message_ref``); its resolution updates every card recorded for the place.

A 429 from Slack becomes :class:`~bot.plugins.DeliveryRetryError` with its Retry-After.

Every message opsloop posts carries Slack message ``metadata`` naming the outbox item and
the piece (:data:`METADATA_TYPE`). A retried item (``attempts > 0``) first reads the
thread's replies (``conversations.replies``) and skips each piece already there, so a
reply cut short by a rate limit goes on where it stopped, and a request message whose
reference was not recorded is found again (its reference recorded) instead of posted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import (
    DecisionNotice,
    OutboundReply,
    RequestProgress,
    RequestPrompt,
    RequestResolved,
    split_text,
)
from bot.plugins import DeliveryContext, DeliveryRetryError
from bot.store import OutboxItem, Store
from channels.slack._blocks import (
    MESSAGE_TEXT,
    fit,
    progress_blocks,
    progress_text,
    request_blocks,
    request_text,
    resolved_blocks,
    resolved_text,
)
from channels.slack._settings import SlackSettings, load_slack_settings
from channels.slack._text import escape
from channels.slack._workspaces import Workspaces

__all__ = ["METADATA_TYPE", "PIECE_CHARS", "SNIPPET_AFTER", "SlackSender"]

log = logging.getLogger(__name__)

PIECE_CHARS = 3500
"""A reply longer than this goes out in several messages…"""
SNIPPET_AFTER = 3
"""…unless it needs more than this many: then it is uploaded as a text snippet."""

METADATA_TYPE = "opsloop_outbound"
"""The ``event_type`` of the metadata on each message opsloop posts."""
_REPLY_PAGES = 20  # at most this many pages of 200 replies are read back on a retry

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
        link = context.settings.thread_page(item.thread_id)
        poster = _Poster(client, item)
        try:
            if isinstance(message, OutboundReply):
                await _reply(poster, message)
            elif isinstance(message, RequestPrompt) and message.target:
                await _card(poster, message, context.store, link)
            elif isinstance(message, RequestPrompt):
                await _request(poster, message, context.store, link)
            elif isinstance(message, RequestResolved) and message.target:
                await _resolved_cards(client, message, context.store, link)
            elif isinstance(message, RequestResolved):
                await _resolved(poster, message, context.store, link)
            elif isinstance(message, RequestProgress):
                await _progress(poster, message, context.store, link)
            elif isinstance(message, DecisionNotice):
                await _notice(client, message)
            else:  # pragma: no cover - the union is closed
                raise TypeError(f"no Slack delivery for {type(message).__name__}")
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                retry_after = _retry_after(exc.response.headers)
                raise DeliveryRetryError("Slack rate limit", retry_after=retry_after) from exc
            raise


def _why(exc: SlackApiError) -> str:
    return str(exc.response.get("error", exc))


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                return None
    return None


class _Poster:
    """Posts the pieces of one outbox item in its thread, each at most once."""

    def __init__(self, client: AsyncWebClient, item: OutboxItem) -> None:
        self.client = client
        self.item = item
        self._posted: dict[int, dict[str, Any]] | None = None if item.attempts else {}

    async def posted(self, piece: int) -> dict[str, Any] | None:
        """The message of ``piece`` if an earlier attempt posted it (read back once)."""
        if self._posted is None:
            self._posted = await self._read_back()
        return self._posted.get(piece)

    async def post(self, piece: int, **message: Any) -> dict[str, Any]:
        """Post ``piece`` unless it is there already; the message either way."""
        earlier = await self.posted(piece)
        if earlier is not None:
            return earlier
        where = self.item.message.conversation
        metadata = {
            "event_type": METADATA_TYPE,
            # The thread too: outbox ids repeat between databases sharing a workspace.
            "event_payload": {
                "outbox": self.item.id,
                "thread": self.item.thread_id,
                "piece": piece,
            },
        }
        response = await self.client.chat_postMessage(
            channel=where.room, thread_ts=where.thread_key, metadata=metadata, **message
        )
        return {"channel": response["channel"], "ts": response["ts"]}

    async def _read_back(self) -> dict[int, dict[str, Any]]:
        where = self.item.message.conversation
        found: dict[int, dict[str, Any]] = {}
        cursor = None
        for _ in range(_REPLY_PAGES):
            try:
                page = await self.client.conversations_replies(
                    channel=where.room,
                    ts=where.thread_key,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    raise
                if exc.response.get("error") != "thread_not_found":  # else nothing is there
                    log.warning("cannot read back thread %s: %s", where.thread_key, _why(exc))
                return found
            for reply in page.get("messages") or []:
                meta = reply.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == METADATA_TYPE
                    and payload.get("outbox") == self.item.id
                    and payload.get("thread") == self.item.thread_id
                ):
                    found[int(payload.get("piece", 0))] = {"channel": where.room, "ts": reply["ts"]}
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return found


async def _reply(poster: _Poster, message: OutboundReply) -> None:
    where = message.conversation
    pieces = split_text(message.text, PIECE_CHARS)
    if len(pieces) > SNIPPET_AFTER:
        opening = escape(pieces[0][:300].rstrip())
        await poster.client.files_upload_v2(
            channel=where.room,
            thread_ts=where.thread_key,
            content=message.text,
            filename="opsloop-reply.txt",
            title=f"opsloop ({message.agent}): the whole answer",
            initial_comment=f"{opening}…\n_The answer is long: all of it is in the snippet._",
        )
        return
    for index, piece in enumerate(pieces):
        await poster.post(index, text=escape(piece), unfurl_links=False, unfurl_media=False)


async def _request(poster: _Poster, message: RequestPrompt, store: Store, link: str | None) -> None:
    request = message.request
    if (await store.human_request(request.request_id)).message_ref:
        return  # posted already: this is a redelivery after the post went through
    posted = await poster.post(0, text=request_text(request), blocks=request_blocks(request, link))
    ref = {"team": message.conversation.tenant, **posted}
    await store.set_message_ref(request.request_id, ref)


async def _resolved(
    poster: _Poster, message: RequestResolved, store: Store, link: str | None
) -> None:
    stored = await store.human_request(message.request_id)
    outcome = resolved_text(message.decision, message.actor, stored.decided_at, message.comment)
    ref = stored.message_ref
    if not ref:  # the request message never went out (decided elsewhere first): say it here
        await poster.post(0, text=fit(outcome, MESSAGE_TEXT, link))
        return
    await poster.client.chat_update(
        channel=ref["channel"],
        ts=ref["ts"],
        text=fit(outcome, MESSAGE_TEXT, link),
        blocks=resolved_blocks(stored.request, outcome, link),
    )


async def _card(poster: _Poster, message: RequestPrompt, store: Store, link: str | None) -> None:
    request, place = message.request, message.target or ""
    if await store.message_refs(request.request_id, place):
        return  # posted already: this is a redelivery after the post went through
    room = message.conversation.room
    if room[:1] in {"U", "W"}:  # a person: their direct messages with the bot
        opened = await poster.client.conversations_open(users=room)
        room = opened["channel"]["id"]
    metadata = {
        "event_type": METADATA_TYPE,
        "event_payload": {"outbox": poster.item.id, "thread": poster.item.thread_id, "piece": 0},
    }
    posted = await poster.client.chat_postMessage(
        channel=room,
        text=request_text(request),
        blocks=request_blocks(request, link),
        metadata=metadata,
    )
    ref = {"team": message.conversation.tenant, "channel": posted["channel"], "ts": posted["ts"]}
    await store.add_message_ref(request.request_id, place, ref)


async def _resolved_cards(
    client: AsyncWebClient, message: RequestResolved, store: Store, link: str | None
) -> None:
    stored = await store.human_request(message.request_id)
    outcome = resolved_text(message.decision, message.actor, stored.decided_at, message.comment)
    for ref in await store.message_refs(message.request_id, message.target):
        await client.chat_update(
            channel=ref["channel"],
            ts=ref["ts"],
            text=fit(outcome, MESSAGE_TEXT, link),
            blocks=resolved_blocks(stored.request, outcome, link),
        )


async def _progress(
    poster: _Poster, message: RequestProgress, store: Store, link: str | None
) -> None:
    stored = await store.human_request(message.request_id)
    if stored.status != "pending":
        return  # decided since: the resolution edits the message, and must not be undone
    line = progress_text(message.approved_by, message.still_needed)
    if message.target:  # a card outside the thread: update each posted there
        for card in await store.message_refs(message.request_id, message.target):
            await poster.client.chat_update(
                channel=card["channel"],
                ts=card["ts"],
                text=request_text(stored.request),
                blocks=progress_blocks(stored.request, line, link),
            )
        return
    ref = stored.message_ref
    if not ref:  # the request message never went out: say it in the thread
        await poster.post(0, text=fit(line, MESSAGE_TEXT, link))
        return
    await poster.client.chat_update(
        channel=ref["channel"],
        ts=ref["ts"],
        text=request_text(stored.request),
        blocks=progress_blocks(stored.request, line, link),
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
