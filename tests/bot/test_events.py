"""The one event schema: every event survives JSON, the discriminator, the decision union."""

from __future__ import annotations

import json
import typing
from datetime import UTC, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.events import (
    ActionReceived,
    AgentReply,
    ApprovalGiven,
    CallTool,
    ConversationRef,
    DecisionRefused,
    ErrorRaised,
    Event,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    MessageReceived,
    ModelCalled,
    Reply,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    TriggerFired,
    Usage,
    UserMessage,
    decision_adapter,
    event_adapter,
)

examples = settings(max_examples=60)

# ---------------------------------------------------------------- strategies

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
optional_text = st.none() | text
non_empty = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalar = st.none() | st.booleans() | st.integers() | finite | text
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)
json_object = st.dictionaries(text, json_value, max_size=4)
moments = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
text_tuple = st.lists(text, max_size=3).map(tuple)

identities = st.builds(
    Identity,
    channel=text,
    user_id=text,
    display_name=optional_text,
    email=optional_text,
    groups=text_tuple,
)
conversations = st.builds(ConversationRef, channel=text, tenant=text, room=text, thread_key=text)
idempotency_keys = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=255)
decisions = st.builds(CallTool, tool=text, arguments=json_object) | st.builds(Reply, text=text)
usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**9),
    output_tokens=st.integers(0, 10**9),
    cached_tokens=st.integers(0, 10**9),
    cache_write_tokens=st.integers(0, 10**9),
)

EVENT_STRATEGIES: dict[type, st.SearchStrategy] = {
    MessageReceived: st.builds(
        MessageReceived,
        idempotency_key=idempotency_keys,
        conversation=conversations,
        received_at=moments,
        sender=identities,
        text=text,
        agent=optional_text,
    ),
    ActionReceived: st.builds(
        ActionReceived,
        idempotency_key=idempotency_keys,
        conversation=conversations,
        received_at=moments,
        actor=identities,
        request_id=text,
        decision=st.sampled_from(HumanDecision),
        comment=optional_text,
    ),
    TriggerFired: st.builds(
        TriggerFired,
        idempotency_key=idempotency_keys,
        conversation=conversations,
        received_at=moments,
        source=text,
        text=text,
        requested_by=identities,
        payload=json_object,
        agent=optional_text,
    ),
    UserMessage: st.builds(
        UserMessage, at=moments, sender=identities, text=text, source=optional_text
    ),
    ModelCalled: st.builds(
        ModelCalled,
        at=moments,
        agent=text,
        provider=text,
        model=text,
        prompt_hash=text,
        usage=usages,
        cost_usd=finite,
        latency_ms=finite,
        decision=st.none() | decisions,
        error=optional_text,
    ),
    ToolCalled: st.builds(
        ToolCalled,
        at=moments,
        call_id=text,
        tool=text,
        arguments=json_object,
        idempotency_key=text,
        approved_by=optional_text,
    ),
    ToolReturned: st.builds(ToolReturned, at=moments, call_id=text, tool=text, output=json_value),
    ErrorRaised: st.builds(
        ErrorRaised,
        at=moments,
        source=st.sampled_from(["model", "validation", "tool", "budget", "policy", "input"]),
        message=text,
        tool=optional_text,
        call_id=optional_text,
    ),
    HumanRequested: st.builds(
        HumanRequested,
        at=moments,
        request_id=text,
        type=st.sampled_from(["approval", "question"]),
        tool=optional_text,
        arguments=st.none() | json_object,
        call_id=optional_text,
        question=text,
        options=text_tuple,
        approvers=text_tuple,
        requested_by=optional_text,
        four_eyes=st.booleans(),
        mode=st.sampled_from(["any", "all"]),
        min_approvals=st.integers(min_value=1, max_value=9),
        expires_at=moments,
        escalate_after=optional_text,
        escalate_to=text_tuple,
        notify=text_tuple,
    ),
    HumanResponded: st.builds(
        HumanResponded,
        at=moments,
        request_id=text,
        decision=st.sampled_from(HumanDecision),
        actor=st.none() | identities,
        comment=optional_text,
    ),
    ApprovalGiven: st.builds(
        ApprovalGiven,
        at=moments,
        request_id=text,
        actor=identities,
        comment=optional_text,
        approved_by=text_tuple,
        still_needed=text_tuple,
    ),
    DecisionRefused: st.builds(
        DecisionRefused, at=moments, request_id=text, actor=identities, reason=text
    ),
    RequestEscalated: st.builds(
        RequestEscalated,
        at=moments,
        request_id=text,
        level=st.integers(1, 100),
        to=text_tuple,
        posted_to=text_tuple,
        next_at=st.none() | moments,
    ),
    AgentReply: st.builds(AgentReply, at=moments, text=text, agent=text),
    StatusChanged: st.builds(
        StatusChanged,
        at=moments,
        status=st.sampled_from(ThreadStatus),
        reason=optional_text,
        agent=optional_text,
    ),
}


