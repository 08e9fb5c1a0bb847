"""One approval of several, on Discord: the request message says who and who is still needed."""

from __future__ import annotations

from bot.app import Opsloop
from bot.events import ApprovalGiven, Identity
from bot.outbound import RequestPrompt, outbound_for
from channels.discord import DiscordSender
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import CHANNEL_ID
from tests.channels.discord.support import ALICE, buttons
from tests.channels.discord.test_sender import approval, asked_in, decide, deliver, queue

ALICE_ID = Identity(channel="discord", user_id=ALICE, display_name="Alice")


async def test_a_partial_approval_edits_the_request_and_keeps_its_buttons(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    key, where = asked_in(fake, CHANNEL_ID, "deploy", thread_name="deploy")
    asked = approval().model_copy(update={"min_approvals": 2})
    thread_id = await queue(ops, where, [asked], [RequestPrompt(conversation=where, request=asked)])
    await deliver(ops, sender, thread_id)
    [prompt] = fake.posted_in(key)

    given = ApprovalGiven(
        request_id=asked.request_id,
        actor=ALICE_ID,
        approved_by=(ALICE_ID.principal,),
        still_needed=("1 more of role:oncall",),
    )
    seq = len((await ops.store.load_thread(thread_id)).events)
    await ops.store.append(
        thread_id, expected_seq=seq, events=[given], outbound=outbound_for(where, [given])
    )
    assert await deliver(ops, sender, thread_id) is None

    edited = fake.messages[prompt["id"]]
    assert f"Approved by <@{ALICE}> · still needed: 1 more of role:oncall" in edited["content"]
    assert "Approve deploy?" in edited["content"]
    assert buttons(edited) and not any(b["disabled"] for b in buttons(edited))
    assert len(fake.posted_in(key)) == 1  # edited in place, nothing new posted

    # Once decided, the outcome replaces the progress and the buttons go.
    await decide(ops, thread_id, where, asked, Identity(channel="discord", user_id="2"))
    assert await deliver(ops, sender, thread_id) is None
    edited = fake.messages[prompt["id"]]
    assert "✅ **Approved**" in edited["content"] and "still needed" not in edited["content"]
    assert all(b["disabled"] for b in buttons(edited))
