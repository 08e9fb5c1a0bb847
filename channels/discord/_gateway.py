"""Discord's gateway: ``/ops``, mentions, ``!ops``, thread follow-ups and button clicks in.

Everything that comes in is translated (``_inbound.py``) and handed to ingest; nothing here
decides anything. Interactions are acknowledged first, well within Discord's 3 seconds,
and answered afterwards through their follow-up webhook:

- ``/ops`` is deferred, its response becomes the request message (the sender starts the
  conversation's thread from it), then the request is ingested.
- A decision button is parsed from its custom id alone (a :class:`discord.ui.DynamicItem`),
  so buttons posted before a restart keep working. Approve and a question's options are
  deferred ephemerally and ingested; Reject and "Other answer…" open a modal first, whose
  submission is routed by the same custom id (never by a modal object kept in memory).
- The worker decides. The click's outcome (accepted, or refused with the reason the worker
  recorded: not allowed, already decided, expired) is read back from the ingested item and
  told to the clicker as an ephemeral follow-up while the interaction's token is valid.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord
import yarl
from discord import app_commands
from pydantic import JsonValue

from bot.edits import changes_from_texts, problems, shown
from bot.errors import ConfigError, NotFoundError, UserFacingError
from bot.events import HumanDecision, HumanRequested
from bot.plugins import ChannelContext
from bot.store import Store
from bot.tool_calls import tool_in_force
from channels.discord._inbound import (
    action_event,
    command_event,
    identity_of,
    message_event,
    message_text,
    modal_text,
    modal_texts,
)
from channels.discord._messages import (
    CUSTOM_ID,
    EDIT_ID,
    MESSAGE_LIMIT,
    MODAL_INPUTS,
    clip,
    custom_id,
    edit_custom_id,
    mention,
)
from channels.discord._settings import DISCORD_API, DiscordSettings

__all__ = ["DecisionButton", "EditButton", "OpsloopClient", "run_gateway", "wait_for_verdict"]

VERDICT_WINDOW = 14 * 60.0
"""Seconds to wait for the worker's verdict on a click (an interaction token lasts 15 min)."""

_ALREADY_ACKNOWLEDGED = 40060
_REASON = "reason"
_CUSTOM_ID = re.compile(CUSTOM_ID)
_EDIT_ID = re.compile(EDIT_ID)
_ARGUMENT = "arg:"
_ACCEPTED = {
    HumanDecision.APPROVE: "✅ Approved. The request's message shows it; the thread goes on.",
    HumanDecision.REJECT: "✅ Rejected, with your reason. The thread goes on.",
    HumanDecision.ANSWER: "✅ Answer recorded. The thread goes on.",
}


