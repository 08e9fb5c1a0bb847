"""Incremental compaction renders exactly what rendering the whole log each time rendered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.context
from bot.context import Block, compact, estimate_tokens, render_context, render_event
from bot.events import (
    AgentReply,
    ApprovalGiven,
    ErrorRaised,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    ModelCalled,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from tests.bot.test_context import ANN, LATER

# ---------------------------------------------------------------- the reference
# The algorithm as it was before blocks were kept: every call renders every event and
# re-sums the blocks on each pass. The incremental one must give the same blocks.


def _ref_blocks(events: Sequence[Any], *, trim_before: int, drop: set[int]) -> list[Block]:
    blocks = []
    requests = {e.request_id: e for e in events if isinstance(e, HumanRequested)}
    for index, event in enumerate(events):
        if index in drop:
            continue
        text = render_event(event, trim_output=index < trim_before, requests=requests)
        if text is not None:
            blocks.append(Block(index=index, kind=event.kind, text=text))
    return blocks


def _ref_total(blocks: Sequence[Block]) -> int:
    return sum(estimate_tokens(b.text) for b in blocks)


def reference_compact(
    events: Sequence[Any], *, budget_tokens: int, keep_recent_results: int = 2
) -> list[Block]:
    blocks = _ref_blocks(events, trim_before=0, drop=set())
    if _ref_total(blocks) <= budget_tokens:
        return blocks
    last_success = max(
        (i for i, e in enumerate(events) if isinstance(e, ToolReturned | AgentReply)), default=-1
    )
    resolved = {i for i, e in enumerate(events) if isinstance(e, ErrorRaised) and i < last_success}
    blocks = _ref_blocks(events, trim_before=0, drop=resolved)
    if _ref_total(blocks) <= budget_tokens:
        return blocks
    results = [i for i, e in enumerate(events) if isinstance(e, ToolReturned)]
    trim_before = results[-keep_recent_results] if len(results) >= keep_recent_results else 0
    blocks = _ref_blocks(events, trim_before=trim_before, drop=resolved)
    if _ref_total(blocks) <= budget_tokens:
        return blocks
    head, rest = blocks[:1], blocks[1:]
    dropped = 0
    while rest and _ref_total(head) + _ref_total(rest) + 10 > budget_tokens:
        rest.pop(0)
        dropped += 1
    marker = Block(index=-1, kind="compacted", text=f'<compacted events="{dropped}"/>')
    return [*head, marker, *rest] if dropped else [*head, *rest]


# ---------------------------------------------------------------- any thread

ids = st.sampled_from(["hr_1", "hr_2"])  # few, so requests, answers and repeats meet
texts = st.text(max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=200),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
any_event = st.one_of(
    st.builds(UserMessage, sender=st.just(ANN), text=texts),
    st.builds(
        UserMessage,
        sender=st.just(ANN),
        text=texts,
        source=st.just("webhook:gh"),
        payload=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    st.builds(
        ToolCalled,
        call_id=st.just("c"),
        tool=st.just("deploy"),
        arguments=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        idempotency_key=st.just("t:1"),
    ),
    st.builds(
        ToolReturned,
        call_id=st.just("c"),
        tool=st.just("deploy"),
        output=json_values | st.text(min_size=250, max_size=1500),
        untrusted=st.booleans(),
    ),
    st.builds(ErrorRaised, source=st.just("tool"), message=texts),
    st.builds(AgentReply, text=texts, agent=st.just("deployer")),
    st.builds(
        HumanRequested,
        request_id=ids,
        type=st.just("approval"),
        tool=st.just("deploy"),
        arguments=st.dictionaries(st.sampled_from(["service", "version"]), texts, max_size=2),
        question=texts,
        expires_at=st.just(LATER),
    ),
    st.builds(
        HumanResponded,
        request_id=ids,
        decision=st.sampled_from(list(HumanDecision)),
        actor=st.none() | st.just(ANN),
        comment=st.none() | texts,
        changes=st.none()
        | st.dictionaries(st.sampled_from(["service", "version"]), json_values, max_size=2),
    ),
    st.builds(ApprovalGiven, request_id=ids, actor=st.just(ANN), comment=st.none() | texts),
    st.builds(StatusChanged, status=st.sampled_from(list(ThreadStatus))),
    st.builds(
        ModelCalled,
        agent=st.just("deployer"),
        provider=st.just("offline"),
        model=st.just("m"),
        prompt_hash=st.just("0" * 64),
    ),
)
budgets = st.integers(min_value=0, max_value=3000)
keeps = st.integers(min_value=1, max_value=3)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(any_event, max_size=30), budget=budgets, keep=keeps)
def test_compact_is_the_reference_for_any_log(events, budget, keep):
    expected = reference_compact(events, budget_tokens=budget, keep_recent_results=keep)

    assert compact(events, budget_tokens=budget, keep_recent_results=keep) == expected
    # Once more, now from the kept blocks.
    assert compact(tuple(events), budget_tokens=budget, keep_recent_results=keep) == expected


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(any_event, min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=30), max_size=8),
    budget=budgets,
)
def test_a_growing_log_renders_as_the_reference_at_every_length(events, cuts, budget):
    # As a thread grows step by step (each step a new tuple of the same event objects),
    # and also shrinking or jumping (another list of the same first event): never stale.
    for length in [*range(1, len(events) + 1), *cuts]:
        log = tuple(events[:length])

        assert render_context(log, budget_tokens=budget) == "\n".join(
            b.text for b in reference_compact(log, budget_tokens=budget)
        )


def test_an_edit_note_follows_a_later_request_of_the_same_id():
    def asked(service: str) -> HumanRequested:
        return HumanRequested(
            request_id="hr_1",
            type="approval",
            tool="deploy",
            arguments={"service": service},
            question="ok?",
            expires_at=LATER,
        )

    edited = HumanResponded(
        request_id="hr_1", decision=HumanDecision.APPROVE, actor=ANN, changes={"service": "b"}
    )
    log = [UserMessage(sender=ANN, text="go"), asked("a"), edited]
    first = render_context(tuple(log), budget_tokens=10_000)
    later = render_context(tuple([*log, asked("c")]), budget_tokens=10_000)

    assert "service a -&gt; b" in first
    assert "service c -&gt; b" in later  # what the whole log says, as it always did
    assert later.startswith(first.replace("service a", "service c"))


@pytest.fixture
def rendered_events(monkeypatch):
    """The events ``render_event`` is asked to render, in order."""
    seen: list[Any] = []
    real = bot.context.render_event

    def counting(event: Any, **kwargs: Any) -> str | None:
        seen.append(event)
        return real(event, **kwargs)

    monkeypatch.setattr(bot.context, "render_event", counting)
    return seen


def test_a_step_renders_only_the_events_added_since_the_last(rendered_events):
    log: list[Any] = [UserMessage(sender=ANN, text="start")]
    for n in range(60):
        log += [
            ModelCalled(agent="a", provider="p", model="m", prompt_hash="0" * 64),
            ToolCalled(call_id=f"c{n}", tool="deploy", arguments={}, idempotency_key=f"k{n}"),
            ToolReturned(call_id=f"c{n}", tool="deploy", output="x" * 900),
            AgentReply(text=f"reply {n}", agent="deployer"),
        ]
    before = render_context(tuple(log), budget_tokens=2000)
    assert '<compacted events="' in before  # the rules ran, not just the cheap path
    rendered_events.clear()
    new = [UserMessage(sender=ANN, text="again"), AgentReply(text="ok", agent="deployer")]

    after = render_context(tuple([*log, *new]), budget_tokens=2000)

    assert rendered_events == new  # nothing older was rendered again
    assert after == "\n".join(b.text for b in reference_compact([*log, *new], budget_tokens=2000))


def test_a_new_tool_result_is_rendered_whole_and_trimmed_once(rendered_events):
    log = (UserMessage(sender=ANN, text="start"),)
    render_context(log, budget_tokens=500)
    result = ToolReturned(call_id="c", tool="deploy", output="x" * 900)

    for _ in range(3):
        render_context((*log, result), budget_tokens=500)

    assert rendered_events == [log[0], result, result]


@pytest.mark.parametrize("slack", [0, -1])
def test_rule_3_keeps_what_fits_exactly_with_the_marker(slack):
    # Every block is 400 characters, 101 tokens: head + 10 for the marker + three replies.
    first = UserMessage(
        sender=ANN, text="u" * (400 - len('<user_message from="Ann"></user_message>'))
    )
    replies = [AgentReply(text="r" * 373, agent="deployer") for _ in range(8)]
    events = (first, *replies)
    budget = 101 + 10 + 3 * 101 + slack

    blocks = compact(events, budget_tokens=budget)

    assert blocks == reference_compact(events, budget_tokens=budget)
    assert len(blocks) == (5 if slack == 0 else 4)


def test_a_log_read_back_from_the_database_renders_only_its_new_events(rendered_events):
    # The runtime extends its log in memory; the next read has new objects for those events.
    first = UserMessage(sender=ANN, text="start")
    result = ToolReturned(call_id="c", tool="deploy", output={"n": 1})
    render_context((first, result), budget_tokens=500)
    read_back = ToolReturned.model_validate_json(result.model_dump_json())
    reply = AgentReply(text="ok", agent="deployer")
    rendered_events.clear()

    text = render_context((first, read_back, reply), budget_tokens=500)

    assert rendered_events == [reply]
    assert text == "\n".join(render_event(e) or "" for e in (first, read_back, reply))


def test_an_equal_event_that_renders_otherwise_is_rendered_again():
    # pydantic holds output 1 and output True equal; their blocks differ.
    first = UserMessage(sender=ANN, text="start")
    one = ToolReturned(call_id="c", tool="t", output=1, at=LATER)
    render_context((first, one), budget_tokens=500)

    text = render_context(
        (first, ToolReturned(call_id="c", tool="t", output=True, at=LATER)), budget_tokens=500
    )

    assert text.endswith(">true</tool_result>")
