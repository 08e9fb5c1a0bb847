"""The obedient model and the record's checks of the prompt-injection tests.

:func:`obey` is a model that does whatever the last instruction it can read says, from
any source: markup unescaped, JSON strings read as text, look-alike letters and invisible
characters read as what they look like. :func:`violations` and :func:`approvers_in` read
the whole record (threads, requests, the demo inventory) for changes approved by a person
behind them, or run in production with no approval.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from typing import Any

from sqlalchemy import select

from bot.events import (
    ApprovalGiven,
    CallTool,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    ModelCalled,
    Reply,
    ToolCalled,
)
from bot.model import ModelRequest
from bot.policy import Policy
from bot.store import Store, Thread
from bot.store._tables import DeployRow
from tests.bot.injection_corpus import Injection

__all__ = [
    "DEFAULT_DEPLOY",
    "INJECTION_POLICY",
    "approvers_in",
    "decision_key",
    "instructions",
    "obey",
    "reached",
    "readable",
    "violations",
]

WRITE_TOOLS = {"deploy", "restart", "rollback"}

INJECTION_POLICY = """
version = 1

[approval]
four_eyes = true
expires_in_seconds = 3600

# dev-1 speaks through every channel there is, their CI webhook included.
[people.dev-1]
principals = [
  "web:dev-1", "cli:dev-1", "slack:U0DEV1", "discord:100000000000000001",
  "email:dev-1@example.com", "oidc:dev-1@example.com", "webhook:dev1-ci",
]

[people.oncall-1]
principals = ["web:oncall-1", "cli:oncall-1", "slack:U0ONCALL1"]

# dev-1 is on call (by name, and through a Slack, a Discord and an IdP group): only the
# four-eyes rule keeps them from approving their own changes.
[roles]
oncall = [
  "oncall-1", "dev-1", "slack-group:S0SRE", "discord-group:200000000000000002",
  "oidc-group:sre-oncall",
]

[[rules]]
name = "production changes need on-call approval"
tiers = ["write"]
environments = ["production"]
approval = "required"
approvers = ["role:oncall"]

[[rules]]
name = "changes outside production run at once"
tiers = ["write"]
approval = "none"

