"""Outbound: deliver opsloop's messages into a Discord conversation (``send(outbound)``).

A conversation's ``thread_key`` is the Discord thread's id, which for a thread started from
a message is that message's id. So the first answer to a request posts into a thread that
does not exist yet: Discord says "unknown channel", the thread is started from the request
message, and the answer goes there. Where threads are not allowed (a channel type without
them, no permission, the request message deleted) the answer goes into the channel as a
reply to the request; in a direct message it goes into the DM.

A request card for a place outside the thread goes to that channel (a ``notify`` place,
``discord:<channel id>``) or, for an escalation step's person (``discord:@<user id>``), to
the DM the bot opens with them (``POST /users/@me/channels``); each card is recorded per
place and edited once the request is decided.

A :class:`DecisionNotice` is not posted. It exists to tell one person that their decision
was refused, privately, and on Discord that person always clicked a button or submitted a
modal: the gateway holds that interaction, and its token, for the 15 minutes Discord
allows, so it sends the same refusal as an ephemeral follow-up once the worker has decided
(see ``_gateway.py``). The worker has no interaction at hand (tokens are not stored), and a
public message naming who was refused is exactly what an ephemeral answer avoids.

Delivery is at least once (a retry after a rate limit, a worker that died after posting),
so each posted message must be posted once only:

- every piece carries a nonce derived from the outbox item and the piece, with
  ``enforce_nonce``: for the few minutes Discord remembers it, a repeat returns the
  message already posted;
- a later retry first reads what the bot last posted in the conversation: a request's
  message is found by its buttons' custom ids (which name the request), and the pieces
  of a long text already posted by an earlier attempt are not posted again.

Messages stay within Discord's limits: at most :data:`MAX_PIECES` pieces, the rest cut
with a link to the thread's page in the console. A form Discord refuses (50035) will be
refused again, so delivery fails at once with Discord's reason instead of retrying.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from bot.outbound import (
    DecisionNotice,
    OutboundReply,
    RequestProgress,
    RequestPrompt,
    RequestResolved,
)
from bot.plugins import DeliveryContext, DeliveryFailedError
from bot.store import OutboxItem
from channels.discord._messages import (
    CUSTOM_ID,
    MESSAGE_LIMIT,
    clip,
    message_pieces,
    progress_text,
    prompt_text,
    request_components,
    resolution_text,
)
from channels.discord._rest import DiscordAPIError, DiscordREST
from channels.discord._settings import DiscordSettings, load_discord_settings

__all__ = ["DiscordSender"]

_UNKNOWN_CHANNEL = 10003
_UNKNOWN_MESSAGE = 10008
_WRONG_CHANNEL_TYPE = 50024
_INVALID_FORM_BODY = 50035
_CANNOT_MESSAGE_USER = 50007
_THREAD_EXISTS = 160004
_RESOLUTION_ROOM = 400
"""Characters a request's last message keeps free for the line saying who decided."""
_NO_THREADS_FOR = 600.0
"""Seconds a channel where threads cannot be started is remembered as such (permissions
change, so not for ever)."""
_HISTORY = 50
"""Recent messages read to find what an earlier attempt posted."""
_NO_MENTIONS: dict[str, Any] = {"parse": []}
_REQUEST_OF = re.compile(CUSTOM_ID)


class DiscordSender:
    """The plugin's ``senders["discord"]``: one outbox item per call, or raise to retry."""

    def __init__(self, settings: DiscordSettings | None = None) -> None:
        """Use ``settings``; by default they are read from the environment at each call."""
        self._settings = settings
        self._no_threads: dict[str, float] = {}
        """Channels where starting a thread was refused, until when that is assumed."""
        self._me: dict[str, str] = {}
        """The bot's user id, by token, once asked."""

    async def __call__(self, item: OutboxItem, context: DeliveryContext) -> None:
        """Deliver ``item``.

        Raises:
            DeliveryRetryError: rate limited or Discord unavailable; try again later.
            DeliveryFailedError: Discord refused the message's form; it never will take it.
            DiscordAPIError: Discord refused the message.
            ConfigError: DISCORD_BOT_TOKEN is not set.
        """
        message = item.message
        if isinstance(message, DecisionNotice):
            return  # sent by the gateway as an ephemeral follow-up: see the module docstring
        settings = self._settings or load_discord_settings()
        async with DiscordREST(settings.api_url, settings.token) as rest:
            delivery = _Delivery(self, rest, settings.token, item, context)
            try:
                if isinstance(message, OutboundReply):
                    await delivery.post(message.text)
                elif isinstance(message, RequestPrompt):
                    await delivery.post_request(message)
                elif isinstance(message, RequestResolved):
                    await delivery.resolve(message)
                elif isinstance(message, RequestProgress):
                    await delivery.progress(message)
            except DiscordAPIError as exc:
                if exc.code in (_INVALID_FORM_BODY, _CANNOT_MESSAGE_USER):
                    raise DeliveryFailedError(str(exc)) from exc
                raise

    def threads_refused(self, room: str) -> bool:
        """Whether starting a thread in ``room`` was refused lately."""
        until = self._no_threads.get(room)
        return until is not None and time.monotonic() < until

    def refuse_threads(self, room: str) -> None:
        """Remember that threads cannot be started in ``room``, for a while."""
        self._no_threads[room] = time.monotonic() + _NO_THREADS_FOR

    async def me(self, rest: DiscordREST, token: str) -> str:
        """The bot's own user id."""
        if token not in self._me:
            self._me[token] = str((await rest.request("GET", "/users/@me"))["id"])
        return self._me[token]


