"""What opsloop's Discord messages say, and how long ones are cut."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.events import HumanDecision, HumanRequested, Identity
from channels.discord._messages import (
    CUSTOM_ID,
    custom_id,
    prompt_text,
    request_components,
    resolution_text,
    split_text,
)

WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Identity(channel="discord", user_id="80351110224678912", display_name="Alice")


def approval(**arguments: object) -> HumanRequested:
    return HumanRequested(
        request_id="hr_5f1c0e9a2b7d4e6f",
        type="approval",
        tool="deploy",
        call_id="call_1",
        arguments=dict(arguments),
        question="Approve deploy(checkout)? (production)",
        approvers=("role:oncall", "discord:80351110224678912"),
        expires_at=WHEN,
    )


@given(st.text(alphabet=st.sampled_from("ab \n`é"), max_size=7000), st.integers(20, 2000))
def test_pieces_fit_the_limit_and_lose_nothing_but_the_whitespace_cut_at(
    text: str, limit: int
) -> None:
    pieces = split_text(text, limit)
    assert all(len(p) <= limit for p in pieces)
    if "```" not in text:
        assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)
    else:
        assert all(p.count("```") % 2 == 0 for p in pieces)


def test_a_short_text_is_one_piece() -> None:
    assert split_text("all good") == ["all good"]


def test_custom_ids_carry_the_decision_request_and_option() -> None:
    rid = "hr_5f1c0e9a2b7d4e6f"
    assert custom_id(HumanDecision.APPROVE, rid) == f"opsloop:approve:{rid}"
    match = re.fullmatch(CUSTOM_ID, custom_id(HumanDecision.ANSWER, rid, 3))
    assert match is not None and match.group("action", "request", "option") == ("answer", rid, "3")
    with pytest.raises(ValueError, match="not a valid opsloop custom id"):
        custom_id(HumanDecision.APPROVE, "th_not-a-request")


def test_an_approval_shows_the_exact_arguments_who_may_decide_and_the_expiry() -> None:
    text = prompt_text(approval(service="checkout", version="1.4.2", replicas=3))

    block = text.split("```json\n")[1].split("\n```")[0]
    assert json.loads(block) == {"service": "checkout", "version": "1.4.2", "replicas": 3}
    assert "Approve deploy(checkout)? (production)" in text
    assert "Who may decide: `role:oncall`, <@80351110224678912>" in text
    assert f"expires <t:{int(WHEN.timestamp())}:R>" in text


def test_decided_buttons_are_disabled_and_keep_their_ids() -> None:
    request = approval(service="checkout")
    live, done = request_components(request), request_components(request, disabled=True)
    ids = [[b["custom_id"] for b in row["components"]] for row in live]
    assert ids == [[b["custom_id"] for b in row["components"]] for row in done]
    assert all(b["disabled"] for row in done for b in row["components"])
    assert not any(b["disabled"] for row in live for b in row["components"])


@pytest.mark.parametrize(
    ("decision", "actor", "comment", "expected"),
    [
        (HumanDecision.APPROVE, ALICE, None, "✅ **Approved** by <@80351110224678912> <t:"),
        (HumanDecision.REJECT, ALICE, "not today", "❌ **Rejected** by <@80351110224678912>"),
        (HumanDecision.REJECT, None, "expired", "⌛ **Expired** <t:"),
        (
            HumanDecision.ANSWER,
            Identity(channel="web", user_id="oncall-1"),
            "staging",
            "💬 **Answered** by `web:oncall-1`",
        ),
    ],
)
def test_the_resolution_line_says_what_who_and_when(
    decision: HumanDecision, actor: Identity | None, comment: str | None, expected: str
) -> None:
    line = resolution_text(decision, actor, comment, WHEN)
    assert line.startswith(expected)
    assert f"<t:{int(WHEN.timestamp())}:f>" in line
    assert comment is None or line.endswith(comment)
