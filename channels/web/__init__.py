"""The web console: chat with opsloop and inspect threads in a browser.

Pages are server-rendered (Jinja templates in ``templates/``); the chat's few lines of
JavaScript (``static/``) call the JSON API under ``/api`` with the console session.
"""

from __future__ import annotations

from bot.plugins import DeliveryContext, Plugin
from bot.store import OutboxItem
from channels.web._pages import add_routes

__all__ = ["deliver", "plugin"]


async def deliver(item: OutboxItem, context: DeliveryContext) -> None:
    """Deliver to the console: nothing to push, the console reads the thread log itself."""


plugin = Plugin(name="web", routes=add_routes, senders={"web": deliver})
