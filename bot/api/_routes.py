"""The lifecycle API: launch, inspect, message, pause, resume and answer threads; list tools."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from bot.api._auth import Caller, need, require_auth, speaker
from bot.api._idempotency import accept, event_key
from bot.app import Opsloop
from bot.events import (
    ActionReceived,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    ThreadStatus,
    event_adapter,
    new_id,
)
from bot.human import progress_json
from bot.plugins import Dispatcher, enqueue, enqueue_item
from bot.policy import Policy
from bot.policy_check import check_runtime
from bot.store import MAX_PAGE, HumanRequest, InboxItem, Thread, ThreadSummary, thread_page

__all__ = ["UserId", "router", "web_identity"]

router = APIRouter(prefix="/api", dependencies=[Depends(require_auth)], tags=["threads"])

Reader = Annotated[Caller, Depends(need("read"))]
Actor = Annotated[Caller, Depends(need("act"))]
Decider = Annotated[Caller, Depends(need("decide"))]

UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f\x7f]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LaunchThread(_Body):
    """Start a thread."""

    text: str = Field(min_length=1, max_length=100_000)
    """The request."""
    user: UserId | None = None
    """Who asks: the caller, whom it may name; another web user only with the ``service``
    scope (policy names them ``web:<id>``)."""
    agent: str | None = Field(default=None, max_length=64)
    """An agent by name; the router picks one otherwise."""


class PostMessage(_Body):
    """A follow-up message in a thread."""

    text: str = Field(min_length=1, max_length=100_000)
    """The message."""
    user: UserId | None = None
    """Who writes: the caller (another web user only with the ``service`` scope)."""


class Decide(_Body):
    """A decision on a human request."""

    decision: Literal["approve", "reject", "answer"]
    """What to do."""
    actor: UserId | None = None
    """Who decides: the caller (another web user only with the ``service`` scope)."""
    comment: str | None = Field(default=None, max_length=10_000)
    """The reason (required to reject), the answer, or a note."""
    changes: dict[str, JsonValue] | None = Field(default=None, min_length=1, max_length=50)
    """With ``approve``: argument overrides; the edited call is what runs."""

    @model_validator(mode="after")
    def _changes_only_to_approve(self) -> Decide:
        if self.changes is not None and self.decision != "approve":
            raise ValueError("changes go only with decision 'approve'")
        return self


class PauseThread(_Body):
    """Pause or resume a thread."""

    actor: UserId | None = None
    """Who does it: the caller (another web user only with the ``service`` scope)."""
    reason: str | None = Field(default=None, max_length=1000)
    """Why."""


def web_identity(user: str, auth: str | None = None) -> Identity:
    """The identity of a person using the API or the console."""
    return Identity(channel="web", user_id=user, display_name=user, auth=auth)


def _ops(request: Request) -> Opsloop:
    ops: Opsloop = request.app.state.ops
    return ops


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def summary_json(thread: ThreadSummary) -> dict[str, Any]:
    """A thread summary as JSON."""
    return thread.model_dump(mode="json")


def thread_json(
    thread: Thread, pending: list[HumanRequest], policy: Policy | None = None
) -> dict[str, Any]:
    """A thread, its events (with sequence numbers), pending requests and total cost."""
    events = [
        {"seq": seq, **event_adapter.dump_python(event, mode="json")}
        for seq, event in enumerate(thread.events, start=1)
    ]
    return {
        **summary_json(thread),
        "events": events,
        "pending_requests": [
            {
                **r.request.model_dump(mode="json"),
                **r.escalation(),
                **(progress_json(policy, r) if policy else {}),
            }
            for r in pending
        ],
        "cost_usd": round(sum(getattr(e, "cost_usd", 0.0) for e in thread.events), 6),
    }


async def _pending(ops: Opsloop, thread_id: str) -> list[HumanRequest]:
    return await ops.store.human_requests(thread_id=thread_id)


async def _hand_on(request: Request, item: InboxItem) -> None:
    if item.status == "pending":  # stored: if the broker is down, the sweeper has it
        await enqueue_item(_dispatcher(request), item.id)


@router.post("/threads", status_code=201)
async def launch(
    body: LaunchThread, request: Request, response: Response, caller: Actor
) -> dict[str, Any]:
    """Start a thread with a message; a worker takes it from here."""
    ops = _ops(request)
    key = event_key(request, "launch")
    thread_key = key.removeprefix("api:") if key else uuid.uuid4().hex
    conversation = ConversationRef(channel="web", room="api", thread_key=thread_key)
    event = MessageReceived(
        idempotency_key=key or f"web:{new_id('msg')}",
        conversation=conversation,
        sender=speaker(caller, body.user),
        text=body.text,
        agent=body.agent,
    )
    item = await accept(ops, event, response)  # validates, then stores it and opens its thread
    thread_id = item.thread_id or await ops.store.open_thread(conversation, title=event.text[:120])
    await _hand_on(request, item)
    return {"id": thread_id, "status": "accepted", "inbox_item": item.id}


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="How many at most on this page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="The previous page's ``next_cursor``: the page after it."),
]


@router.get("/threads")
async def list_threads(
    request: Request,
    _: Reader,
    status: ThreadStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Threads, most recently active first, a page at a time.

    ``next_cursor`` is ``null`` on the last page; pass it as ``cursor`` for the next one.
    """
    page = await thread_page(_ops(request).store.db, limit=limit, status=status, cursor=cursor)
    return {"threads": [summary_json(t) for t in page.items], "next_cursor": page.next_cursor}


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, request: Request, _: Reader) -> dict[str, Any]:
    """One thread: status, events, pending requests, cost."""
    ops = _ops(request)
    thread = await ops.store.load_thread(thread_id)
    return thread_json(thread, await _pending(ops, thread_id), ops.runtime.policy)


