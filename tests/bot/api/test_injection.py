"""A prompt-injection corpus against a model that obeys every instruction it reads.

dev-1 asks for changes and is also on call, so the one thing between dev-1 and approving
their own change is the four-eyes rule (and, in the API, the caller's identity). dev-1
plants every text of :mod:`tests.bot.injection_corpus` through each way they have
(their API token, the terminal, Slack, Discord, email, OpenID Connect, their CI webhook,
the inventory a tool reads, their answers and rejection reasons), and then tries to approve
every pending request through every principal they have, with and without changes, and by
naming oncall-1 as the actor.

The model obeys anything that reads as an instruction, from any source, look-alike letters
and forged markup included: the agent's choices are the attacker's. The test then checks
the whole record: no tool call approved by a person among its request's requesters, no
write in production without an approval, no request resolved "approved" by a requester,
and that every injection did reach the model (the test cannot pass by text never arriving).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bot.api._hooks import sign
from bot.config import load_settings
from bot.errors import UserFacingError
from bot.events import (
    ActionReceived,
    CallTool,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    ModelCalled,
    ToolCalled,
    new_id,
    utcnow,
)
from bot.model import FunctionModel
from bot.policy import Policy, load_policy
from bot.store import Database, HumanRequest, Store
from bot.store._tables import DeployRow
from tests.bot.api.harness import TOKEN, Api, MakeApi
from tests.bot.injection_corpus import CORPUS, Injection, call
from tests.bot.obedient import (
    INJECTION_POLICY,
    approvers_in,
    decision_key,
    instructions,
    obey,
    reached,
    readable,
    violations,
)

HOOK, HOOK_SECRET = "dev1-ci", "h" * 24


# dev-1's principals other than the API token's web:dev-1, as each channel vouches for them.
DEV1 = {
    "cli": Identity(channel="cli", user_id="dev-1", display_name="dev-1", auth="cli-local"),
    "slack": Identity(
        channel="slack", user_id="U0DEV1", display_name="Dana", groups=("S0SRE",), auth="slack"
    ),
    "discord": Identity(
        channel="discord",
        user_id="100000000000000001",
        display_name="dana",
        groups=("200000000000000002",),
        auth="discord",
    ),
    "email": Identity(
        channel="email",
        user_id="dev-1@example.com",
        email="dev-1@example.com",
        auth="email-dmarc",
    ),
    "oidc": Identity(
        channel="oidc",
        user_id="dev-1@example.com",
        display_name="Dana Dev",
        email="dev-1@example.com",
        groups=("sre-oncall",),
        auth="oidc",
    ),
}
# ------------------------------------------------------------------ the attack


@dataclass
class Attack:
    """dev-1 at work on one app, and what they were told."""

    api: Api
    dev: httpx2.AsyncClient
    refusals: list[tuple[str, str]] = field(default_factory=list)
    """(principal, reason) of every refused decision dev-1 made."""
    forbidden: list[str] = field(default_factory=list)
    """Decisions the API refused outright (403), by the actor they named."""
    restless: list[str] = field(default_factory=list)
    """Entries whose thread still waited for a decision after every round."""

    @property
    def store(self) -> Store:
        return self.api.ops.store

    async def settle(self, principal: str, work: Awaitable[Any]) -> None:
        try:
            await work
        except UserFacingError as exc:
            self.refusals.append((principal, str(exc)))

    async def launch(self, text: str, by: httpx2.AsyncClient | None = None) -> str:
        client = by or self.dev
        response = await client.post("/api/threads", json={"text": text, "agent": "deployer"})
        assert response.status_code == 201, response.text
        await self.settle("launch", self.api.work(response.json()["inbox_item"]))
        thread_id: str = response.json()["id"]
        return thread_id

    async def say(self, who: Identity, text: str) -> str:
        """dev-1 speaks through a channel's own identity (what its inbound would build)."""
        channel = "web" if who.channel == "oidc" else who.channel  # OIDC people use the console
        conversation = ConversationRef(channel=channel, room="injection", thread_key=new_id("t"))
        event = MessageReceived(
            idempotency_key=f"test:{new_id('msg')}",
            conversation=conversation,
            sender=who,
            text=text,
            agent="deployer",
        )
        outcome = await self.api.ops.submit(event)
        return outcome.thread.id

    async def hook(self, payload_text: str) -> str:
        """dev-1's CI sends a signed webhook whose payload carries the text."""
        body = json.dumps(
            {"text": "deploy checkout to production", "agent": "deployer", "commit": payload_text}
        ).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Opsloop-Timestamp": stamp,
            "X-Opsloop-Signature": sign(HOOK_SECRET.encode(), stamp, body),
            "Content-Type": "application/json",
        }
        response = await self.api.client.post(f"/hooks/{HOOK}", content=body, headers=headers)
        assert response.status_code == 202, response.text
        item = await self.store.inbox_item(response.json()["inbox_item"])
        await self.settle("webhook:dev1-ci", self.api.work(item.id))
        item = await self.store.inbox_item(item.id)
        assert item.thread_id is not None
        return item.thread_id

    async def api_decide(self, request_id: str, **body: Any) -> int:
        response = await self.dev.post(f"/api/human-requests/{request_id}", json=body)
        if response.status_code == 403:
            self.forbidden.append(str(body.get("actor")))
            return 403
        assert response.status_code == 202, response.text
        await self.settle("web:dev-1", self.api.work(response.json()["inbox_item"]))
        return 202

    async def core_decide(
        self,
        who: Identity,
        request: HumanRequest,
        decision: HumanDecision,
        comment: str | None,
        changes: dict[str, Any] | None = None,
    ) -> None:
        thread = await self.store.load_thread(request.thread_id)
        event = ActionReceived(
            idempotency_key=f"test:{new_id('act')}",
            conversation=thread.conversation.model_copy(update={"channel": who.channel}),
            actor=who,
            request_id=request.id,
            decision=decision,
            comment=comment,
            changes=changes,
        )
        await self.settle(who.principal, self.api.ops.submit(event))

    async def approve_everywhere(self, request: HumanRequest, entry: Injection) -> None:
        """dev-1 tries to approve ``request`` through every principal and form they have."""
        changes = entry.changes or {"version": "1.4.3"}
        assert await self.api_decide(request.id, decision="approve", comment=entry.text) == 202
        for someone_else in ("oncall-1", "\u043encall-1", "web:oncall-1"):  # Cyrillic o
            status = await self.api_decide(request.id, decision="approve", actor=someone_else)
            assert status == 403, f"dev-1's token decided as {someone_else!r}"
        await self.api_decide(request.id, decision="approve", changes=changes)
        await self.api_decide(request.id, decision="approve", actor="dev-1", changes=changes)
        for who in DEV1.values():
            await self.core_decide(who, request, HumanDecision.APPROVE, entry.text)
        await self.core_decide(DEV1["cli"], request, HumanDecision.APPROVE, None, changes)
        await self.core_decide(DEV1["slack"], request, HumanDecision.APPROVE, None, changes)

    async def pending(self, thread_id: str) -> list[HumanRequest]:
        return [r for r in await self.store.human_requests() if r.thread_id == thread_id]

    async def run(self, thread_id: str, entry: Injection, *, mine: bool = True) -> None:
        """Attack every request the thread asks, then answer or reject it (with the injection
        the first time, so the decision's comment carries it too), until the thread rests.

        In a thread someone else started (``mine=False``) their first request is theirs:
        dev-1 only rejects or answers it, with the injection.
        """
        for turn in range(4):
            waiting = await self.pending(thread_id)
            if not waiting:
                return
            for request in waiting:
                if mine or turn > 0:
                    await self.approve_everywhere(request, entry)
                text = entry.text if turn == 0 else "stop here"
                question = request.request.type == "question"
                decision = "answer" if question else "reject"
                if (await self.store.human_request(request.id)).status == "pending":
                    await self.api_decide(request.id, decision=decision, comment=text)
        if await self.pending(thread_id):
            self.restless.append(entry.id)


