"""The Discord channel: ``/ops``, mentions and buttons in; threaded answers and approvals out.

- inbound (``opsloop gateway``): :mod:`channels.discord._gateway` on discord.py's gateway,
  translating with :mod:`channels.discord._inbound`;
- outbound (workers): :class:`DiscordSender`, REST calls to ``DISCORD_API_URL``;
- settings: :class:`DiscordSettings` (``DISCORD_*``, listed in ``.env.example``).

discord.py is imported only when the gateway runs, so loading the plugin stays cheap for
the API and the workers.
"""

from __future__ import annotations

from bot.plugins import ChannelContext, Gateway, Plugin
from channels.discord._sender import DiscordSender
from channels.discord._settings import DiscordSettings, load_discord_settings

__all__ = ["DiscordSender", "DiscordSettings", "gateway", "load_discord_settings", "plugin"]


def gateway() -> Gateway | None:
    """The Discord gateway when ``DISCORD_BOT_TOKEN`` is set, else ``None``.

    Raises:
        ConfigError: a Discord setting is invalid.
    """
    settings = load_discord_settings()
    if settings.bot_token is None:
        return None

    async def run(context: ChannelContext) -> None:
        from channels.discord._gateway import run_gateway

        await run_gateway(context, settings)

    return run


plugin = Plugin(
    name="discord",
    senders={"discord": DiscordSender()},
    gateway=gateway,
    settings=DiscordSettings,
)
"""What the Discord channel adds: its sender, its gateway and its settings."""