def _event_classes() -> set[type]:
    union, *_metadata = typing.get_args(Event)
    return set(typing.get_args(union))


def test_every_event_class_has_a_strategy():
    assert _event_classes() == set(EVENT_STRATEGIES)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "strategy", EVENT_STRATEGIES.values(), ids=[c.__name__ for c in EVENT_STRATEGIES]
)
@examples
@given(data=st.data())
def test_json_round_trip_gives_an_equal_event(strategy, data):
    event = data.draw(strategy)

    restored = event_adapter.validate_json(event_adapter.dump_json(event))

    assert type(restored) is type(event)
    assert restored == event


@pytest.mark.parametrize(
    "strategy", EVENT_STRATEGIES.values(), ids=[c.__name__ for c in EVENT_STRATEGIES]
)
@examples
@given(data=st.data())
def test_python_json_mode_round_trip_gives_an_equal_event(strategy, data):
    # The form task payloads and the store hold: plain JSON types, through the json module.
    event = data.draw(strategy)

    plain = json.loads(json.dumps(event_adapter.dump_python(event, mode="json")))

    assert event_adapter.validate_python(plain) == event


@examples
@given(decision=decisions)
def test_decision_round_trip(decision):
    restored = decision_adapter.validate_json(decision_adapter.dump_json(decision))

    assert type(restored) is type(decision)
    assert restored == decision


# ---------------------------------------------------------------- discriminator


def _agent_reply_dict(**changes):
    return {"kind": "agent_reply", "text": "done", "agent": "deployer", **changes}


def test_kind_selects_the_class():
    event = event_adapter.validate_python(_agent_reply_dict())

    assert isinstance(event, AgentReply)
    assert (event.text, event.agent) == ("done", "deployer")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValidationError) as caught:
        event_adapter.validate_python(_agent_reply_dict(kind="agent_shout"))

    assert caught.value.errors()[0]["type"] == "union_tag_invalid"


def test_missing_kind_is_rejected():
    with pytest.raises(ValidationError) as caught:
        event_adapter.validate_json(json.dumps({"text": "done", "agent": "deployer"}))

    assert caught.value.errors()[0]["type"] == "union_tag_not_found"


def test_kind_of_another_class_with_these_fields_is_rejected():
    # An agent reply's fields under the status kind: the status class validates, and fails.
    with pytest.raises(ValidationError):
        event_adapter.validate_python(_agent_reply_dict(kind="status"))


def test_unknown_field_is_rejected():
    with pytest.raises(ValidationError) as caught:
        event_adapter.validate_python(_agent_reply_dict(mood="cheerful"))

    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_events_are_immutable():
    event = AgentReply(text="done", agent="deployer")

    with pytest.raises(ValidationError):
        event.text = "changed"  # type: ignore[misc]


# ---------------------------------------------------------------- identity


def test_principal_is_channel_and_user_id():
    who = Identity(channel="slack", user_id="U024BE7LH", display_name="Ann")

    assert who.principal == "slack:U024BE7LH"


def test_principal_ignores_display_name_and_email():
    a = Identity(channel="cli", user_id="dev-1", display_name="Ann", email="a@example.com")
    b = Identity(channel="cli", user_id="dev-1", display_name="Bob")

    assert a.principal == b.principal == "cli:dev-1"


