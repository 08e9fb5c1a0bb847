"""Who led to the next action, worked out once per log: the same answer as a full scan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import AgentReply, HumanDecision, HumanResponded, Identity, UserMessage
from bot.tool_calls import requesters

PEOPLE = [Identity(channel="cli", user_id=f"u{n}") for n in range(3)]


def full_scan(events: Sequence[Any]) -> tuple[list[Identity], int]:
    """The reference: the whole log walked back from the end on every call."""
    found: list[Identity] = []
    turn = 0
    spoke = False
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, UserMessage):
            spoke = True
            turn = index + 1
            if event.sender not in found:
                found.append(event.sender)
        elif isinstance(event, HumanResponded):
            if spoke:
                break
            if event.actor is not None and event.comment and event.actor not in found:
                found.append(event.actor)
    return found, turn


def event_of(kind: int, who: int, commented: bool) -> Any:
    if kind == 0:
        return UserMessage(sender=PEOPLE[who], text="please")
    if kind == 1:
        return HumanResponded(
            request_id="hr_1",
            decision=HumanDecision.APPROVE,
            actor=PEOPLE[who] if who < 2 else None,
            comment="fine" if commented else None,
        )
    return AgentReply(text="ok", agent="deployer")


events_strategy = st.lists(
    st.builds(event_of, st.integers(0, 2), st.integers(0, 2), st.booleans()), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_the_answer_matches_a_full_scan_at_every_length_of_a_growing_log(events: list[Any]) -> None:
    for length in range(len(events) + 1):
        # The same growing list, as the runtime extends a thread: the kept state is reused.
        assert requesters(tuple(events[:length])) == full_scan(events[:length])


def test_a_message_after_a_decision_starts_a_new_turn() -> None:
    asked = UserMessage(sender=PEOPLE[0], text="deploy")
    decided = HumanResponded(
        request_id="hr_1", decision=HumanDecision.REJECT, actor=PEOPLE[1], comment="not now"
    )
    again = UserMessage(sender=PEOPLE[2], text="deploy anyway")
    assert requesters((asked, decided)) == ([PEOPLE[1], PEOPLE[0]], 1)
    assert requesters((asked, decided, again)) == ([PEOPLE[2]], 3)
