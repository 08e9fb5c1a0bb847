"""Who a Slack user is: the immutable user id, a display name, and their user groups.

Policy names people ``slack:<user id>`` and groups ``slack-group:<usergroup id>``, so an
:class:`~bot.events.Identity` carries the ids of every user group the person is in. Names
and memberships are cached for ``SLACK_DIRECTORY_TTL`` seconds per workspace. The lookups
run on the acknowledgement path, so each waits at most ``timeout`` seconds: a slow
``usergroups.list`` goes on in the background and fills the cache for the next event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.events import Identity

__all__ = ["Directory"]

log = logging.getLogger(__name__)

Memberships = dict[str, tuple[str, ...]]


class Directory:
    """Names and user groups of Slack users, cached."""

    def __init__(
        self,
        ttl: float,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Cache for ``ttl`` seconds; wait at most ``timeout`` seconds for Slack."""
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._names: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._groups: dict[str, tuple[float, Memberships]] = {}
        self._fetching: dict[str, asyncio.Task[Memberships]] = {}

    async def identity(
        self, client: AsyncWebClient, team: str, user_id: str, *, name: str | None = None
    ) -> Identity:
        """The person behind ``user_id``; ``name`` is what the payload said, if anything."""
        display, groups = await asyncio.gather(
            self._name(client, team, user_id, name), self._groups_of(client, team, user_id)
        )
        return Identity(channel="slack", user_id=user_id, display_name=display, groups=groups)

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp < self.ttl

    async def _name(
        self, client: AsyncWebClient, team: str, user_id: str, fallback: str | None
    ) -> str | None:
        cached = self._names.get((team, user_id))
        if cached is not None and self._fresh(cached[0]):
            return cached[1] or fallback
        found: str | None = None
        try:
            response = await asyncio.wait_for(client.users_info(user=user_id), self.timeout)
            user: dict[str, Any] = response.get("user") or {}
            profile: dict[str, Any] = user.get("profile") or {}
            found = profile.get("display_name") or profile.get("real_name") or user.get("name")
        except (SlackClientError, TimeoutError) as exc:
            log.info("users.info for %s failed: %s", user_id, _why(exc))
        self._names[(team, user_id)] = (self._clock(), found)
        return found or fallback

    async def _groups_of(self, client: AsyncWebClient, team: str, user_id: str) -> tuple[str, ...]:
        cached = self._groups.get(team)
        if cached is None or not self._fresh(cached[0]):
            task = self._fetching.get(team)
            if task is None:
                task = asyncio.create_task(self._fetch_groups(client, team))
                self._fetching[team] = task
                task.add_done_callback(lambda _: self._fetching.pop(team, None))
            try:
                await asyncio.wait_for(asyncio.shield(task), self.timeout)
            except TimeoutError:
                log.warning("usergroups.list is slow; going on without fresh user groups")
            cached = self._groups.get(team, cached)
        return cached[1].get(user_id, ()) if cached else ()

    async def _fetch_groups(self, client: AsyncWebClient, team: str) -> Memberships:
        members: dict[str, list[str]] = {}
        try:
            response = await client.usergroups_list(include_users=True)
            for group in response.get("usergroups") or []:
                for user in group.get("users") or []:
                    members.setdefault(user, []).append(group["id"])
        except SlackClientError as exc:
            # A workspace without user groups (free plans) answers with an error: no groups.
            log.warning("usergroups.list failed, so no user groups for now: %s", _why(exc))
        memberships = {user: tuple(sorted(ids)) for user, ids in members.items()}
        self._groups[team] = (self._clock(), memberships)
        return memberships


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", exc))
    return type(exc).__name__