async def wait_for_verdict(
    store: Store, item_id: int, decision: HumanDecision, *, window: float = VERDICT_WINDOW
) -> str:
    """What to tell the person whose decision became inbox item ``item_id``, once known."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + window, 0.05
    while True:
        item = await store.inbox_item(item_id)
        if item.status == "failed":
            return f"⛔ Not accepted: {item.error}"
        if item.status == "done":
            return _ACCEPTED[decision]
        if loop.time() >= deadline:
            return "⏳ Received, still queued. The request's message changes once it is decided."
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


async def _acknowledge(interaction: discord.Interaction[Any], *, ephemeral: bool) -> None:
    try:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    except discord.HTTPException as exc:
        if exc.code != _ALREADY_ACKNOWLEDGED:
            raise
        # A replayed interaction: whoever acknowledged it answers it; ingest drops the copy.


class OpsloopClient(discord.Client):
    """The bot: reads Discord and hands what is meant for opsloop to ingest."""

    def __init__(self, context: ChannelContext, settings: DiscordSettings) -> None:
        """Connect ``context`` (ingest) to Discord as configured by ``settings``."""
        # Only what opsloop reads: guilds (channels, threads, roles), guild and DM messages.
        # Interactions need no intent; message content is privileged and opt-in.
        intents = discord.Intents(guilds=True, guild_messages=True, dm_messages=True)
        intents.message_content = settings.message_content
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.context = context
        self.settings = settings
        self.tree: app_commands.CommandTree[OpsloopClient] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        """Route decision buttons by custom id and register ``/ops``."""
        self.add_dynamic_items(DecisionButton, EditButton)
        self.tree.add_command(ops_command)
        for guild_id in self.settings.guilds:  # guild commands appear at once
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        if not self.settings.guilds:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        """A mention, ``!ops`` or a follow-up in an opsloop thread; bots are ignored."""
        if self.user is None:
            return
        text = message_text(message, self.user.id, prefix=self.settings.message_content)
        if text is None:
            return
        try:
            await self.context.accept(message_event(message, text))
        except UserFacingError as exc:
            await message.reply(clip(f"⚠️ {exc}", MESSAGE_LIMIT), mention_author=False)

    async def ask(self, interaction: discord.Interaction[Any], text: str) -> None:
        """``/ops``: acknowledge, post the request message, ingest."""
        if interaction.user.bot:
            return
        await _acknowledge(interaction, ephemeral=False)
        who = mention(identity_of(interaction.user))
        shown = text if len(text) <= 1800 else text[:1800] + "…"
        echo = await interaction.edit_original_response(content=f"{who} asked: {shown}")
        try:
            await self.context.accept(command_event(interaction, text, echo.id))
        except UserFacingError as exc:
            said = clip(f"{echo.content}\n⚠️ {exc}", MESSAGE_LIMIT)
            await interaction.edit_original_response(content=said)

    async def click(
        self,
        interaction: discord.Interaction[Any],
        decision: HumanDecision,
        request_id: str,
        option: int | None,
    ) -> None:
        """A decision button: Approve, a suggested answer, or one that needs text first."""
        if interaction.user.bot:
            return
        if decision is not HumanDecision.APPROVE and option is None:
            # A modal can only be the first response, so it comes before any acknowledgement.
            await interaction.response.send_modal(_reason_modal(decision, request_id))
            return
        await _acknowledge(interaction, ephemeral=True)
        comment = None
        if option is not None:
            comment = await self._option(request_id, option)
            if comment is None:
                await interaction.followup.send("⚠️ That answer is gone.", ephemeral=True)
                return
        await self._decide(interaction, decision, request_id, comment)

    async def edit(self, interaction: discord.Interaction[Any], request_id: str) -> None:
        """The "Approve with changes…" button: a modal of the call's arguments, prefilled."""
        if interaction.user.bot:
            return
        try:
            request = await self.context.ops.store.human_request(request_id)
        except NotFoundError as exc:
            await interaction.response.send_message(f"⚠️ {exc}", ephemeral=True)
            return
        if request.status != "pending":
            by = request.decided_by or "expiry"
            said = f"⚠️ Request {request_id} was already {request.status} by {by}."
            await interaction.response.send_message(said, ephemeral=True)
            return
        await interaction.response.send_modal(_edit_modal(request.request))

    async def _edited(self, interaction: discord.Interaction[Any], request_id: str) -> None:
        await _acknowledge(interaction, ephemeral=True)
        texts = modal_texts(interaction.data or {}, _ARGUMENT)
        try:
            asked = (await self.context.ops.store.human_request(request_id)).request
        except NotFoundError as exc:
            await interaction.followup.send(f"⚠️ {exc}", ephemeral=True)
            return
        recorded = asked.arguments or {}
        changes = changes_from_texts(recorded, texts)
        tool = tool_in_force(self.context.ops.runtime, asked.tool or "")
        found = problems(tool, recorded, changes) if tool and changes else {}
        if not changes or found:
            said = "; ".join(f"{k}: {v}" for k, v in found.items()) or "nothing was changed"
            text = f"⚠️ Not sent: {said}. Click “Approve with changes…” to try again."
            await interaction.followup.send(clip(text, MESSAGE_LIMIT), ephemeral=True)
            return
        await self._decide(interaction, HumanDecision.APPROVE, request_id, None, changes)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """A submitted reason (Reject), answer ("Other answer…") or edit, by custom id."""
        if interaction.type is not discord.InteractionType.modal_submit or interaction.user.bot:
            return
        data: Any = interaction.data or {}
        edit = _EDIT_ID.fullmatch(str(data.get("custom_id", "")))
        if edit is not None:
            await self._edited(interaction, edit["request"])
            return
        match = _CUSTOM_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None or match["option"] is not None or match["action"] == "approve":
            return
        await _acknowledge(interaction, ephemeral=True)
        text = modal_text(data, _REASON)
        await self._decide(interaction, HumanDecision(match["action"]), match["request"], text)

    async def _decide(
        self,
        interaction: discord.Interaction[Any],
        decision: HumanDecision,
        request_id: str,
        comment: str | None,
        changes: dict[str, JsonValue] | None = None,
    ) -> None:
        event = action_event(interaction, decision, request_id, comment, changes)
        try:
            item = await self.context.accept(event)
        except UserFacingError as exc:
            await interaction.followup.send(clip(f"⚠️ {exc}", MESSAGE_LIMIT), ephemeral=True)
            return
        if item is None:
            return  # a replay: the first copy of this interaction is answered already
        verdict = await wait_for_verdict(self.context.ops.store, item.id, decision)
        await interaction.followup.send(clip(verdict, MESSAGE_LIMIT), ephemeral=True)

    async def _option(self, request_id: str, option: int) -> str | None:
        try:
            options = (await self.context.ops.store.human_request(request_id)).request.options
        except NotFoundError:
            return None
        return options[option] if option < len(options) else None


class DecisionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CUSTOM_ID
):
    """Any opsloop decision button, rebuilt from its custom id when clicked."""

    def __init__(self, decision: HumanDecision, request_id: str, option: int | None) -> None:
        """The button for ``decision`` on ``request_id`` (and a question's ``option``)."""
        super().__init__(discord.ui.Button(custom_id=custom_id(decision, request_id, option)))
        self.decision = decision
        self.request_id = request_id
        self.option = option

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> DecisionButton:
        """Parse the custom id (no lookup, no state)."""
        option = int(match["option"]) if match["option"] else None
        return cls(HumanDecision(match["action"]), match["request"], option)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        client = interaction.client
        assert isinstance(client, OpsloopClient)
        await client.click(interaction, self.decision, self.request_id, self.option)


class EditButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=EDIT_ID):
    """The "Approve with changes…" button of any request, rebuilt from its custom id."""

    def __init__(self, request_id: str) -> None:
        """The button for ``request_id``."""
        super().__init__(discord.ui.Button(custom_id=edit_custom_id(request_id)))
        self.request_id = request_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> EditButton:
        """Parse the custom id (no lookup, no state)."""
        return cls(match["request"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the client."""
        client = interaction.client
        assert isinstance(client, OpsloopClient)
        await client.edit(interaction, self.request_id)


def _edit_modal(request: HumanRequested) -> discord.ui.Modal:
    """One text input per argument, prefilled; a modal holds five, so only the first five."""
    arguments = list((request.arguments or {}).items())
    more = len(arguments) > MODAL_INPUTS
    modal = discord.ui.Modal(
        title="Approve with changes (first 5 args)" if more else "Approve with changes",
        custom_id=edit_custom_id(request.request_id),
        timeout=None,
    )
    for key, value in arguments[:MODAL_INPUTS]:
        text = shown(value)
        modal.add_item(
            discord.ui.TextInput(
                label=clip(key, 45),
                custom_id=clip(f"{_ARGUMENT}{key}", 100),
                style=discord.TextStyle.paragraph if len(text) > 60 else discord.TextStyle.short,
                default=text[:4000] or None,
                required=False,
                max_length=4000,
            )
        )
    modal.stop()  # routed by custom id in OpsloopClient.on_interaction, as the reason modal
    return modal


def _reason_modal(decision: HumanDecision, request_id: str) -> discord.ui.Modal:
    reject = decision is HumanDecision.REJECT
    modal = discord.ui.Modal(
        title="Reject: give a reason" if reject else "Your answer",
        custom_id=custom_id(decision, request_id),
        timeout=None,
    )
    modal.add_item(
        discord.ui.TextInput(
            label="Reason" if reject else "Answer",
            custom_id=_REASON,
            style=discord.TextStyle.paragraph,
            max_length=2000,
        )
    )
    # Only rendered: a stopped modal is not kept in memory, and its submission is routed by
    # custom id in OpsloopClient.on_interaction, which works across restarts.
    modal.stop()
    return modal


@app_commands.command(name="ops", description="Ask opsloop: look up, deploy, restart, roll back…")
@app_commands.describe(request="What you need, e.g. deploy checkout 1.4.2 to production")
async def ops_command(
    interaction: discord.Interaction[OpsloopClient], request: app_commands.Range[str, 1, 4000]
) -> None:
    """``/ops <request>``."""
    await interaction.client.ask(interaction, request)


async def run_gateway(context: ChannelContext, settings: DiscordSettings) -> None:
    """Connect to Discord and feed ingest until cancelled.

    Raises:
        ConfigError: Discord refused the token, or the message-content intent is not on.
    """
    discord.http.Route.BASE = settings.api_url  # discord.py's REST base, for every request
    client = OpsloopClient(context, settings)
    try:
        async with client:
            await client.login(settings.token)
            if settings.api_url != DISCORD_API:
                # discord.py dials Discord's own gateway; follow the API we were pointed at.
                _, url, _ = await client.http.get_bot_gateway()
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            await client.connect()
    except discord.LoginFailure:
        raise ConfigError("DISCORD_BOT_TOKEN: Discord refused the token") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "DISCORD_MESSAGE_CONTENT=true, but the Message Content intent is off for this bot "
            "(Developer Portal → Bot → Privileged Gateway Intents)"
        ) from None