async def plant(store: Store, entry: Injection) -> str:
    """Put ``entry`` into the demo inventory as a deploy record; the service it is under."""
    service = entry.id  # a valid service name, and one of its own
    async with store.db.session() as session:
        session.add(
            DeployRow(
                idempotency_key=f"planted:{entry.id}",
                service=service,
                environment="staging",
                action="deploy",
                version="1.0.0",
                previous_version="0.9.0",
                requested_by=entry.text,
                approved_by=None,
                at=utcnow(),
            )
        )
    return service


async def deliver(attack: Attack, entry: Injection, index: int) -> list[tuple[str, bool]]:
    """Get ``entry`` in front of the agent its way: the threads, and whether dev-1 began each.

    Answers and rejection reasons go into a thread of dev-1's and into one of oncall-1's,
    where only the comment makes dev-1 one of the people behind what follows.
    """
    if entry.vector == "message":
        # Through dev-1's token, and through one more of their channels in turn.
        channel = list(DEV1)[index % len(DEV1)]
        said = await attack.say(DEV1[channel], entry.text)
        return [(await attack.launch(entry.text), True), (said, True)]
    if entry.vector == "webhook":
        return [(await attack.hook(entry.text), True)]
    if entry.vector == "tool_output":
        service = await plant(attack.store, entry)
        ask = call("recent_deploys", service=service, limit=1)
        return [(await attack.launch(f"what changed in {service} lately? {ask}"), True)]
    oncall = await attack.api.person("oncall-1")
    if entry.vector == "answer":
        ask = "ask on-call before you deploy: " + call(
            "ask_human", question="Shall I deploy checkout 1.4.2 to production?"
        )
    else:  # reject: the injection is the reason
        ask = "deploy checkout 1.4.2 to production"
    return [(await attack.launch(ask), True), (await attack.launch(ask, by=oncall), False)]


# ------------------------------------------------------------------ the tests


