"""Who a Slack user is: the immutable user id, a display name, and their user groups.

Policy names people ``slack:<user id>`` and groups ``slack-group:<usergroup id>``, so an
:class:`~bot.events.Identity` carries the ids of every user group the person is in. Names
and memberships are cached for ``SLACK_DIRECTORY_TTL`` seconds per workspace.

The lookups never hold up Slack's acknowledgement: :meth:`Directory.identity` answers from
the cache, refreshing in the background what is stale, and waits at most ``wait`` seconds
for a lookup already under way. A failed lookup keeps the last good answer and is tried
again after :data:`RETRY_AFTER` seconds, not after the whole TTL. Until a workspace's user
groups have been read once, :meth:`Directory.groups_known` says so: a decision then asks
the person to try again rather than refusing someone who holds their role through a group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.events import Identity
from channels.slack._background import later

__all__ = ["RETRY_AFTER", "Directory"]

log = logging.getLogger(__name__)

RETRY_AFTER = 15.0
"""Seconds before a failed lookup is tried again (the last good answer is kept meanwhile)."""

_NO_GROUPS = frozenset({"paid_teams_only", "plan_upgrade_required"})
"""usergroups.list errors that mean "this workspace has no user groups": a real answer."""

Memberships = dict[str, tuple[str, ...]]


@dataclass
class _Entry:
    """One cached answer and when it was read."""

    value: Any
    read_at: float


class Directory:
    """Names and user groups of Slack users, cached; lookups run in the background."""

    def __init__(
        self,
        ttl: float,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Cache for ``ttl`` seconds; give up on one Slack call after ``timeout`` seconds."""
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._names: dict[tuple[str, str], _Entry] = {}
        self._groups: dict[str, _Entry] = {}
        self._failed: dict[object, float] = {}  # key -> when to try again
        self._lookups: dict[object, asyncio.Task[Any]] = {}

    def groups_known(self, team: str) -> bool:
        """Whether the user groups of ``team`` have been read (successfully) at least once."""
        return team in self._groups

    async def identity(
        self,
        client: AsyncWebClient,
        team: str,
        user_id: str,
        *,
        name: str | None = None,
        wait: float = 0.0,
    ) -> Identity:
        """The person behind ``user_id``, as far as is known now.

        Args:
            client: the workspace's Web API client, for lookups.
            team: the workspace.
            user_id: the person.
            name: the name the payload carried, if any (used until a better one is known).
            wait: the longest to wait for a first lookup this call starts (never for the
                refresh of an answer already cached, nor for a lookup already under way).
        """
        unanswered = []
        for key, entry, fetch in (
            ((team, user_id), self._names.get((team, user_id)), self._fetch_name),
            (team, self._groups.get(team), self._fetch_groups),
        ):
            if self._due(entry, key) and key not in self._lookups:
                task = self._lookup(key, fetch, client, team, user_id)
                if entry is None:  # a first lookup: worth a short wait, once
                    unanswered.append(task)
        if unanswered and wait > 0:
            await asyncio.wait(unanswered, timeout=wait)
        cached_name = self._names.get((team, user_id))
        display = (cached_name.value if cached_name else None) or name
        groups = self._groups.get(team)
        mine: tuple[str, ...] = groups.value.get(user_id, ()) if groups else ()
        return Identity(
            channel="slack", user_id=user_id, display_name=display, groups=mine, auth="slack"
        )

    def _due(self, entry: _Entry | None, key: object) -> bool:
        now = self._clock()
        if now < self._failed.get(key, 0.0):
            return False
        return entry is None or now - entry.read_at >= self.ttl

    def _lookup(
        self,
        key: object,
        fetch: Callable[[AsyncWebClient, str, str], Awaitable[object]],
        *args: Any,
    ) -> asyncio.Task[object]:
        task = self._lookups.get(key)
        if task is None:  # one lookup at a time per key, shared by everyone waiting
            task = later(self._guarded(key, fetch(*args)))
            self._lookups[key] = task
            task.add_done_callback(lambda _: self._lookups.pop(key, None))
        return task

    async def _guarded(self, key: object, fetch: Awaitable[object]) -> object:
        try:
            found = await asyncio.wait_for(fetch, self.timeout)
        except Exception as exc:  # a background lookup has no caller to raise to
            # Keep whatever was known; look again soon rather than after the whole TTL.
            self._failed[key] = self._clock() + min(RETRY_AFTER, self.ttl)
            log.warning("Slack lookup %s failed, trying again soon: %s", key, _why(exc))
            return None
        self._failed.pop(key, None)
        return found

    async def _fetch_name(self, client: AsyncWebClient, team: str, user_id: str) -> str | None:
        response = await client.users_info(user=user_id)
        user: dict[str, Any] = response.get("user") or {}
        profile: dict[str, Any] = user.get("profile") or {}
        found = profile.get("display_name") or profile.get("real_name") or user.get("name")
        self._names[(team, user_id)] = _Entry(found, self._clock())
        return found

    async def _fetch_groups(self, client: AsyncWebClient, team: str, _user: str) -> Memberships:
        members: dict[str, list[str]] = {}
        try:
            response = await client.usergroups_list(include_users=True)
        except SlackApiError as exc:
            if exc.response.get("error") not in _NO_GROUPS:
                raise
            log.info("Slack workspace %s has no user groups (%s)", team, _why(exc))
        else:
            for group in response.get("usergroups") or []:
                for user in group.get("users") or []:
                    members.setdefault(user, []).append(group["id"])
        memberships = {user: tuple(sorted(ids)) for user, ids in members.items()}
        self._groups[team] = _Entry(memberships, self._clock())
        return memberships


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", exc))
    return type(exc).__name__