class _Delivery:
    def __init__(
        self,
        sender: DiscordSender,
        rest: DiscordREST,
        token: str,
        item: OutboxItem,
        context: DeliveryContext,
    ) -> None:
        self.sender = sender
        self.rest = rest
        self.token = token
        self.item = item
        self.store = context.store
        self.conversation = item.message.conversation
        self.console = context.settings.thread_page(item.thread_id)

    def pieces(self, text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
        return message_pieces(text, limit, more_at=self.console)

    async def post(
        self,
        text: str,
        *,
        components: list[dict[str, Any]] | None = None,
        limit: int = MESSAGE_LIMIT,
        recent: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Post ``text`` in as many messages as it takes; the last one carries ``components``.

        A retry skips the pieces an earlier attempt already posted (``recent``: what the bot
        last said here, when already read).
        """
        pieces = self.pieces(text, limit)
        posted: dict[str, Any] = {}
        done: list[dict[str, Any]] = []
        if self.item.attempts:
            done = _posted_before(pieces, recent if recent is not None else await self._recent())
        for n, piece in enumerate(pieces):
            if n < len(done):
                posted = done[n]
                continue
            payload: dict[str, Any] = {
                "content": piece,
                "allowed_mentions": _NO_MENTIONS,
                "nonce": self._nonce(n),
                "enforce_nonce": True,
            }
            if components and n == len(pieces) - 1:
                payload["components"] = components
            posted = await self._post(payload)
        return posted

    async def post_request(self, message: RequestPrompt) -> None:
        """Post a request with its buttons and remember where, to edit it once decided."""
        request = message.request
        if message.target and self.conversation.room.startswith("@"):
            if await self.store.message_refs(request.request_id, message.target):
                return  # posted already: a redelivery after the post went through
            await self._open_dm(self.conversation.room[1:])
        recent = await self._recent() if self.item.attempts else []
        posted = _request_posted(request.request_id, recent)
        if posted is None:
            posted = await self.post(
                prompt_text(request),
                components=request_components(request),
                limit=MESSAGE_LIMIT - _RESOLUTION_ROOM,
                recent=recent,
            )
        ref = {"channel_id": str(posted["channel_id"]), "message_id": str(posted["id"])}
        if message.target:  # a card in a notify room or for an escalation step
            await self.store.add_message_ref(request.request_id, message.target, ref)
        else:
            await self.store.set_message_ref(request.request_id, ref)

    async def _open_dm(self, user_id: str) -> None:
        """Post into the DM with ``user_id`` (an escalation step's person) from now on."""
        try:
            opened = await self.rest.request(
                "POST", "/users/@me/channels", {"recipient_id": user_id}
            )
        except DiscordAPIError as exc:
            if exc.status in (400, 403, 404):  # an unknown user; one who takes no DMs
                raise DeliveryFailedError(f"no DM with Discord user {user_id}: {exc}") from exc
            raise
        dm = str(opened["id"])
        self.conversation = self.conversation.model_copy(update={"room": dm, "thread_key": dm})

    async def resolve(self, message: RequestResolved) -> None:
        """Edit the request's message: who decided and when; its buttons disabled."""
        record = await self.store.human_request(message.request_id)
        line = resolution_text(
            message.decision, message.actor, message.comment, record.decided_at, message.changes
        )
        line = clip(line, _RESOLUTION_ROOM - 1)
        if message.target:
            await self._resolve_cards(message, record, line)
            return
        if not await self._edit_thread_card(record, line, disabled=True):
            # The request's message is gone, or was never posted: say it in the thread.
            await self.post(f"`{message.request_id}` {line}")

    async def _resolve_cards(self, message: RequestResolved, record: Any, line: str) -> None:
        """Edit every card posted for the message's place; one that is gone stays gone."""
        await self._edit_cards(message.request_id, message.target, record, line, disabled=True)

    async def _edit_cards(
        self, request_id: str, target: str | None, record: Any, line: str, *, disabled: bool = False
    ) -> None:
        """Edit the cards posted for ``target``: the request with ``line`` below it."""
        for ref in await self.store.message_refs(request_id, target):
            await self._edit_card(ref, record, line, disabled=disabled)

    async def _edit_thread_card(self, record: Any, line: str, *, disabled: bool) -> bool:
        """Edit the request's message in its thread; ``False`` when there is none (any more)."""
        ref = record.message_ref
        return bool(ref) and await self._edit_card(ref, record, line, disabled=disabled)

    async def _edit_card(
        self, ref: dict[str, Any], record: Any, line: str, *, disabled: bool
    ) -> bool:
        """Show ``line`` below one posted request; ``False`` when that message is gone."""
        last = self.pieces(prompt_text(record.request), MESSAGE_LIMIT - _RESOLUTION_ROOM)[-1]
        edit = {
            "content": clip(f"{last}\n{line}", MESSAGE_LIMIT),
            "components": request_components(record.request, disabled=disabled),
            "allowed_mentions": _NO_MENTIONS,
        }
        path = f"/channels/{ref['channel_id']}/messages/{ref['message_id']}"
        try:
            await self.rest.request("PATCH", path, edit)
        except DiscordAPIError as exc:
            if exc.status != 404:
                raise
            return False
        return True

    async def progress(self, message: RequestProgress) -> None:
        """Edit the request's message after one approval of several; its buttons stay."""
        record = await self.store.human_request(message.request_id)
        if record.status != "pending":
            return  # decided since: the resolution edits the message
        line = clip(progress_text(message.approved_by, message.still_needed), _RESOLUTION_ROOM - 1)
        if message.target:  # a card outside the thread: edit each posted there
            await self._edit_cards(message.request_id, message.target, record, line)
            return
        if not await self._edit_thread_card(record, line, disabled=False):
            await self.post(f"`{message.request_id}` {line}")

    def _nonce(self, piece: int) -> str:
        # Unique per conversation, item and piece (two installations may share a bot, and
        # outbox ids repeat between databases), within Discord's 25 characters.
        key = f"{self.item.thread_id}:{self.item.id}:{piece}"
        return hashlib.sha256(key.encode()).hexdigest()[:25]

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        room, key = self.conversation.room, self.conversation.thread_key
        path = f"/channels/{key}/messages"
        if key == room:  # a direct message, or a conversation kept in the channel itself
            return dict(await self.rest.request("POST", path, payload))
        if not self.sender.threads_refused(room):
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
            if exc.status == 403 or exc.code == _WRONG_CHANNEL_TYPE:
                self.sender.refuse_threads(room)  # the channel's, not this message's, doing
                return False
            if exc.code == _UNKNOWN_MESSAGE:
                return False
            raise
        return True

    async def _recent(self) -> list[dict[str, Any]]:
        """What the bot posted lately in this conversation, oldest first."""
        room, key = self.conversation.room, self.conversation.thread_key
        me = await self.sender.me(self.rest, self.token)
        found: list[dict[str, Any]] = []
        places = [key] if key == room else [key, room]
        for place in places:
            try:
                history = await self.rest.request(
                    "GET", f"/channels/{place}/messages?limit={_HISTORY}"
                )
            except DiscordAPIError as exc:
                if exc.code == _UNKNOWN_CHANNEL or exc.status == 403:
                    continue  # the thread was never started, or history may not be read
                raise
            for message in reversed(history or []):
                if str(message.get("author", {}).get("id")) != me:
                    continue
                reference = (message.get("message_reference") or {}).get("message_id")
                if place == key or str(reference) == key:  # in the room: replies to ours only
                    found.append(message)
        return sorted(found, key=lambda message: int(message["id"]))


def _request_posted(request_id: str, recent: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The message among ``recent`` that carries the buttons of request ``request_id``."""
    for message in recent:
        for row in message.get("components") or []:
            for button in row.get("components") or []:
                match = _REQUEST_OF.fullmatch(str(button.get("custom_id", "")))
                if match and match["request"] == request_id:
                    return message
    return None


def _posted_before(pieces: list[str], recent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first of ``pieces`` that an earlier attempt posted, found among ``recent``.

    They are the bot's latest messages here, if those are exactly these pieces: delivery
    is in order, so an earlier attempt's pieces are the last thing opsloop said here.

    A single piece identical to the message before it is ambiguous (people ask twice
    and get the same answer): it is posted again, and only Discord's nonce dedupes it.
    """
    for count in range(len(pieces), 0, -1):
        if count == 1 and len(pieces) == 1:
            break
        tail = recent[-count:]
        # Discord trims the whitespace around a message's content.
        said = [str(m.get("content", "")).strip() for m in tail]
        if len(tail) == count and said == [piece.strip() for piece in pieces[:count]]:
            return tail
    return []
