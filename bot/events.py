"""The one event schema: inbound events from channels and the thread's event log.

Every class carries a ``kind`` literal; :data:`Event` is the discriminated union of all of
them and :data:`event_adapter` the one ``TypeAdapter`` used for the database, task payloads
and the API. Two families:

- inbound (:data:`InboundEvent`): what a channel hands to ingest. Each carries an
  ``idempotency_key`` built from the platform's own ids, so a retry is a no-op.
- thread events (:data:`ThreadEvent`): the append-only log that is a thread's only state.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Discriminator, Field, JsonValue, TypeAdapter

from bot.decisions import (
    CallTool,
    Decision,
    Reply,
    Usage,
    decision_adapter,
    new_id,
    utcnow,
)
from bot.decisions import Frozen as _Frozen

__all__ = [
    "ADMIN",
    "ActionReceived",
    "AgentReply",
    "ApprovalGiven",
    "CallTool",
    "ConversationRef",
    "Decision",
    "DecisionRefused",
    "ErrorRaised",
    "Event",
    "HumanDecision",
    "HumanRequested",
    "HumanResponded",
    "Identity",
    "InboundEvent",
    "MessageReceived",
    "ModelCalled",
    "Reply",
    "RequestEscalated",
    "StatusChanged",
    "ThreadEvent",
    "ThreadStatus",
    "ToolCalled",
    "ToolReturned",
    "TriggerFired",
    "Usage",
    "UserMessage",
    "decision_adapter",
    "event_adapter",
    "new_id",
    "utcnow",
]


class ConversationRef(_Frozen):
    """Where a thread lives and where answers go."""

    channel: str
    """The channel adapter's name: ``cli``, ``web``, ``slack``, ``discord``, ``email``…"""
    tenant: str = ""
    """The Slack team, Discord guild or mail domain; empty where there is only one."""
    room: str = ""
    """The Slack or Discord channel id, or the mailbox."""
    thread_key: str
    """The platform's thread: Slack ``thread_ts``, Discord thread id, root Message-ID."""


class Identity(_Frozen):
    """Who spoke or decided: a platform's immutable user id, never a display name."""

    channel: str
    """The channel the id belongs to."""
    user_id: str
    """The platform's immutable user id."""
    display_name: str | None = None
    """How to show the person; never used for authorisation."""
    email: str | None = None
    """A verified email address, where the platform vouches for it."""
    groups: tuple[str, ...] = ()
    """Platform groups the person belongs to (Slack user groups, Discord roles)."""
    auth: str | None = None
    """How this identity was authenticated: ``oidc``, ``token``, ``admin``, ``login-link``,
    ``slack``, ``discord``, ``email-dmarc`` (``email`` when only a trusted server vouched),
    ``cli-local``, ``dev``… ``None`` on events recorded before it was kept."""
    via: str | None = None
    """The integration that speaks for this person (``token:<id>`` of a ``service`` token)."""

    @property
    def principal(self) -> str:
        """The ``channel:user_id`` form that policy files name people by."""
        return f"{self.channel}:{self.user_id}"

    @property
    def label(self) -> str:
        """A human-friendly name for transcripts."""
        return self.display_name or self.user_id

    @property
    def attested_label(self) -> str:
        """The label with how it was authenticated (``oncall-1 · token``), for timelines."""
        how = " · ".join(part for part in (self.auth, self.via and f"via {self.via}") if part)
        return f"{self.label} · {how}" if how else self.label


ADMIN = Identity(channel="admin", user_id="admin", display_name="admin", auth="admin")
"""The shared ``OPSLOOP_API_TOKEN``: a bootstrap credential that speaks for no person.

It decides a request only where the rule's approvers name ``"admin"``, and holds no role.
"""


# ---------------------------------------------------------------- inbound events


class _Inbound(_Frozen):
    idempotency_key: str = Field(min_length=1, max_length=255)
    """Stable key built from the platform's own ids; a second event with it is dropped."""
    conversation: ConversationRef
    """Where the event happened."""
    received_at: datetime = Field(default_factory=utcnow)
    """When opsloop received it."""


class MessageReceived(_Inbound):
    """A person wrote to opsloop: a mention, direct message, command or email."""

    kind: Literal["message"] = "message"
    sender: Identity
    """Who wrote."""
    text: str
    """What they wrote, as plain text."""
    agent: str | None = None
    """An agent the person asked for by name; the router picks one otherwise."""


class HumanDecision(StrEnum):
    """What a person did with a human request."""

    APPROVE = "approve"
    REJECT = "reject"
    ANSWER = "answer"