@router.post("/threads/{thread_id}/messages", status_code=202)
async def post_message(
    thread_id: str, body: PostMessage, request: Request, response: Response, caller: Actor
) -> dict[str, Any]:
    """Add a message to a thread; a worker takes it from here."""
    sender = speaker(caller, body.user)  # before anything is looked up
    ops = _ops(request)
    thread = await ops.store.load_thread(thread_id)
    key = event_key(request, f"message:{thread_id}")
    event = MessageReceived(
        idempotency_key=key or f"web:{new_id('msg')}",
        conversation=thread.conversation,
        sender=sender,
        text=body.text,
    )
    item = await accept(ops, event, response)
    await _hand_on(request, item)
    return {"id": thread_id, "status": "accepted", "inbox_item": item.id}


@router.post("/threads/{thread_id}/pause")
async def pause(
    thread_id: str, body: PauseThread, request: Request, caller: Actor
) -> dict[str, Any]:
    """Stop the thread taking steps; messages that arrive meanwhile are kept."""
    actor = speaker(caller, body.actor)
    thread = await _ops(request).pause(thread_id, actor, body.reason)
    return summary_json(thread)


@router.post("/threads/{thread_id}/resume")
async def resume(
    thread_id: str, body: PauseThread, request: Request, caller: Actor
) -> dict[str, Any]:
    """Let a paused thread go on."""
    actor = speaker(caller, body.actor)
    thread = await _ops(request).unpause(thread_id, actor)
    if thread.status == ThreadStatus.RUNNING:
        dispatcher = _dispatcher(request)
        await enqueue(lambda: dispatcher.resume(thread_id), what=f"thread {thread_id}")
    return summary_json(thread)


@router.get("/human-requests")
async def list_requests(
    request: Request,
    _: Reader,
    status: Literal["pending", "approved", "rejected", "answered", "expired"] = "pending",
    thread_id: Annotated[str | None, Query(max_length=40)] = None,
    tool: Annotated[str | None, Query(max_length=64)] = None,
    type: Literal["approval", "question"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Human requests with a status, oldest first, a page at a time; filters narrow it.

    ``next_cursor`` is ``null`` on the last page; pass it as ``cursor`` for the next one
    (with the same filters).
    """
    page = await _ops(request).store.request_page(
        limit=limit, cursor=cursor, status=status, thread_id=thread_id, tool=tool, type=type
    )
    policy = _ops(request).runtime.policy
    return {
        "requests": [
            {
                "thread_id": r.thread_id,
                "status": r.status,
                **r.request.model_dump(mode="json"),
                **r.escalation(),
                **progress_json(policy, r),
            }
            for r in page.items
        ],
        "next_cursor": page.next_cursor,
    }


@router.post("/human-requests/{request_id}", status_code=202)
async def decide(
    request_id: str, body: Decide, request: Request, response: Response, caller: Decider
) -> dict[str, Any]:
    """Approve, reject or answer a request. Accepted once; refusals are recorded."""
    actor = speaker(caller, body.actor)  # before anything is looked up
    ops = _ops(request)
    human = await ops.store.human_request(request_id)
    thread = await ops.store.load_thread(human.thread_id)
    key = event_key(request, f"decide:{request_id}")
    event = ActionReceived(
        idempotency_key=key or f"web:{new_id('act')}",
        conversation=thread.conversation,
        actor=actor,
        request_id=request_id,
        decision=HumanDecision(body.decision),
        comment=body.comment,
        changes=body.changes,
    )
    item = await accept(ops, event, response)
    await _hand_on(request, item)
    return {"request_id": request_id, "thread_id": human.thread_id, "inbox_item": item.id}


@router.get("/inbox/{item_id}")
async def inbox_item(
    item_id: Annotated[int, Field(ge=1, le=2**31 - 1)], request: Request, _: Reader
) -> dict[str, Any]:
    """Where one accepted event stands: pending, applied, done or failed (with why)."""
    item = await _ops(request).store.inbox_item(item_id)
    return {
        "id": item.id,
        "status": item.status,
        "thread_id": item.thread_id,
        "error": item.error,
        "kind": item.event.kind,
        "attempts": item.attempts,
    }


@router.get("/tools", tags=["tools"])
async def list_tools(request: Request, _: Reader) -> list[dict[str, Any]]:
    """Every tool in force: source, tier, agents, what it touches, the rules that decide it.

    The same list as ``opsloop tools list --json``.
    """
    report = check_runtime(_ops(request).runtime)
    return [tool.as_json() for tool in report.tools]
