"""Slack payloads in the shapes Slack sends them (Events API, slash commands, interactivity).

Trimmed copies of real payloads: every field opsloop reads is where Slack puts it, plus the
usual neighbours, so a payload that drifts from Slack's shape shows up here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

TEAM = "T1"
CHANNEL = "C1"
TOP_TS = "1700000000.000100"


def signature_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature: HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def _rich_text(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": "Xy1",
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]


def event_callback(event: dict[str, Any], *, event_id: str, team: str = TEAM) -> dict[str, Any]:
    """The Events API envelope around one event."""
    return {
        "token": "verification-token",
        "team_id": team,
        "context_team_id": team,
        "context_enterprise_id": None,
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000000,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team,
                "user_id": "UBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6ImFwcF9tZW50aW9uIiwidGlkIjoiVDEifQ",
    }


def app_mention(
    text: str,
    *,
    user: str = "U_DEV",
    channel: str = CHANNEL,
    ts: str = TOP_TS,
    thread_ts: str | None = None,
    team: str = TEAM,
) -> dict[str, Any]:
    """An ``app_mention`` event (``text`` as Slack sends it, with ``<@UBOT>``)."""
    event: dict[str, Any] = {
        "client_msg_id": f"c9b466b5-{ts}",
        "type": "app_mention",
        "text": text,
        "user": user,
        "ts": ts,
        "blocks": _rich_text(text),
        "team": team,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def message(
    text: str,
    *,
    user: str | None = "U_DEV",
    channel: str = CHANNEL,
    channel_type: str = "channel",
    ts: str = "1700000000.000500",
    thread_ts: str | None = None,
    bot_id: str | None = None,
    subtype: str | None = None,
    team: str = TEAM,
) -> dict[str, Any]:
    """A ``message`` event (``message.channels``, ``message.groups`` or ``message.im``)."""
    event: dict[str, Any] = {
        "type": "message",
        "text": text,
        "ts": ts,
        "team": team,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if user is not None:
        event |= {"user": user, "client_msg_id": f"0b1c2d3e-{ts}", "blocks": _rich_text(text)}
    if thread_ts is not None:
        event |= {"thread_ts": thread_ts, "parent_user_id": "U_DEV"}
    if bot_id is not None:
        event |= {"bot_id": bot_id, "app_id": "A_OTHER", "bot_profile": {"id": bot_id}}
    if subtype is not None:
        event["subtype"] = subtype
    return event


def slash_command(
    text: str,
    *,
    user: str = "U_DEV",
    channel: str = CHANNEL,
    trigger_id: str = "13345224609.738474920.8088930838d88f008e0",
    command: str = "/ops",
    response_url: str = "https://hooks.slack.com/commands/T1/1/xyz",
) -> dict[str, str]:
    """A slash command's form fields."""
    return {
        "token": "verification-token",
        "team_id": TEAM,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A1",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def block_actions(
    action: dict[str, Any],
    *,
    user: str,
    message_ts: str,
    thread_ts: str = TOP_TS,
    channel: str = CHANNEL,
    message_text: str = "",
    trigger_id: str = "111.222.abc",
    team: str = TEAM,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a button of a message in a thread."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A1",
        "token": "verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
            "thread_ts": thread_ts,
        },
        "trigger_id": trigger_id,
        "team": {"id": team, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "ops"},
        "message": {
            "bot_id": "BBOT",
            "type": "message",
            "text": message_text,
            "user": "UBOT",
            "ts": message_ts,
            "thread_ts": thread_ts,
            "team": team,
        },
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "actions": [{**action, "action_ts": action.get("action_ts", "1700000200.000001")}],
    }


def view_submission(
    callback_id: str,
    *,
    block_id: str,
    text: str,
    private_metadata: str,
    user: str,
    view_id: str = "V0ABC",
    team: str = TEAM,
    values: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """A ``view_submission`` payload of a modal with one plain-text input (or ``values``:
    several, by block id)."""
    texts = values if values is not None else {block_id: text}
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A1",
        "token": "verification-token",
        "trigger_id": "222.333.def",
        "view": {
            "id": view_id,
            "team_id": team,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {
                "values": {
                    block: {"value": {"type": "plain_text_input", "value": value}}
                    for block, value in texts.items()
                }
            },
            "hash": "1700000300.abc",
            "app_id": "A1",
            "bot_id": "BBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def form_body(fields: dict[str, str]) -> bytes:
    """URL-encoded form fields, as Slack posts commands and interactivity."""
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactivity request body: ``payload=<json>``."""
    return form_body({"payload": json.dumps(payload)})
