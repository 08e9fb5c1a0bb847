"""Bolt listeners: acknowledge Slack, translate, and hand the event to the fast path.

The Bolt app runs with ``process_before_response``: the acknowledgement Slack waits for
(3 seconds) leaves only once the event is stored and enqueued, so nothing acknowledged is
ever lost, and a failure to store is a 500 that Slack retries. No model is called here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import check_text
from bot.errors import UserFacingError
from bot.events import ActionReceived, HumanDecision, Identity, MessageReceived
from bot.plugins import ChannelContext
from channels.slack._blocks import answer_modal, reject_modal
from channels.slack._directory import Directory
from channels.slack._inbound import (
    ACCEPTED_SUBTYPES,
    action_event,
    command_event,
    conversation,
    from_a_bot,
    message_event,
    view_event,
    view_meta,
)
from channels.slack._settings import SlackSettings
from channels.slack._text import escape, plain_text

__all__ = ["Listeners"]

log = logging.getLogger(__name__)

Body = dict[str, Any]


class Listeners:
    """What opsloop does with each kind of request from Slack."""

    def __init__(
        self,
        settings: SlackSettings,
        channel: Callable[[], ChannelContext],
        directory: Directory,
    ) -> None:
        """Hand events to ``channel()`` (resolved per request); look people up in ``directory``."""
        self.settings = settings
        self.channel = channel
        self.directory = directory

    # ------------------------------------------------------------ messages

    async def mention(
        self, body: Body, event: Body, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """``app_mention``: always for opsloop."""
        await self._message(body, event, context, client, addressed=True)

    async def message(
        self, body: Body, event: Body, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """``message``: a direct message, or a reply in a thread opsloop works in."""
        direct = event.get("channel_type") == "im"
        await self._message(body, event, context, client, addressed=direct)

    async def _message(
        self,
        body: Body,
        event: Body,
        context: AsyncBoltContext,
        client: AsyncWebClient,
        *,
        addressed: bool,
    ) -> None:
        if not self._wanted(event, context):
            return
        team = str(body.get("team_id") or context.team_id or "")
        user: str = event.get("user") or event["bot_id"]
        if not addressed:
            if context.bot_user_id and f"<@{context.bot_user_id}" in (event.get("text") or ""):
                return  # the app_mention event of the same message handles it
            thread = event.get("thread_ts")
            ref = conversation(team, event["channel"], thread) if thread else None
            if ref is None or await self.channel().ops.store.thread_id_for(ref) is None:
                return
        sender = await self.directory.identity(client, team, user)
        received = message_event(event, team=team, sender=sender, bot_user_id=context.bot_user_id)
        await self._accept(received, client, user)

    def _wanted(self, event: Body, context: AsyncBoltContext) -> bool:
        subtype = event.get("subtype")
        if subtype not in ACCEPTED_SUBTYPES and subtype != "bot_message":
            return False
        mine = {context.bot_user_id, context.bot_id} - {None}
        if event.get("user") in mine or event.get("bot_id") in mine:
            return False  # never answer itself
        if from_a_bot(event):
            return self.settings.allow_bots and bool(event.get("user") or event.get("bot_id"))
        return bool(event.get("user"))

    # ------------------------------------------------------------ the slash command

    async def command(self, ack: AsyncAck, command: Body, client: AsyncWebClient) -> None:
        """``/ops …``: post the request in the channel, and work in that message's thread."""
        name = self.settings.command
        text = plain_text(command.get("text") or "")
        if not text:
            await ack(text=f"Tell opsloop what you need: `{name} what is running in staging?`")
            return
        try:
            check_text(text, limit=self.channel().ops.runtime.settings.max_message_chars)
        except UserFacingError as exc:
            await ack(text=str(exc))
            return
        user = command["user_id"]
        sender = await self.directory.identity(
            client, command["team_id"], user, name=command.get("user_name")
        )
        try:
            posted = await client.chat_postMessage(
                channel=command["channel_id"], text=f"<@{user}> asked: {escape(text)}"
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "error")
            await ack(
                text=f"opsloop cannot post here ({error}): invite it to the channel with "
                "`/invite @opsloop`, or message it directly."
            )
            return
        try:
            event = command_event(command, sender=sender, thread_ts=posted["ts"])
            await self.channel().accept(event)
        except UserFacingError as exc:
            await ack(text=str(exc))
            return
        await ack()

    # ------------------------------------------------------------ buttons

    async def approve(
        self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient
    ) -> None:
        """Approve: the exact recorded call runs, if this person may decide."""
        await ack()
        actor = await self._actor(body, client)
        event = action_event(
            body, action, actor=actor, decision=HumanDecision.APPROVE, request_id=action["value"]
        )
        await self._accept(event, client, actor.user_id)

    async def option(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """One of a question's suggested answers."""
        await ack()
        value = json.loads(action["value"])
        actor = await self._actor(body, client)
        event = action_event(
            body,
            action,
            actor=actor,
            decision=HumanDecision.ANSWER,
            request_id=value["request"],
            comment=value["answer"],
        )
        await self._accept(event, client, actor.user_id)

    async def reject(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """Reject: ask for the reason in a modal; its submission is the decision."""
        await ack()
        await self._open(client, body, reject_modal(view_meta(body, action["value"])))

    async def answer(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """The "Answer…" button: take a free-text answer in a modal."""
        await ack()
        question = (body.get("message") or {}).get("text") or ""
        await self._open(client, body, answer_modal(question, view_meta(body, action["value"])))

    async def _open(self, client: AsyncWebClient, body: Body, view: Body) -> None:
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            meta = json.loads(view["private_metadata"])
            await self._tell(
                client, meta, body["user"]["id"], "The form did not open; please click again."
            )

    # ------------------------------------------------------------ modals

    async def rejected(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        """The reject modal's submission: the reason goes to the agent."""
        await self._submitted(ack, body, client, HumanDecision.REJECT, "reason")

    async def answered(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        """The answer modal's submission."""
        await self._submitted(ack, body, client, HumanDecision.ANSWER, "answer")

    async def _submitted(
        self,
        ack: AsyncAck,
        body: Body,
        client: AsyncWebClient,
        decision: HumanDecision,
        field: str,
    ) -> None:
        actor = await self._actor(body, client)
        event = view_event(body, actor=actor, decision=decision, field=field)
        if not event.comment:
            await ack(response_action="errors", errors={field: "Please write something."})
            return
        try:
            await self.channel().accept(event)
        except UserFacingError as exc:
            await ack(response_action="errors", errors={field: str(exc)[:150]})
            return
        await ack()

    # ------------------------------------------------------------ shared

    async def _actor(self, body: Body, client: AsyncWebClient) -> Identity:
        user = body["user"]
        team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
        name = user.get("name") or user.get("username")
        return await self.directory.identity(client, team, user["id"], name=name)

    async def _accept(
        self, event: MessageReceived | ActionReceived, client: AsyncWebClient, user: str
    ) -> None:
        try:
            await self.channel().accept(event)
        except UserFacingError as exc:
            where = {"channel": event.conversation.room, "thread": event.conversation.thread_key}
            await self._tell(client, where, user, str(exc))

    async def _tell(self, client: AsyncWebClient, where: Body, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(
                channel=where["channel"],
                user=user,
                text=escape(text),
                thread_ts=where.get("thread") or None,
            )
        except SlackApiError as exc:
            log.warning("could not tell %s: %s", user, exc.response.get("error"))
