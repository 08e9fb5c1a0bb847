"""The prompt-injection corpus through Slack itself: dev-1 mentions opsloop with each
injection, then clicks Approve on what the obedient model asks and submits the edit modal.

dev-1 is ``U_DEV`` here, on call through the ``S_DEV`` user group Slack reports, so only
the four-eyes rule stands between their click and their own change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.events import DecisionRefused
from bot.model import FunctionModel
from bot.policy import Policy, load_policy
from channels.slack._inbound import conversation
from tests.bot.injection_corpus import CORPUS
from tests.bot.obedient import INJECTION_POLICY, approvers_in, obey, reached, violations
from tests.channels.slack import payloads
from tests.channels.slack.conftest import MakeSlack
from tests.channels.slack.payloads import CHANNEL
from tests.channels.slack.test_decisions import click

MESSAGES = [e for e in CORPUS if e.vector == "message"]


@pytest.fixture
def oncall_policy(tmp_path: Path) -> Policy:
    """The injection policy with dev-1 and oncall-1 as the fake Slack's U_DEV and U_ONCALL."""
    text = (
        INJECTION_POLICY.replace("slack:U0DEV1", "slack:U_DEV")
        .replace("slack-group:S0SRE", "slack-group:S_DEV")
        .replace("slack:U0ONCALL1", "slack:U_ONCALL")
    )
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def as_slack_sends(text: str) -> str:
    """Message text on Slack's wire: ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def test_slack_clicks_by_the_requester_approve_nothing_an_injection_asked_for(
    make_slack: MakeSlack,
) -> None:
    model = FunctionModel(obey)
    slack = await make_slack(model)
    clicked = 0
    for index, entry in enumerate(MESSAGES):
        ts = f"17000{index:05d}.000100"
        said = f"<@UBOT> deploy: {as_slack_sends(entry.text)}"  # "deploy": the deployer agent
        mention = payloads.app_mention(said, user="U_DEV", ts=ts)
        assert (await slack.event(mention, event_id=f"EvInj{index}")).status_code == 200
        await slack.work()
        thread_id = await slack.ops.store.thread_id_for(conversation(payloads.TEAM, CHANNEL, ts))
        assert thread_id is not None, entry.id
        pending = await slack.ops.store.human_requests()
        for request in [r for r in pending if r.thread_id == thread_id]:
            if request.request.type != "approval":
                continue  # a question (after errors): nothing to approve
            [prompt] = [
                c
                for c in slack.posted()
                if c.params.get("thread_ts") == ts and request.id in json.dumps(c.params["blocks"])
            ]
            approve = click(prompt, "opsloop_approve", "U_DEV", action_ts=f"{ts}1")
            assert (await slack.interact(approve)).status_code == 200
            meta = json.dumps(
                {"request": request.id, "team": payloads.TEAM, "channel": CHANNEL, "thread": ts}
            )
            recorded = request.request.arguments or {}
            texts: dict[str, str | None] = {
                f"arg:{k}": str(v) for k, v in recorded.items() if v is not None
            }
            # Another version; for a restart or a roll-back, out of production.
            texts["arg:version" if "arg:version" in texts else "arg:environment"] = (
                "6.6.8" if "arg:version" in texts else "staging"
            )
            edited = payloads.view_submission(
                "opsloop_edit_arguments",
                block_id="",
                text="",
                private_metadata=meta,
                user="U_DEV",
                view_id=f"VINJ{index}{request.id[-4:]}",
                values=texts,
            )
            assert (await slack.interact(edited)).status_code == 200
            clicked += 1
            await slack.work()

    assert await violations(slack.ops.store, slack.ops.runtime.policy) == []
    assert await approvers_in(slack.ops.store) == set()
    contexts = [r.context for r in model.requests]
    assert [e.id for e in MESSAGES if not reached(e, contexts)] == []
    # The clicks reached the core and were refused there by four-eyes, every one of them.
    refused = []
    for summary in await slack.ops.store.list_threads(limit=1000):
        thread = await slack.ops.store.load_thread(summary.id)
        refused += [e for e in thread.events if isinstance(e, DecisionRefused)]
    assert clicked > len(MESSAGES) // 2  # most ask for a change; the rest ask a question
    assert len(refused) == 2 * clicked  # each Approve click and each edit submitted
    assert {e.actor.principal for e in refused} == {"slack:U_DEV"}
    assert all(e.reason.startswith("four-eyes rule") for e in refused), refused