class ActionReceived(_Inbound):
    """A person answered a human request: a button click, a reply, a link, the CLI."""

    kind: Literal["action"] = "action"
    actor: Identity
    """Who answered."""
    request_id: str
    """The human request answered."""
    decision: HumanDecision
    """Approve, reject or answer."""
    comment: str | None = None
    """The reject reason, the answer to a question, or a note with an approval."""
    changes: dict[str, JsonValue] | None = Field(default=None, max_length=50)
    """With approve only: argument overrides merged onto the recorded call before it runs
    (validated with the tool's model and checked against policy again)."""


class TriggerFired(_Inbound):
    """Something other than a person started work: a webhook, a schedule, an API launch."""

    kind: Literal["trigger"] = "trigger"
    source: str
    """What fired: ``webhook:NAME``, ``schedule:NAME``, ``api``."""
    text: str
    """The request, as the agent should read it."""
    requested_by: Identity
    """Whom the work is done for (the API caller, or the trigger itself)."""
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    """The trigger's own data, shown to the agent."""
    agent: str | None = None
    """The agent to run; the router picks one otherwise."""


# ---------------------------------------------------------------- thread events


class ThreadStatus(StrEnum):
    """Where a thread stands."""

    RUNNING = "running"
    """A step is due or under way."""
    WAITING = "waiting"
    """The agent answered; the thread waits for the next message."""
    PAUSED = "paused"
    """A human request is pending, or an operator paused the thread."""
    FAILED = "failed"
    """The thread stopped on an error it could not recover from."""
    DONE = "done"
    """Closed for good."""


class _ThreadEvent(_Frozen):
    at: datetime = Field(default_factory=utcnow)
    """When the event happened."""


class UserMessage(_ThreadEvent):
    """A person's message, or a trigger's request, in the thread."""

    kind: Literal["user_message"] = "user_message"
    sender: Identity
    """Who wrote."""
    text: str
    """What they wrote."""
    source: str | None = None
    """For triggers: what fired (``webhook:deploys``); ``None`` for a person."""
    payload: dict[str, JsonValue] | None = None
    """For triggers: the trigger's own data, shown to the agent as data, never as orders."""


class ModelCalled(_ThreadEvent):
    """One model call: what was asked, what it cost, what it decided."""

    kind: Literal["model_call"] = "model_call"
    agent: str
    """The agent that asked."""
    provider: str
    """``anthropic``, ``openai``, ``offline``, ``function``, ``scripted``…"""
    model: str
    """The provider's model name."""
    prompt_hash: str
    """sha256 of the prompt template's content, to tie the call to a prompt version."""
    usage: Usage = Usage()
    """Tokens used."""
    cost_usd: float = 0.0
    """What the call cost, from the configured price table."""
    latency_ms: float = 0.0
    """Wall time of the call."""
    decision: Decision | None = None
    """The validated decision; ``None`` when the call failed."""
    error: str | None = None
    """Why the call produced no decision."""


class ToolCalled(_ThreadEvent):
    """A tool is about to run with these exact, validated arguments."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str
    """Ties the call to its result."""
    tool: str
    """The tool's name."""
    arguments: dict[str, JsonValue]
    """The validated arguments."""
    idempotency_key: str
    """``thread:step``; a side-effecting tool never repeats an effect under the same key."""
    approved_by: str | None = None
    """The principal who approved the call, for calls that needed approval."""


class ToolReturned(_ThreadEvent):
    """A tool's result."""

    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    """The call this answers."""
    tool: str
    """The tool's name."""
    output: JsonValue
    """What the tool returned, JSON-shaped."""
    untrusted: bool = False
    """From outside (an MCP server, a runbook's HTTP body): data the model must never obey."""


class ErrorRaised(_ThreadEvent):
    """Something went wrong; the model sees a compact form of it next turn."""

    kind: Literal["error"] = "error"
    source: Literal["model", "validation", "tool", "budget", "policy", "input", "internal"]
    """Where it came from (``internal``: processing itself failed, e.g. a missing prompt)."""
    message: str
    """A short, model-readable description."""
    tool: str | None = None
    """The tool involved, if any."""
    call_id: str | None = None
    """The tool call involved, if any."""


