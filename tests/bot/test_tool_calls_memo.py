"""The unanswered call, kept per log, is the one a scan of the whole log finds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import AgentReply, ErrorRaised, ToolCalled, ToolReturned
from bot.tool_calls import unresolved_call


def reference_unresolved_call(events: Sequence[Any]) -> ToolCalled | None:
    """The whole-log scan it replaced."""
    answered: set[str] = set()
    pending: ToolCalled | None = None
    for event in reversed(events):
        if isinstance(event, ToolReturned):
            answered.add(event.call_id)
        elif isinstance(event, ErrorRaised) and event.call_id:
            answered.add(event.call_id)
        elif isinstance(event, ToolCalled) and event.call_id not in answered:
            pending = event
    return pending


call_ids = st.sampled_from(["", "c1", "c2", "c3"])  # few, so calls repeat and meet answers
events = st.one_of(
    st.builds(
        ToolCalled,
        call_id=call_ids,
        tool=st.just("deploy"),
        arguments=st.just({}),
        idempotency_key=st.just("k"),
    ),
    st.builds(ToolReturned, call_id=call_ids, tool=st.just("deploy"), output=st.none()),
    st.builds(
        ErrorRaised, source=st.just("tool"), message=st.just("x"), call_id=st.none() | call_ids
    ),
    st.builds(AgentReply, text=st.just("ok"), agent=st.just("a")),
)


@settings(max_examples=300, deadline=None)
@given(log=st.lists(events, max_size=25), cuts=st.lists(st.integers(0, 25), max_size=5))
def test_the_unanswered_call_is_the_reference_at_every_length(log, cuts):
    for length in [*range(len(log) + 1), *cuts]:
        grown = tuple(log[:length])

        assert unresolved_call(grown) is reference_unresolved_call(grown)


def test_a_call_answered_later_is_resolved_and_the_next_one_found():
    first = ToolCalled(call_id="c1", tool="t", arguments={}, idempotency_key="k1")
    second = ToolCalled(call_id="c2", tool="t", arguments={}, idempotency_key="k2")
    log: tuple[Any, ...] = (AgentReply(text="hi", agent="a"), first)

    assert unresolved_call(log) is first
    log = (*log, second)
    assert unresolved_call(log) is first
    log = (*log, ErrorRaised(source="tool", message="boom", call_id="c1"))
    assert unresolved_call(log) is second
    log = (*log, ToolReturned(call_id="c2", tool="t", output=1))
    assert unresolved_call(log) is None
