"""Approve with changes from Discord: a button answered with a modal, whose submission runs."""

from __future__ import annotations

import pytest

from bot.events import ActionReceived, HumanRequested, HumanResponded, ToolCalled, utcnow
from channels.discord._gateway import _edit_modal
from tests.channels.discord.fake_discord import FakeDiscord, _modal_errors
from tests.channels.discord.support import ALICE, DEV, Harness, buttons, feed, settled, submit

DEPLOY = "deploy checkout 1.4.2 to production"


async def test_the_modal_edits_the_call_and_the_edited_call_runs_once(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    rid = prompt.request.id
    assert [(b["label"], b["custom_id"]) for b in buttons(prompt.message)][1] == (
        "Approve with changes…",
        f"opsloop:edit:{rid}",
    )
    modal = await harness.open_modal(prompt, "edit", by=ALICE)
    assert modal["type"] == 9  # the modal is the interaction's one response
    data = modal["data"]
    assert _modal_errors(data) == {}  # the fake took it: a valid modal
    assert (data["custom_id"], data["title"]) == (f"opsloop:edit:{rid}", "Approve with changes")
    fields = {row["components"][0]["custom_id"]: row["components"][0] for row in data["components"]}
    assert {k: f["value"] for k, f in fields.items()} == {
        "arg:service": "checkout",
        "arg:environment": "production",
        "arg:version": "1.4.2",
    }
    assert all(f["type"] == 4 and f["label"] == k[4:] for k, f in fields.items())

    edited = submit(fake, data, prompt.message["id"], "", by=ALICE, values={"arg:version": "1.4.3"})
    item_id = await harness.ingest(prompt.client, "INTERACTION_CREATE", edited)
    event = await harness.inbox(item_id)
    assert isinstance(event, ActionReceived) and event.changes == {"version": "1.4.3"}
    await harness.settle()

    [verdict] = fake.followups(edited)
    assert verdict["flags"] == 64 and verdict["content"].startswith("✅ Approved")
    log = await harness.log(prompt.request)
    runs = [e for e in log if isinstance(e, ToolCalled) and e.tool == "deploy"]
    assert [(r.arguments["version"], r.approved_by) for r in runs] == [
        ("1.4.3", f"discord:{ALICE}")
    ]
    [response] = [e for e in log if isinstance(e, HumanResponded)]
    assert response.changes == {"version": "1.4.3"}
    content = fake.messages[prompt.message["id"]]["content"]
    assert f"✅ **Approved** with changes (version → 1.4.3) by <@{ALICE}>" in content


async def test_invalid_values_are_told_privately_and_nothing_is_stored(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    modal = await harness.open_modal(prompt, "edit", by=ALICE)
    bad = submit(
        fake, modal["data"], prompt.message["id"], "", by=ALICE, values={"arg:version": "1 4 3"}
    )
    same = submit(fake, modal["data"], prompt.message["id"], "", by=ALICE, values={})
    count = len(harness.dispatcher.of("process"))
    for submitted in (bad, same):
        feed(prompt.client, "INTERACTION_CREATE", submitted)
    await settled()
    assert "version: String should match pattern" in fake.followups(bad)[0]["content"]
    assert "nothing was changed" in fake.followups(same)[0]["content"]
    assert len(harness.dispatcher.of("process")) == count
    assert (await harness.ops.store.human_request(prompt.request.id)).status == "pending"


async def test_a_policy_refusal_of_an_edit_is_the_followup(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    modal = await harness.open_modal(prompt, "edit", by=DEV)
    edited = submit(
        fake, modal["data"], prompt.message["id"], "", by=DEV, values={"arg:version": "1.4.3"}
    )
    await harness.ingest(prompt.client, "INTERACTION_CREATE", edited)
    await harness.settle()
    assert fake.followups(edited)[0]["content"].startswith("⛔ Not accepted")
    assert (await harness.ops.store.human_request(prompt.request.id)).status == "pending"


def test_only_the_first_five_arguments_are_editable_and_the_title_says_so() -> None:
    request = HumanRequested(
        request_id="hr_0123456789abcdef",
        type="approval",
        tool="wide",
        arguments={f"a{n}": n for n in range(7)},
        call_id="call_1",
        question="?",
        expires_at=utcnow(),
    )
    data = _edit_modal(request).to_dict()
    assert data["title"] == "Approve with changes (first 5 args)"
    assert [r["components"][0]["custom_id"] for r in data["components"]] == [
        f"arg:a{n}" for n in range(5)
    ]
    assert _modal_errors(data) == {}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"title": "x" * 46}, "data.title"),
        ({"components": []}, "data.components"),
        (
            {"components": [{"type": 1, "components": [{"type": 2, "custom_id": "b"}]}]},
            "data.components.0",
        ),
    ],
)
def test_the_fake_refuses_a_modal_discord_would_refuse(change: dict, problem: str) -> None:
    good = {
        "custom_id": "opsloop:edit:hr_1",
        "title": "Approve with changes",
        "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "arg:v", "label": "v", "style": 1}]}
        ],
    }
    assert _modal_errors(good) == {}
    assert problem in _modal_errors(good | change)
