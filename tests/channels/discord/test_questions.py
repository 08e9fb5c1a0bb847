"""ask_human on Discord: a question's options are buttons; "Other answer…" opens a modal."""

from __future__ import annotations

import pytest

from bot.events import CallTool, HumanResponded, Reply
from bot.model.testing import ScriptedModel
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.support import DEV, EVE, Harness, buttons, settled, submit

LONG_OPTION = ("production, but only after the 16:00 change freeze is lifted " * 2).strip()


@pytest.fixture
def model() -> ScriptedModel:
    """Asks which environment (the second option too long for a button), then asks an open
    question, then is done."""
    return ScriptedModel(
        [
            CallTool(
                tool="ask_human",
                arguments={"question": "Which environment?", "options": ["staging", LONG_OPTION]},
            ),
            CallTool(tool="ask_human", arguments={"question": "Anything else?"}),
            Reply(text="Done."),
        ]
    )


async def test_a_question_offers_its_options_and_any_answer(
    fake: FakeDiscord, harness: Harness
) -> None:
    question = await harness.prompted("restart the thing")

    rid, content = question.request.id, question.message["content"]
    assert [(b["label"], b["custom_id"]) for b in buttons(question.message)] == [
        ("staging", f"opsloop:answer:{rid}:0"),
        (LONG_OPTION[:79] + "…", f"opsloop:answer:{rid}:1"),
        ("Other answer…", f"opsloop:answer:{rid}"),
    ]
    assert "Which environment?" in content
    assert f"2. {LONG_OPTION}" in content  # a cut label is shown in full

    # EVE is neither the requester nor on call; DEV asked, so DEV may answer.
    refused = await harness.press(question, "answer", 1, by=EVE)
    answer = await harness.press(question, "answer", 1, by=DEV)
    await settled()

    assert "may not decide" in fake.followups(refused)[0]["content"]
    assert fake.followups(answer)[0]["content"].startswith("✅ Answer recorded")
    [responded] = [e for e in await harness.log(question.request) if isinstance(e, HumanResponded)]
    assert responded.comment == LONG_OPTION  # the option's full text, not the label
    assert f"💬 **Answered** by <@{DEV}>" in fake.messages[question.message["id"]]["content"]

    # The follow-up question has no options: one button, which asks for the text.
    follow = await harness.prompt(question.client, question.thread, besides=question)
    modal = await harness.open_modal(follow, "answer", by=DEV)
    assert modal["type"] == 9 and modal["data"]["title"] == "Your answer"
    typed = submit(fake, modal["data"], follow.message["id"], "also flush the cache", by=DEV)
    await harness.ingest(question.client, "INTERACTION_CREATE", typed)
    await harness.settle()

    log = await harness.log(question.request)
    assert [e.comment for e in log if isinstance(e, HumanResponded)][-1] == "also flush the cache"
    assert fake.posted_in(question.thread)[-1]["content"] == "Done."
