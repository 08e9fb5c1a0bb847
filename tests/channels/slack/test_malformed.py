"""Malformed requests on ``POST /slack/events``: a clear 401 or 400, never a 5xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from channels.slack._routes import malformed
from tests.channels.slack import payloads
from tests.channels.slack.conftest import SECRET, SlackHarness

MENTION = "<@UBOT> what is running in staging?"


def signed(body: bytes, stamp: str) -> dict[str, str]:
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


@pytest.mark.parametrize("stamp", ["9" * 5000, "\u00b2", "1700000000\u00b9", "-1", " 1"])
async def test_a_timestamp_that_is_not_a_plain_number_gets_401(
    slack: SlackHarness, stamp: str
) -> None:
    """Regression: 5,000 digits or a superscript digit reached ``int()`` in Bolt: a 500."""
    body = json.dumps(payloads.event_callback(payloads.app_mention(MENTION), event_id="Ev1"))
    headers = {"Content-Type": "application/json", **signed(body.encode(), stamp)}
    encoded = {name: value.encode("utf-8") for name, value in headers.items()}
    response = await slack.client.post("/slack/events", content=body, headers=encoded)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid X-Slack-Request-Timestamp"}
    assert slack.dispatcher.calls == []


async def test_signed_json_nested_too_deep_gets_400(slack: SlackHarness) -> None:
    """Regression: 100,000 levels of signed JSON raised ``RecursionError``: a 500."""
    deep = b'{"type": "event_callback", "event": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await slack.post(deep, "application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "not a Slack request: JSON nested deeper than 64"}
    assert slack.dispatcher.calls == []


async def test_an_interactive_payload_nested_too_deep_gets_400(slack: SlackHarness) -> None:
    """Regression: the form's ``payload`` field is JSON too, parsed by Bolt the same way."""
    deep = "[" * 20_000 + "]" * 20_000  # deep enough for RecursionError, under the size limit
    body = urlencode({"payload": deep}).encode()
    response = await slack.post(body, "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "nested deeper" in response.json()["error"]
    assert slack.dispatcher.calls == []


async def test_brackets_inside_strings_do_not_count(slack: SlackHarness) -> None:
    """A message full of brackets is an ordinary message, not deep JSON."""
    text = "<@UBOT> " + "[[{{" * 100 + ' \\" ' + "]]}}" * 100
    response = await slack.event(payloads.app_mention(text), event_id="Ev1")
    assert response.status_code == 200
    assert len(slack.dispatcher.of("process")) == 1


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b"[" * 64 + b"]" * 64, False),  # as deep as allowed, with no bracket to spare
        (b"[" * 65 + b"]" * 65, True),
        (b"[" + b"[[]]," * 100 + b"[]]", False),  # many brackets, shallow: the full scan
        (b"[" + b"[[]]," * 100 + b"[" * 64 + b"]" * 64 + b"]", True),
    ],
)
def test_nesting_is_measured_at_the_limit(body: bytes, refused: bool) -> None:
    answer = malformed("application/json", None, body)
    assert (answer is not None and answer.status_code == 400) is refused