def test_label_prefers_display_name_and_falls_back_to_user_id():
    assert Identity(channel="cli", user_id="dev-1", display_name="Ann").label == "Ann"
    assert Identity(channel="cli", user_id="dev-1").label == "dev-1"


# ---------------------------------------------------------------- idempotency keys


def _message(key: str) -> MessageReceived:
    return MessageReceived(
        idempotency_key=key,
        conversation=ConversationRef(channel="cli", thread_key="t1"),
        sender=Identity(channel="cli", user_id="dev-1"),
        text="what is running in staging?",
    )


@pytest.mark.parametrize("length", [1, 255])
def test_idempotency_key_at_the_limits_is_accepted(length):
    assert _message("k" * length).idempotency_key == "k" * length


@pytest.mark.parametrize(
    ("length", "error_type"), [(0, "string_too_short"), (256, "string_too_long")]
)
def test_idempotency_key_outside_the_limits_is_rejected(length, error_type):
    with pytest.raises(ValidationError) as caught:
        _message("k" * length)

    [error] = caught.value.errors()
    assert error["loc"] == ("idempotency_key",)
    assert error["type"] == error_type


def test_idempotency_key_limit_applies_through_the_adapter():
    raw = _message("k").model_dump(mode="json") | {"idempotency_key": "k" * 256}

    with pytest.raises(ValidationError):
        event_adapter.validate_python(raw)


# ---------------------------------------------------------------- decisions


def test_decision_adapter_reads_a_tool_call():
    decision = decision_adapter.validate_json(
        '{"kind": "call_tool", "tool": "deploy", "arguments": {"service": "checkout"}}'
    )

    assert decision == CallTool(tool="deploy", arguments={"service": "checkout"})


def test_decision_adapter_reads_a_reply():
    decision = decision_adapter.validate_python({"kind": "reply", "text": "All healthy."})

    assert decision == Reply(text="All healthy.")


def test_tool_call_arguments_default_to_empty():
    decision = decision_adapter.validate_python({"kind": "call_tool", "tool": "list_services"})

    assert isinstance(decision, CallTool)
    assert decision.arguments == {}


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "shrug"},
        {"tool": "deploy"},
        {"kind": "reply"},
        {"kind": "call_tool"},
        {"kind": "reply", "text": "hi", "tool": "deploy"},
        {"kind": "agent_reply", "text": "hi", "agent": "deployer"},
    ],
    ids=["unknown-kind", "no-kind", "reply-no-text", "call-no-tool", "extra-field", "an-event"],
)
def test_decision_adapter_rejects(raw):
    with pytest.raises(ValidationError):
        decision_adapter.validate_python(raw)


def test_model_called_carries_a_decision_through_the_event_adapter():
    called = ModelCalled(
        agent="deployer",
        provider="offline",
        model="offline-patterns",
        prompt_hash="0" * 64,
        decision=CallTool(tool="restart", arguments={"service": "search"}),
    )

    restored = event_adapter.validate_json(event_adapter.dump_json(called))

    assert isinstance(restored.decision, CallTool)
    assert restored.decision.arguments == {"service": "search"}


def test_an_identity_recorded_before_auth_was_kept_still_loads() -> None:
    old = {
        "kind": "human_response",
        "at": "2026-01-01T00:00:00Z",
        "request_id": "hr_1",
        "decision": "approve",
        "actor": {"channel": "slack", "user_id": "U1", "display_name": "Ann"},
    }
    event = event_adapter.validate_python(old)
    assert (event.actor.auth, event.actor.via) == (None, None)
    assert event.actor.attested_label == "Ann"
    now = event.actor.model_copy(update={"auth": "token", "via": "token:tk_1"})
    assert now.attested_label == "Ann · token · via token:tk_1"


def test_a_request_recorded_before_several_approvers_loads_as_one_of_any():
    old = {
        "kind": "human_request",
        "at": "2026-01-01T00:00:00Z",
        "request_id": "hr_1",
        "type": "approval",
        "question": "ok?",
        "approvers": ["role:oncall"],
        "expires_at": "2026-01-01T01:00:00Z",
    }
    loaded = event_adapter.validate_python(old)
    assert (loaded.mode, loaded.min_approvals) == ("any", 1)
