"""Approve with changes by mail: ``APPROVE`` then ``key: value`` lines, up to a blank line."""

from __future__ import annotations

import pytest

from bot.events import HumanResponded, ToolCalled
from channels.email._parse import NotADecision, ReplyDecision, read_decision
from tests.channels.email.conftest import ONCALL
from tests.channels.email.harness import text_of
from tests.channels.email.test_decisions import last_inbox_item, paused_on_deploy, reply


@pytest.mark.parametrize(
    ("text", "changes", "comment"),
    [
        ("APPROVE\nversion: 1.4.3", {"version": "1.4.3"}, None),
        (
            "approve\nversion:1.4.3\nenvironment :  staging\n\nship it",
            {"version": "1.4.3", "environment": "staging"},
            "ship it",
        ),
        ("APPROVE\n\nversion: 1.4.3", None, "version: 1.4.3"),  # below a blank line: a note
        ("APPROVE\nLooks good: ship it", None, "Looks good: ship it"),  # not a key: a note
    ],
)
def test_key_value_lines_under_a_bare_approve_are_changes(text, changes, comment):
    assert read_decision(text) == ReplyDecision("approve", comment, changes)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("APPROVE: ok\nversion: 1.4.3", "under a bare APPROVE"),
        ("APPROVE\nversion: 1.4.3\nand restart it", "is not a 'key: value' line"),
        ("APPROVE\nversion: 1.4.3\nversion: 1.4.4", "changed twice"),
        ("APPROVE\nversion: 1.4.3\n\nno wait, reject it", "hesitates"),
    ],
)
def test_a_change_block_that_is_not_exactly_that_decides_nothing(text, why):
    reading = read_decision(text)
    assert isinstance(reading, NotADecision) and why in reading.why


async def test_a_reply_with_changes_runs_the_edited_call(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    assert "version: 1.4.3" in text_of(ask)  # the approval mail shows the form
    await reply(mail, first_id, ask, "APPROVE\nversion: 1.4.3\n\nhotfix for the checkout bug")
    decided = await mail.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", f"email:{ONCALL}")
    thread = await mail.ops.store.load_thread(request.thread_id)
    [call] = [e for e in thread.events if isinstance(e, ToolCalled)]
    assert call.arguments["version"] == "1.4.3"
    [response] = [e for e in thread.events if isinstance(e, HumanResponded)]
    assert response.changes == {"version": "1.4.3"}
    assert response.comment == "hotfix for the checkout bug"
    assert any("With changes: version → 1.4.3." in text_of(m) for m in mail.sent)


async def test_a_reply_changing_what_the_call_does_not_have_decides_nothing(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    processed = len(mail.dispatcher.of("process"))
    await reply(mail, first_id, ask, "APPROVE\nreplicas: 3")
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    assert len(mail.dispatcher.of("process")) == processed
    item = await last_inbox_item(mail)
    assert item.status == "failed" and "replicas: not an argument" in item.error
    how_to = text_of((await mail.sent_to(ONCALL, 2))[-1])
    assert "To approve with changes" in how_to and "  version: 1.4.3" in how_to


async def test_an_invalid_value_is_refused_by_the_core_and_nothing_runs(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    await reply(mail, first_id, ask, "APPROVE\nversion: 1 4 3")
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    thread = await mail.ops.store.load_thread(request.thread_id)
    assert not any(isinstance(e, ToolCalled) for e in thread.events)
    assert (await last_inbox_item(mail)).error.startswith("the changes are not valid")
