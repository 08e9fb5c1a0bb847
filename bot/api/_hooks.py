"""``POST /hooks/{name}``: a generic webhook trigger, signed with a per-hook secret.

The sender signs ``<timestamp>.<raw body>`` with HMAC-SHA256 and sends::

    X-Opsloop-Timestamp: 1732200000            (unix seconds; five minutes' leeway)
    X-Opsloop-Signature: sha256=<hex digest>
    X-Opsloop-Delivery:  <unique id>            (optional; retries with it are dropped)

The body is a JSON object with ``text`` (the request) and optionally ``agent``,
``thread`` (a key to continue an earlier webhook thread) and anything else, which the agent
sees as the trigger's payload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.app import Opsloop
from bot.events import ConversationRef, Identity, TriggerFired
from bot.plugins import enqueue

__all__ = ["SKEW_SECONDS", "router", "sign"]

SKEW_SECONDS = 300

router = APIRouter(tags=["webhooks"])


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _verify(request: Request, name: str, body: bytes) -> None:
    secret = request.app.state.settings.webhook_secrets.get(name)
    if secret is None:
        raise HTTPException(404, f"no webhook {name!r}")
    timestamp = request.headers.get("x-opsloop-timestamp", "")
    signature = request.headers.get("x-opsloop-signature", "")
    if not timestamp.isdigit() or not signature:
        raise HTTPException(401, "missing X-Opsloop-Timestamp or X-Opsloop-Signature")
    if abs(time.time() - int(timestamp)) > SKEW_SECONDS:
        raise HTTPException(401, "stale timestamp: more than five minutes from our clock")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise HTTPException(401, "bad signature")


@router.post("/hooks/{name}", status_code=202)
async def webhook(name: str, request: Request) -> dict[str, Any]:
    """Start (or continue) a thread from a signed webhook."""
    body = await request.body()
    _verify(request, name, body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise HTTPException(400, 'the body must be a JSON object with a "text" string')
    text = data.pop("text")
    agent = data.pop("agent", None)
    thread = data.pop("thread", None)
    if agent is not None and not isinstance(agent, str):
        raise HTTPException(400, '"agent" must be a string')
    if thread is not None and not isinstance(thread, str):
        raise HTTPException(400, '"thread" must be a string')
    if thread is not None and len(thread) > 200:
        raise HTTPException(400, '"thread" must be at most 200 characters')
    # Keys stay short whatever the sender sends: a long delivery id is hashed.
    delivery = request.headers.get("x-opsloop-delivery") or ""
    if not delivery or len(delivery) > 100:
        seed = delivery.encode() or request.headers["x-opsloop-timestamp"].encode() + body
        delivery = hashlib.sha256(seed).hexdigest()
    event = TriggerFired(
        idempotency_key=f"webhook:{name}:{delivery}",
        conversation=ConversationRef(
            channel="webhook", room=name, thread_key=thread or f"delivery:{delivery}"
        ),
        source=f"webhook:{name}",
        text=text,
        requested_by=Identity(channel="webhook", user_id=name),
        payload=data,
        agent=agent,
    )
    ops: Opsloop = request.app.state.ops
    item = await ops.ingest(event)
    if item is None:
        return {"status": "duplicate"}
    dispatcher, item_id = request.app.state.dispatcher, item.id
    await enqueue(lambda: dispatcher.process(item_id), what=f"inbox item {item_id}")
    return {"status": "accepted", "inbox_item": item.id}