class HumanRequested(_ThreadEvent):
    """The thread needs a person: an approval of an exact tool call, or an answer."""

    kind: Literal["human_request"] = "human_request"
    request_id: str
    """The request's id, as buttons, links and the CLI name it."""
    type: Literal["approval", "question"]
    """An approval of a tool call, or a question."""
    tool: str | None = None
    """For approvals: the tool to run once approved."""
    arguments: dict[str, JsonValue] | None = None
    """For approvals: exactly the arguments that will run."""
    call_id: str | None = None
    """For approvals: the call id the result will carry."""
    question: str
    """What the person is asked, in words."""
    options: tuple[str, ...] = ()
    """For questions: suggested answers (buttons)."""
    approvers: tuple[str, ...] = ()
    """Who may answer: principals (``slack:U123``) and roles (``role:oncall``)."""
    requested_by: str | None = None
    """The principal who spoke last before the request (shown as "requested by")."""
    requesters: tuple[str, ...] = ()
    """Every person whose words led here since the last decision (four-eyes bars them all)."""
    change_key: str | None = None
    """For approvals: the idempotency key the approved call runs under, derived from the
    call and the turn that asked for it, so one change never runs under a second approval."""
    four_eyes: bool = False
    """Whether the requesters are barred from approving."""
    mode: Literal["any", "all"] = "any"
    """For approvals: ``any`` of ``approvers`` may approve, or ``all`` of them must (each
    entry by a different person); from the policy rule."""
    min_approvals: int = 1
    """For approvals: how many different people must approve before the call runs."""
    expires_at: datetime
    """After this the request counts as rejected."""
    escalate_after: str | None = None
    """Undecided this long (``"15m"``), it escalates to the next step of ``escalate_to``."""
    escalate_to: tuple[str, ...] = ()
    """The escalation chain: each step's roles, people or principals become approvers too."""
    notify: tuple[str, ...] = ()
    """Places the request is also posted besides its thread (``slack:#deploys``…)."""


class HumanResponded(_ThreadEvent):
    """A person's accepted answer to a human request (or its expiry)."""

    kind: Literal["human_response"] = "human_response"
    request_id: str
    """The request answered."""
    decision: HumanDecision
    """Approve, reject or answer."""
    actor: Identity | None
    """Who decided; ``None`` when the request expired."""
    comment: str | None = None
    """Reason, answer or note."""
    changes: dict[str, JsonValue] | None = None
    """For an approval with changes: the arguments the approver changed, with their new
    values (the original call stays on the request); what ran is the edited call."""


class ApprovalGiven(_ThreadEvent):
    """A valid approval that is not yet enough: the request stays pending, the thread paused."""

    kind: Literal["approval_given"] = "approval_given"
    request_id: str
    """The request approved."""
    actor: Identity
    """Who approved."""
    comment: str | None = None
    """A note with the approval."""
    approved_by: tuple[str, ...] = ()
    """Every principal that has approved so far, this one last."""
    still_needed: tuple[str, ...] = ()
    """Who must still approve, in words ("1 more of role:oncall", "role:service-owner")."""


class DecisionRefused(_ThreadEvent):
    """A decision attempt that was not accepted, kept for the audit trail."""

    kind: Literal["decision_refused"] = "decision_refused"
    request_id: str
    """The request concerned."""
    actor: Identity
    """Who tried."""
    reason: str
    """Why it was refused."""


class RequestEscalated(_ThreadEvent):
    """Nobody decided in time: the request went to the next step of its escalation chain."""

    kind: Literal["request_escalated"] = "request_escalated"
    request_id: str
    """The request escalated."""
    level: int = Field(ge=1)
    """The step reached: 1 for the first of ``escalate_to``."""
    to: tuple[str, ...]
    """The approver entries added at this step (roles, people, principals)."""
    posted_to: tuple[str, ...] = ()
    """Where the request was posted for them (``slack:U123``, ``slack:#managers``…)."""
    next_at: datetime | None = None
    """When the next step is due, if there is one before the request expires."""


class AgentReply(_ThreadEvent):
    """What the agent said to the person."""

    kind: Literal["agent_reply"] = "agent_reply"
    text: str
    """The reply."""
    agent: str
    """Which agent said it."""


class StatusChanged(_ThreadEvent):
    """The thread moved to a new status."""

    kind: Literal["status"] = "status"
    status: ThreadStatus
    """The new status."""
    reason: str | None = None
    """Why, in a few words."""
    agent: str | None = None
    """The agent now handling the thread, when this change picked one."""


_InboundKinds: TypeAlias = MessageReceived | ActionReceived | TriggerFired
_LogKinds: TypeAlias = (
    UserMessage
    | ModelCalled
    | ToolCalled
    | ToolReturned
    | ErrorRaised
    | HumanRequested
    | HumanResponded
    | ApprovalGiven
    | DecisionRefused
    | RequestEscalated
    | AgentReply
    | StatusChanged
)

InboundEvent: TypeAlias = Annotated[_InboundKinds, Discriminator("kind")]
"""What channels hand to ingest."""

ThreadEvent: TypeAlias = Annotated[_LogKinds, Discriminator("kind")]
"""The entries of a thread's append-only log."""

Event: TypeAlias = Annotated[_InboundKinds | _LogKinds, Discriminator("kind")]
"""Every event opsloop knows."""

event_adapter: TypeAdapter[Any] = TypeAdapter(Event)
"""The one JSON adapter for every event, used by the store, tasks and the API."""
