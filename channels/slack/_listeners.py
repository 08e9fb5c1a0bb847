"""Bolt listeners: acknowledge Slack, translate, and hand the event to the fast path.

The Bolt app runs with ``process_before_response``: the acknowledgement Slack waits for
(3 seconds) leaves only once the event is stored and enqueued, so nothing acknowledged is
ever lost, and a failure to store is a 500 that Slack retries. No model is called here, and
no Web API call sits between a request and its acknowledgement either: people's names and
groups come from the directory's cache (waiting at most :data:`ACK_WAIT` for a first
lookup), and what must call Slack (opening a modal, a private notice, the slash command's
thread message) runs after the acknowledgement, in the background.

A decision whose maker's user groups were never read (the directory's first lookup for the
workspace is slow or failing) is not stored: the person is asked to click again, because
storing it without their groups could refuse someone who may decide.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import check_text
from bot.edits import changes_from_texts, problems
from bot.errors import NotFoundError, UserFacingError
from bot.events import ActionReceived, HumanDecision, Identity, MessageReceived
from bot.plugins import ChannelContext
from bot.tool_calls import tool_in_force
from channels.slack._background import later
from channels.slack._blocks import EDIT_BLOCK, answer_modal, edit_modal, edit_texts, reject_modal
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

__all__ = ["ACK_WAIT", "TRY_AGAIN", "Listeners"]

log = logging.getLogger(__name__)

Body = dict[str, Any]

ACK_WAIT = 0.02
"""Seconds an acknowledgement may wait for a first lookup of a name or of user groups."""

TRY_AGAIN = (
    "opsloop is still reading this workspace's user groups, so it cannot tell yet whether "
    "you may decide. Please try again in a few seconds."
)
"""What a decision maker is told when their groups are not known yet."""
_TRY_AGAIN_SHORT = "Still reading your Slack user groups: please submit again in a few seconds."


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
        sender = await self.directory.identity(client, team, user, wait=ACK_WAIT)
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

    async def command(
        self, ack: AsyncAck, command: Body, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """``/ops …``: post the request in the channel, and work in that message's thread.

        The thread needs a message to hang from, and posting it is a Web API call: it
        happens after the acknowledgement, and so does storing the event (its thread is that
        message). Anything that goes wrong there is told through the command's response URL.
        """
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
        await ack()
        later(self._start_thread(command, text, client, respond))

    async def _start_thread(
        self, command: Body, text: str, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        user = command["user_id"]
        try:
            posted = await client.chat_postMessage(
                channel=command["channel_id"], text=f"<@{user}> asked: {escape(text)}"
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "error")
            await respond(
                text=f"opsloop cannot post here ({error}): invite it to the channel with "
                "`/invite @opsloop`, or message it directly.",
                response_type="ephemeral",
            )
            return
        sender = await self.directory.identity(
            client, command["team_id"], user, name=command.get("user_name"), wait=ACK_WAIT
        )
        try:
            event = command_event(command, sender=sender, thread_ts=posted["ts"])
            await self.channel().accept(event)
        except UserFacingError as exc:
            await respond(text=escape(str(exc)), response_type="ephemeral")

    # ------------------------------------------------------------ buttons

    async def approve(
        self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient
    ) -> None:
        """Approve: the exact recorded call runs, if this person may decide."""
        await ack()
        actor = await self._decider(body, client)
        if actor is None:
            return
        event = action_event(
            body, action, actor=actor, decision=HumanDecision.APPROVE, request_id=action["value"]
        )
        await self._accept(event, client, actor.user_id)

    async def option(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """One of a question's suggested answers."""
        await ack()
        value = json.loads(action["value"])
        actor = await self._decider(body, client)
        if actor is None:
            return
        request_id = value["request"]
        answer = value.get("answer")  # buttons posted before options went by index
        if answer is None:
            try:
                request = await self.channel().ops.store.human_request(request_id)
                answer = request.request.options[int(value["option"])]
            except (NotFoundError, IndexError, KeyError, ValueError):
                log.warning("option %r of request %s is unknown", value.get("option"), request_id)
                return
        event = action_event(
            body,
            action,
            actor=actor,
            decision=HumanDecision.ANSWER,
            request_id=request_id,
            comment=answer,
        )
        await self._accept(event, client, actor.user_id)

    async def reject(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """Reject: ask for the reason in a modal; its submission is the decision."""
        await ack()
        later(self._open(client, body, reject_modal(view_meta(body, action["value"]))))

    async def answer(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """The "Answer…" button: take a free-text answer in a modal."""
        await ack()
        question = (body.get("message") or {}).get("text") or ""
        view = answer_modal(question, view_meta(body, action["value"]))
        later(self._open(client, body, view))

    async def edit(self, ack: AsyncAck, body: Body, action: Body, client: AsyncWebClient) -> None:
        """The "Approve with changes…" button: a modal with the call's arguments, prefilled."""
        await ack()
        later(self._open_edit(client, body, action["value"]))

    async def _open_edit(self, client: AsyncWebClient, body: Body, request_id: str) -> None:
        meta = view_meta(body, request_id)
        try:
            request = await self.channel().ops.store.human_request(request_id)
        except NotFoundError as exc:
            await self._tell_now(client, meta, body["user"]["id"], str(exc))
            return
        if request.status != "pending":
            by = request.decided_by or "expiry"
            text = f"request {request_id} was already {request.status} by {by}"
            await self._tell_now(client, meta, body["user"]["id"], text)
            return
        await self._open(client, body, edit_modal(request.request, meta))

    async def _open(self, client: AsyncWebClient, body: Body, view: Body) -> None:
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            meta = json.loads(view["private_metadata"])
            await self._tell_now(
                client, meta, body["user"]["id"], "The form did not open; please click again."
            )

    # ------------------------------------------------------------ modals

    async def rejected(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        """The reject modal's submission: the reason goes to the agent."""
        await self._submitted(ack, body, client, HumanDecision.REJECT, "reason")

    async def answered(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        """The answer modal's submission."""
        await self._submitted(ack, body, client, HumanDecision.ANSWER, "answer")

    async def edited(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        """The edit modal's submission: an approval with the changed arguments.

        What the tool's model refuses is shown beside its field at once; policy (who may
        approve the edited call) is checked when the decision is applied, and a refusal
        comes back as a private notice like any other.
        """
        actor = await self._actor(body, client)
        texts = edit_texts(body["view"].get("state", {}).get("values", {}))
        first = f"{EDIT_BLOCK}{next(iter(texts), '')}"
        event = view_event(body, actor=actor, decision=HumanDecision.APPROVE, field="")
        try:
            request = (await self.channel().ops.store.human_request(event.request_id)).request
        except NotFoundError as exc:
            await ack(response_action="errors", errors={first: str(exc)[:150]})
            return
        recorded = request.arguments or {}
        changes = changes_from_texts(recorded, texts)
        if not changes:
            nothing = "Nothing is changed: close this and use Approve."
            await ack(response_action="errors", errors={first: nothing})
            return
        tool = tool_in_force(self.channel().ops.runtime, request.tool or "")
        found = problems(tool, recorded, changes) if tool else {}
        if found:
            errors = {f"{EDIT_BLOCK}{k}": v[:150] for k, v in found.items() if k in texts}
            await ack(
                response_action="errors", errors=errors or {first: next(iter(found.values()))[:150]}
            )
            return
        if not actor.groups and not self.directory.groups_known(event.conversation.tenant):
            await ack(response_action="errors", errors={first: _TRY_AGAIN_SHORT})
            return
        try:
            await self.channel().accept(event.model_copy(update={"changes": changes}))
        except UserFacingError as exc:
            await ack(response_action="errors", errors={first: str(exc)[:150]})
            return
        await ack()

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
        if not actor.groups and not self.directory.groups_known(event.conversation.tenant):
            await ack(response_action="errors", errors={field: _TRY_AGAIN_SHORT})
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
        team = _team_of(body)
        name = user.get("name") or user.get("username")
        return await self.directory.identity(client, team, user["id"], name=name, wait=ACK_WAIT)

    async def _decider(self, body: Body, client: AsyncWebClient) -> Identity | None:
        """The clicking person, or ``None`` (told to try again) while groups are unknown."""
        actor = await self._actor(body, client)
        if actor.groups or self.directory.groups_known(_team_of(body)):
            return actor
        container = body.get("container") or {}
        where = {"channel": container.get("channel_id", ""), "thread": container.get("thread_ts")}
        later(self._tell_now(client, where, actor.user_id, TRY_AGAIN))
        return None

    async def _accept(
        self, event: MessageReceived | ActionReceived, client: AsyncWebClient, user: str
    ) -> None:
        try:
            await self.channel().accept(event)
        except UserFacingError as exc:
            where = {"channel": event.conversation.room, "thread": event.conversation.thread_key}
            later(self._tell_now(client, where, user, str(exc)))

    async def _tell_now(self, client: AsyncWebClient, where: Body, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(
                channel=where["channel"],
                user=user,
                text=escape(text),
                thread_ts=where.get("thread") or None,
            )
        except SlackClientError as exc:
            log.warning("could not tell %s: %s", user, exc)


def _team_of(body: Body) -> str:
    user = body.get("user") or {}
    return str((body.get("team") or {}).get("id") or user.get("team_id") or "")
