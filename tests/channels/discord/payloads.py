"""Gateway and REST payloads in the shape Discord sends them, for the fake and the tests."""

from __future__ import annotations

from typing import Any

BOT_ID = "1100000000000000001"
APP_ID = BOT_ID  # a bot's user id is its application's id
GUILD_ID = "1100000000000000100"
CHANNEL_ID = "1100000000000000200"
VOICE_ID = "1100000000000000201"  # a voice channel's text chat: no threads there
ONCALL_ROLE = "1100000000000000300"
BOT_ROLE = "1100000000000000301"  # the role Discord manages for the bot ("@opsloop" too)
COMMAND_ID = "1100000000000000400"
TIMESTAMP = "2026-05-01T12:00:00.000000+00:00"


def application() -> dict[str, Any]:
    return {
        "id": APP_ID,
        "name": "opsloop",
        "description": "",
        "icon": None,
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "owner": user("1100000000000000002", "owner"),
        "team": None,
        "interactions_endpoint_url": None,
    }


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(user_id: str, name: str, roles: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "user": user(user_id, name),
        "roles": list(roles),
        "joined_at": TIMESTAMP,
        "nick": None,
        "avatar": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": "562949953421311",
    }


def thread(thread_id: str, parent_id: str, name: str, owner: str = BOT_ID) -> dict[str, Any]:
    return {
        "id": thread_id,
        "type": 11,
        "guild_id": GUILD_ID,
        "parent_id": parent_id,
        "owner_id": owner,
        "name": name,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": TIMESTAMP,
            "locked": False,
        },
    }


def message_payload(
    message_id: str,
    channel_id: str,
    author: dict[str, Any],
    content: str,
    *,
    components: list[dict[str, Any]] | None = None,
    flags: int = 0,
    mentions: list[dict[str, Any]] | None = None,
    mention_roles: list[str] | None = None,
    guild: bool = True,
) -> dict[str, Any]:
    payload = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": mention_roles or [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": flags,
        "components": components or [],
    }
    if guild:
        payload["guild_id"] = GUILD_ID
    return payload


def guild_create(channels: list[dict[str, Any]]) -> dict[str, Any]:
    """GUILD_CREATE for the test guild: its roles, channels and active threads."""
    names = ((GUILD_ID, "@everyone"), (ONCALL_ROLE, "oncall"), (BOT_ROLE, "opsloop"))
    roles = [
        {
            "id": rid,
            "name": name,
            "permissions": "0",
            "position": n,
            "color": 0,
            "hoist": False,
            "managed": rid == BOT_ROLE,
            "mentionable": False,
            "flags": 0,
            **({"tags": {"bot_id": BOT_ID}} if rid == BOT_ROLE else {}),
        }
        for n, (rid, name) in enumerate(names)
    ]
    return {
        "id": GUILD_ID,
        "name": "ops",
        "icon": None,
        "owner_id": "1100000000000000002",
        "roles": roles,
        "emojis": [],
        "stickers": [],
        "features": [],
        "member_count": 3,
        "large": False,
        "unavailable": False,
        "joined_at": TIMESTAMP,
        "members": [],
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "system_channel_flags": 0,
        "channels": [
            {**c, "position": n, "permission_overwrites": []}
            for n, c in enumerate(channels)
            if c["type"] != 11
        ],
        "threads": [c for c in channels if c["type"] == 11],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def interaction_payload(
    interaction_id: str,
    token: str,
    kind: int,
    data: dict[str, Any],
    *,
    by: dict[str, Any],
    channel: dict[str, Any],
) -> dict[str, Any]:
    """INTERACTION_CREATE in a guild channel, by the member ``by``."""
    return {
        "id": interaction_id,
        "application_id": APP_ID,
        "type": kind,
        "data": data,
        "guild_id": GUILD_ID,
        "channel_id": channel["id"],
        "channel": channel,
        "member": by,
        "token": token,
        "version": 1,
        "app_permissions": "562949953421311",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID},
        "context": 0,
        "attachment_size_limit": 10485760,
    }
