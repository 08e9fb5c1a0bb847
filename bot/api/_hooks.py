"""``POST /hooks/{name}``: a generic webhook trigger, signed with a per-hook secret.

The sender signs ``<timestamp>.<raw body>`` with HMAC-SHA256 and sends::

    X-Opsloop-Timestamp: 1732200000            (unix seconds; five minutes' leeway)
    X-Opsloop-Signature: sha256=<hex digest>

A request is identified by what the signature covers: the same timestamp and body again
is a duplicate, whatever else the headers say, so a captured request cannot be replayed
as new work. A sender that re-signs its retries with a fresh timestamp can sign a
delivery id too, and retries carrying it are dropped::

    X-Opsloop-Delivery:  <unique id>            (1-100 of A-Z a-z 0-9 . _ : -)
    X-Opsloop-Signature: sha256-delivery=<hex digest of "<timestamp>.<delivery>.<body>">

An unsigned ``X-Opsloop-Delivery`` is ignored: anyone who saw the request could change it.

The body is a JSON object (nested at most :data:`MAX_NESTING` deep) with ``text`` (the
request) and optionally ``agent``, ``thread`` (a key to continue an earlier webhook
thread) and anything else, which the agent sees as the trigger's payload, marked as data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.api._limits import is_timestamp, json_depth
from bot.app import Opsloop
from bot.events import ConversationRef, Identity, TriggerFired
from bot.plugins import enqueue_item

__all__ = ["MAX_NESTING", "SKEW_SECONDS", "router", "sign", "sign_delivery"]

SKEW_SECONDS = 300
MAX_NESTING = 32
"""How deep arrays and objects in a webhook body may nest."""

_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,100}")

router = APIRouter(tags=["webhooks"])


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def sign_delivery(secret: bytes, timestamp: str, delivery: str, body: bytes) -> str:
    """The signature header value that also covers the delivery id."""
    signed = f"{timestamp}.{delivery}.".encode() + body
    return f"sha256-delivery={hmac.new(secret, signed, hashlib.sha256).hexdigest()}"


def _verify(request: Request, name: str, body: bytes) -> str:
    """Check the signature; return the key that identifies this delivery."""
    secret = request.app.state.settings.webhook_secrets.get(name)
    if secret is None:
        raise HTTPException(404, f"no webhook {name!r}")
    timestamp = request.headers.get("x-opsloop-timestamp", "")
    signature = request.headers.get("x-opsloop-signature", "")
    if not is_timestamp(timestamp) or not signature:
        raise HTTPException(401, "missing X-Opsloop-Timestamp or X-Opsloop-Signature")
    if abs(time.time() - int(timestamp)) > SKEW_SECONDS:
        raise HTTPException(401, "stale timestamp: more than five minutes from our clock")
    if signature.startswith("sha256-delivery="):
        delivery = request.headers.get("x-opsloop-delivery", "")
        if not _DELIVERY.fullmatch(delivery):
            raise HTTPException(401, "a signed delivery needs a valid X-Opsloop-Delivery")
        expected = sign_delivery(secret, timestamp, delivery, body)
        key = f"id:{delivery}"
    else:
        expected = sign(secret, timestamp, body)
        key = "sha256:" + hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise HTTPException(401, "bad signature")
    return key


def _parse(body: bytes) -> dict[str, Any]:
    if json_depth(body, stop_past=MAX_NESTING) > MAX_NESTING:
        raise HTTPException(400, f"the body nests deeper than {MAX_NESTING} levels")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise HTTPException(400, 'the body must be a JSON object with a "text" string')
    return data


@router.post("/hooks/{name}", status_code=202)
async def webhook(name: str, request: Request) -> dict[str, Any]:
    """Start (or continue) a thread from a signed webhook."""
    body = await request.body()
    delivery = _verify(request, name, body)
    data = _parse(body)
    text = data.pop("text")
    agent = data.pop("agent", None)
    thread = data.pop("thread", None)
    if agent is not None and not isinstance(agent, str):
        raise HTTPException(400, '"agent" must be a string')
    if thread is not None and not isinstance(thread, str):
        raise HTTPException(400, '"thread" must be a string')
    if thread is not None and len(thread) > 200:
        raise HTTPException(400, '"thread" must be at most 200 characters')
    event = TriggerFired(
        idempotency_key=f"webhook:{name}:{delivery}",
        conversation=ConversationRef(
            channel="webhook", room=name, thread_key=thread or f"delivery:{delivery}"
        ),
        source=f"webhook:{name}",
        text=text,
        requested_by=Identity(channel="webhook", user_id=name, auth="webhook-signature"),
        payload=data,
        agent=agent,
    )
    ops: Opsloop = request.app.state.ops
    item = await ops.ingest(event)
    if item is None:
        return {"status": "duplicate"}
    await enqueue_item(request.app.state.dispatcher, item.id)
    return {"status": "accepted", "inbox_item": item.id}