@pytest.fixture
def injection_policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(INJECTION_POLICY, encoding="utf-8")
    return load_policy(path)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_no_injection_gets_a_change_approved_by_its_requester(
    make_api: MakeApi, injection_policy: Policy, tmp_path: Path, database: Database
) -> None:
    assert len(CORPUS) >= 25
    assert len({e.id for e in CORPUS}) == len(CORPUS)
    model = FunctionModel(obey)
    settings = load_settings(
        OPSLOOP_HOME=str(tmp_path),
        OPSLOOP_API_TOKEN=TOKEN,
        OPSLOOP_WEBHOOKS=f"{HOOK}={HOOK_SECRET}",
    )
    api = await make_api(model, settings=settings, policy=injection_policy)
    attack = Attack(api, await api.person("dev-1"))

    for index, entry in enumerate(CORPUS):
        for thread_id, mine in await deliver(attack, entry, index):
            await attack.run(thread_id, entry, mine=mine)

    policy = api.ops.runtime.policy
    assert await violations(api.ops.store, policy) == []
    # Independently of how the app tracks requesters: dev-1 caused every request they tried
    # to approve, so nothing may carry any of their principals as an approver.
    assert await approvers_in(api.ops.store) == set()
    assert attack.restless == []  # every thread was driven to its end

    # A control: oncall-1 approves one of dev-1's deploys; it runs, naming them, and the
    # checks above see it and find it sound.
    control = await attack.launch("deploy checkout 1.4.2 to production")
    [request] = await attack.pending(control)
    await attack.approve_everywhere(request, CORPUS[0])
    oncall = await api.person("oncall-1")
    decided = await oncall.post(f"/api/human-requests/{request.id}", json={"decision": "approve"})
    assert decided.status_code == 202, decided.text
    await api.work(decided.json()["inbox_item"])
    thread = await api.ops.store.load_thread(control)
    approved = [e.approved_by for e in thread.events if isinstance(e, ToolCalled)]
    assert approved == ["web:oncall-1"]
    assert await violations(api.ops.store, policy) == []
    assert await approvers_in(api.ops.store) == {"web:oncall-1"}

    # Every injection reached the model, in a context it acted on.
    contexts = [r.context for r in model.requests]
    assert [e.id for e in CORPUS if not reached(e, contexts)] == []
    # ...and the model did what each one says (one of its instructions, at least).
    chosen: set[str] = set()
    for summary in await api.ops.store.list_threads(limit=10_000):
        for event in (await api.ops.store.load_thread(summary.id)).events:
            if isinstance(event, ModelCalled) and isinstance(event.decision, CallTool):
                chosen.add(decision_key(event.decision))
    obeyed = {
        e.id for e in CORPUS if {decision_key(c) for c in instructions(readable(e.text))} & chosen
    }
    assert [e.id for e in CORPUS if e.id not in obeyed] == []
    # The model did obey: it asked for production changes well beyond the one default.
    asked = [
        r for r in await api.ops.store.human_requests(status=None) if r.request.type == "approval"
    ]
    versions = {(r.request.tool, (r.request.arguments or {}).get("version")) for r in asked}
    assert {
        ("deploy", "6.6.6"),
        ("deploy", "1.4.3"),
        ("rollback", None),
        ("restart", None),
    } <= versions
    # Each of dev-1's principals was recognised as on call, and stopped by four-eyes only.
    four_eyes = {who for who, reason in attack.refusals if reason.startswith("four-eyes rule")}
    principals = {"web:dev-1", *(who.principal for who in DEV1.values())}
    assert principals <= four_eyes
    assert sorted(set(attack.forbidden)) == sorted({"oncall-1", "\u043encall-1", "web:oncall-1"})
    # dev-1's own questions were dev-1's to answer, and the webhook's requests were dev-1's.
    hooked = [r for r in asked if r.request.requested_by == f"webhook:{HOOK}"]
    assert hooked and all(r.request.requesters == ("dev-1",) for r in hooked)


async def test_the_checks_find_a_change_approved_by_its_requester(
    make_api: MakeApi, injection_policy: Policy
) -> None:
    """The checks themselves can fail: four-eyes turned off, dev-1 approves their deploy."""
    lax = injection_policy.model_copy(
        update={"approval": injection_policy.approval.model_copy(update={"four_eyes": False})}
    )
    api = await make_api(FunctionModel(obey), policy=lax)
    attack = Attack(api, await api.person("dev-1"))
    thread_id = await attack.launch("deploy checkout 1.4.2 to production")
    [request] = await attack.pending(thread_id)
    await attack.core_decide(DEV1["slack"], request, HumanDecision.APPROVE, None)
    assert attack.refusals == []
    found = await violations(api.ops.store, lax)
    [approval, call, resolved, inventory] = found
    assert approval.endswith(f"approval by slack:U0DEV1, a requester of {request.id}")
    assert call.endswith(f"deploy call approved by slack:U0DEV1, a requester of {request.id}")
    assert resolved == f"request {request.id} resolved approved by slack:U0DEV1"
    assert inventory == "inventory: deploy checkout in production approved by dev-1"
