"""Outbound: deliver opsloop's messages into a Discord conversation (``send(outbound)``).

A conversation's ``thread_key`` is the Discord thread's id, which for a thread started from
a message is that message's id. So the first answer to a request posts into a thread that
does not exist yet: Discord says "unknown channel", the thread is started from the request
message, and the answer goes there. Where threads are not allowed (a channel type without
them, no permission, the request message deleted) the answer goes into the channel as a
reply to the request; in a direct message it goes into the DM.

A :class:`DecisionNotice` is not posted. It exists to tell one person that their decision
was refused, privately, and on Discord that person always clicked a button or submitted a
modal: the gateway holds that interaction, and its token, for the 15 minutes Discord
allows, so it sends the same refusal as an ephemeral follow-up once the worker has decided
(see ``_gateway.py``). The worker has no interaction at hand (tokens are not stored), and a
public message naming who was refused is exactly what an ephemeral answer avoids.
"""

from __future__ import annotations

from typing import Any

from bot.outbound import DecisionNotice, OutboundReply, RequestPrompt, RequestResolved
from bot.plugins import DeliveryContext
from bot.store import OutboxItem
from channels.discord._messages import (
    MESSAGE_LIMIT,
    prompt_text,
    request_components,
    resolution_text,
    split_text,
)
from channels.discord._rest import DiscordAPIError, DiscordREST
from channels.discord._settings import DiscordSettings, load_discord_settings

__all__ = ["DiscordSender"]

_UNKNOWN_CHANNEL = 10003
_UNKNOWN_MESSAGE = 10008
_WRONG_CHANNEL_TYPE = 50024
_THREAD_EXISTS = 160004
_RESOLUTION_ROOM = 400
"""Characters a request's last message keeps free for the line saying who decided."""
_NO_MENTIONS: dict[str, Any] = {"parse": []}


class DiscordSender:
    """The plugin's ``senders["discord"]``: one outbox item per call, or raise to retry."""

    def __init__(self, settings: DiscordSettings | None = None) -> None:
        """Use ``settings``; by default they are read from the environment at each call."""
        self._settings = settings

    async def __call__(self, item: OutboxItem, context: DeliveryContext) -> None:
        """Deliver ``item``.

        Raises:
            DeliveryRetryError: rate limited or Discord unavailable; try again later.
            DiscordAPIError: Discord refused the message.
            ConfigError: DISCORD_BOT_TOKEN is not set.
        """
        message = item.message
        if isinstance(message, DecisionNotice):
            return  # sent by the gateway as an ephemeral follow-up: see the module docstring
        settings = self._settings or load_discord_settings()
        async with DiscordREST(settings.api_url, settings.token) as rest:
            delivery = _Delivery(rest, item, context)
            if isinstance(message, OutboundReply):
                await delivery.post(message.text)
            elif isinstance(message, RequestPrompt):
                await delivery.post_request(message)
            elif isinstance(message, RequestResolved):
                await delivery.resolve(message)


class _Delivery:
    def __init__(self, rest: DiscordREST, item: OutboxItem, context: DeliveryContext) -> None:
        self.rest = rest
        self.item = item
        self.store = context.store
        self.conversation = item.message.conversation

    async def post(
        self,
        text: str,
        *,
        components: list[dict[str, Any]] | None = None,
        limit: int = MESSAGE_LIMIT,
    ) -> dict[str, Any]:
        """Post ``text`` in as many messages as it takes; the last one carries ``components``."""
        pieces = split_text(text, limit)
        posted: dict[str, Any] = {}
        for n, piece in enumerate(pieces):
            # The nonce makes Discord drop a repeat of a piece posted by an earlier attempt.
            payload: dict[str, Any] = {
                "content": piece,
                "allowed_mentions": _NO_MENTIONS,
                "nonce": f"{self.item.id}.{n}",
                "enforce_nonce": True,
            }
            if components and n == len(pieces) - 1:
                payload["components"] = components
            posted = await self._post(payload)
        return posted

    async def post_request(self, message: RequestPrompt) -> None:
        """Post a request with its buttons and remember where, to edit it once decided."""
        request = message.request
        posted = await self.post(
            prompt_text(request),
            components=request_components(request),
            limit=MESSAGE_LIMIT - _RESOLUTION_ROOM,
        )
        ref = {"channel_id": str(posted["channel_id"]), "message_id": str(posted["id"])}
        await self.store.set_message_ref(request.request_id, ref)

    async def resolve(self, message: RequestResolved) -> None:
        """Edit the request's message: who decided and when; its buttons disabled."""
        record = await self.store.human_request(message.request_id)
        line = resolution_text(message.decision, message.actor, message.comment, record.decided_at)
        ref = record.message_ref
        if ref:
            last = split_text(prompt_text(record.request), MESSAGE_LIMIT - _RESOLUTION_ROOM)[-1]
            edit = {
                "content": f"{last}\n{line}",
                "components": request_components(record.request, disabled=True),
                "allowed_mentions": _NO_MENTIONS,
            }
            path = f"/channels/{ref['channel_id']}/messages/{ref['message_id']}"
            try:
                await self.rest.request("PATCH", path, edit)
                return
            except DiscordAPIError as exc:
                if exc.status != 404:
                    raise
        # The request's message is gone, or was never posted: say it in the thread.
        await self.post(f"`{message.request_id}` {line}")

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        room, key = self.conversation.room, self.conversation.thread_key
        path = f"/channels/{key}/messages"
        if key == room:  # a direct message, or a conversation kept in the channel itself
            return dict(await self.rest.request("POST", path, payload))
        try:
            return dict(await self.rest.request("POST", path, payload))
        except DiscordAPIError as exc:
            if exc.code != _UNKNOWN_CHANNEL:
                raise
        if await self._start_thread():
            return dict(await self.rest.request("POST", path, payload))
        reply = {**payload, "message_reference": {"message_id": key, "fail_if_not_exists": False}}
        return dict(await self.rest.request("POST", f"/channels/{room}/messages", reply))

    async def _start_thread(self) -> bool:
        """Start the thread from the request message; ``False`` where that is not possible."""
        room, key = self.conversation.room, self.conversation.thread_key
        title = (await self.store.load_thread(self.item.thread_id)).title
        name = (title.strip().splitlines() or ["opsloop"])[0][:100]
        try:
            await self.rest.request(
                "POST",
                f"/channels/{room}/messages/{key}/threads",
                {"name": name, "auto_archive_duration": 1440},
            )
        except DiscordAPIError as exc:
            if exc.code == _THREAD_EXISTS:
                return True  # another delivery started it a moment ago
            if exc.status == 403 or exc.code in {_WRONG_CHANNEL_TYPE, _UNKNOWN_MESSAGE}:
                return False
            raise
        return True