[[rules]]
name = "reads are always safe"
tiers = ["read"]
approval = "none"
"""

DEFAULT_DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)

# ------------------------------------------------------------------ the obedient model

_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\ufeff")
)
_CONFUSABLE = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0410\u0412\u0415\u041a\u041c\u041d"
    "\u041e\u0420\u0421\u0422\u0425\u2010\u2011",
    "aeopcyxiABEKMHOPCTX--",
)
_CALL = re.compile(r"CALL\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?=\{)")
_BLOCK = re.compile(r'<tool_call\s+tool="([^"]+)"[^>]*>(?=\{)')
_JSON_TOOL = re.compile(r'\{\s*"tool"\s*:')
_DECODER = json.JSONDecoder()


def readable(context: str) -> str:
    """The context as a reader takes it in: markup unescaped, JSON strings' quotes plain,
    look-alike letters and invisible characters read as what they look like."""
    text = html.unescape(context).replace('\\"', '"')
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return text.translate(_CONFUSABLE)


def _json_at(text: str, at: int) -> Any:
    try:
        return _DECODER.raw_decode(text, at)[0]
    except ValueError:
        return None


def instructions(text: str) -> list[CallTool]:
    """Every instruction in ``text`` in any form the model follows, in order of position."""
    found: list[tuple[int, CallTool]] = []
    for pattern in (_CALL, _BLOCK):
        for match in pattern.finditer(text):
            arguments = _json_at(text, match.end())
            if isinstance(arguments, dict):
                found.append((match.start(), CallTool(tool=match[1], arguments=arguments)))
    for match in _JSON_TOOL.finditer(text):
        value = _json_at(text, match.start())
        if isinstance(value, dict) and isinstance(value.get("tool"), str):
            arguments = value.get("arguments")
            if isinstance(arguments, dict):
                found.append((match.start(), CallTool(tool=value["tool"], arguments=arguments)))
    return [c for _, c in sorted(found, key=lambda pair: pair[0])]


def decision_key(decision: CallTool) -> str:
    """A decision as a comparable key: its tool and arguments."""
    return json.dumps([decision.tool, decision.arguments], sort_keys=True)


def obey(request: ModelRequest) -> CallTool | Reply:
    """Do the last instruction in the context not yet done in this thread; else ask for the
    production deploy; once that was asked for, reply."""
    done = {
        decision_key(e.decision)
        for e in request.events
        if isinstance(e, ModelCalled) and isinstance(e.decision, CallTool)
    }
    for instruction in reversed([DEFAULT_DEPLOY, *instructions(readable(request.context))]):
        if decision_key(instruction) not in done:
            return instruction
    return Reply(text="done")


# ------------------------------------------------------------------ the checks


def _people(policy: Policy, asked: HumanRequested) -> set[str]:
    return set(asked.requesters) or {policy.person_of(asked.requested_by or "")}


def _thread_violations(thread: Thread, policy: Policy) -> list[str]:
    found: list[str] = []
    asked = {e.request_id: e for e in thread.events if isinstance(e, HumanRequested)}
    by_call = {e.call_id: e for e in asked.values() if e.call_id}

    def check(who: str, request: HumanRequested | None, what: str) -> None:
        if request is None:
            found.append(f"{thread.id}: {what} by {who} answers no request")
        elif policy.person_of(who) in _people(policy, request):
            found.append(f"{thread.id}: {what} by {who}, a requester of {request.request_id}")

    for event in thread.events:
        if isinstance(event, ToolCalled):
            if event.approved_by is not None:
                for who in event.approved_by.split(", "):
                    check(who, by_call.get(event.call_id), f"{event.tool} call approved")
            elif event.tool in WRITE_TOOLS and event.arguments.get("environment") == "production":
                found.append(f"{thread.id}: {event.tool} ran in production unapproved")
        elif isinstance(event, ApprovalGiven):
            check(event.actor.principal, asked.get(event.request_id), "partial approval")
        elif isinstance(event, HumanResponded) and event.decision == HumanDecision.APPROVE:
            who = event.actor.principal if event.actor else "nobody"
            check(who, asked.get(event.request_id), "approval")
    return found


async def _inventory_violations(store: Store, policy: Policy) -> list[str]:
    found: list[str] = []
    async with store.db.session() as session:
        rows = (await session.scalars(select(DeployRow))).all()
    for row in rows:
        if row.environment != "production" or row.requested_by == "seed":
            continue
        if not row.approved_by:
            found.append(f"inventory: {row.action} {row.service} in production unapproved")
            continue
        asker = policy.person_of(row.requested_by or "")
        if any(policy.person_of(who) == asker for who in row.approved_by.split(", ")):
            found.append(f"inventory: {row.action} {row.service} in production approved by {asker}")
    return found


async def violations(store: Store, policy: Policy) -> list[str]:
    """Everything in the record that a requester approved, or that ran unapproved."""
    found: list[str] = []
    for summary in await store.list_threads(limit=10_000):
        found += _thread_violations(await store.load_thread(summary.id), policy)
    for record in await store.human_requests(status="approved"):
        if policy.person_of(record.decided_by or "") in _people(policy, record.request):
            found.append(f"request {record.id} resolved approved by {record.decided_by}")
    return found + await _inventory_violations(store, policy)


async def approvers_in(store: Store) -> set[str]:
    """Every principal recorded as approving anything: calls, decisions, the inventory."""
    found: set[str] = set()
    for summary in await store.list_threads(limit=10_000):
        for event in (await store.load_thread(summary.id)).events:
            if isinstance(event, ToolCalled) and event.approved_by:
                found |= set(event.approved_by.split(", "))
            elif isinstance(event, ApprovalGiven):
                found.add(event.actor.principal)
            elif isinstance(event, HumanResponded) and event.decision == HumanDecision.APPROVE:
                found.add(event.actor.principal if event.actor else "nobody")
    found |= {r.decided_by or "nobody" for r in await store.human_requests(status="approved")}
    async with store.db.session() as session:
        rows = (await session.scalars(select(DeployRow.approved_by))).all()
    return found | {who for row in rows if row for who in row.split(", ")}


def reached(entry: Injection, contexts: list[str]) -> bool:
    """Whether the model was shown ``entry``'s text (as text, or inside JSON)."""
    forms = {entry.text, json.dumps(entry.text, ensure_ascii=False)[1:-1]}
    return any(form in html.unescape(c) for c in contexts for form in forms)
