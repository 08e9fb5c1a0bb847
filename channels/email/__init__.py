"""The email channel: a mailbox watched over IMAP in, SMTP out, approvals by link or reply.

- inbound (:class:`MailWatcher`, the gateway): IMAP IDLE (or polling), new mail by UID,
  the place reached kept in the database; each mail becomes one inbound event, or a
  failed inbox item saying why it was refused (malformed, too big, automatic, forged).
- outbound (:class:`EmailSender`): replies threaded with In-Reply-To / References and a
  ``Re:`` subject; approval mails with signed single-use links and reply instructions.
- routes: ``GET /email/decide/{token}`` shows the action, ``POST`` decides.
"""

from __future__ import annotations

from functools import cache

from bot.plugins import ChannelContext, DeliveryContext, Gateway, Plugin
from bot.store import OutboxItem
from channels.email._routes import add_routes
from channels.email._send import EmailSender
from channels.email._settings import EmailSettings, load_email_settings
from channels.email._state import metadata
from channels.email._watch import MailWatcher

__all__ = ["EmailSender", "EmailSettings", "MailWatcher", "deliver", "gateway", "plugin"]


def gateway() -> Gateway | None:
    """The mailbox watcher when the IMAP settings are present, else ``None``.

    Raises:
        ConfigError: the email settings are invalid.
    """
    settings = load_email_settings()
    if not settings.imap_configured:
        return None

    async def watch(context: ChannelContext) -> None:
        await MailWatcher(settings, context).run()

    return watch


@cache
def _sender() -> EmailSender:
    return EmailSender(load_email_settings())


async def deliver(item: OutboxItem, context: DeliveryContext) -> None:
    """Send an outbox message as mail, with the settings from the environment."""
    await _sender()(item, context)


plugin = Plugin(
    name="email",
    routes=add_routes,
    senders={"email": deliver},
    gateway=gateway,
    settings=EmailSettings,
    tables=metadata,
)
