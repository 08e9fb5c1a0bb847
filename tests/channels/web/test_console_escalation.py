"""The console shows escalation steps in a thread's timeline."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from bot.escalation import escalate_requests
from bot.events import utcnow
from bot.policy import ApprovalRule, Policy
from tests.channels.web import test_console as harness
from tests.channels.web.test_console import Console

# The console harness's fixtures, used here by name.
console_settings = harness.console_settings
make_console = harness.make_console
console = harness.console


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """The default policy, its production rule escalating to oncall-2 after 15 minutes."""
    roles = {**policy.roles, "secondary": ("oncall-2",)}
    rule = policy.rules[0].model_dump()
    rule.update(escalate_after="15m", escalate_to=("role:secondary",), approvers=("oncall-1",))
    return policy.model_copy(
        update={"roles": roles, "rules": (ApprovalRule(**rule), *policy.rules[1:])}
    )


async def test_the_timeline_shows_each_escalation_step(console: Console) -> None:
    await console.login()
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    later = utcnow() + timedelta(minutes=16)
    console.ops.runtime = dataclasses.replace(console.ops.runtime, clock=lambda: later)
    [request_id] = await escalate_requests(console.ops)

    page = (await console.client.get(f"/threads/{thread_id}")).text
    assert 'class="event kind-request_escalated"' in page
    assert f"<code>{request_id}</code> step 1 to" in page
    assert '<span class="principal">role:secondary</span>' in page
    assert "asked in the console; last step before expiry" in page
    [pending] = (await console.thread(thread_id))["pending_requests"]
    assert (pending["escalation_level"], pending["escalated_to"]) == (1, ["role:secondary"])
