"""The offline model's ``call TOOL key=value …``: any tool of the agent, typed by its schema."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from agents import DEPLOYER, INSPECTOR
from bot.agent import Agent
from bot.events import CallTool, Identity, Reply, UserMessage
from bot.model import ModelRequest
from bot.model._call_syntax import parse_arguments
from bot.model.offline import OFFLINE_NOTICE, OfflineModel
from bot.tools import ToolContext, tool

ANN = Identity(channel="cli", user_id="dev-1")


class Color(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class KnobArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    count: int = 1
    ratio: float = 1.0
    dry_run: bool = False
    tags: list[str] = []
    note: str | None = None
    level: Literal["low", "high"] = "low"
    size: int | None = None
    color: Color | None = None


@tool(tier="write")
async def turn_knob(ctx: ToolContext, args: KnobArgs) -> dict[str, str]:
    """Turn a knob."""
    return {"label": args.label}


KNOBS = Agent(name="knobs", description="Knobs.", prompt="inspector", tools=(turn_knob,))
SCHEMA = turn_knob.spec.parameters


def ask(agent: Agent, text: str) -> CallTool | Reply:
    request = ModelRequest(
        agent=agent.name,
        system="",
        context="",
        tools=agent.specs,
        events=(UserMessage(sender=ANN, text=text),),
    )
    return OfflineModel().decide(request)


def test_a_call_of_a_shipped_tool_with_key_values():
    decided = ask(INSPECTOR, "call service_status service=checkout environment=staging")

    assert decided == CallTool(
        tool="service_status", arguments={"service": "checkout", "environment": "staging"}
    )


def test_values_are_typed_by_the_tools_schema():
    decided = ask(
        KNOBS,
        'call turn_knob label="two words" count=3 ratio=0.5 dry_run=yes tags=a,b '
        "note=null level=high size=7",
    )

    assert decided == CallTool(
        tool="turn_knob",
        arguments={
            "label": "two words",
            "count": 3,
            "ratio": 0.5,
            "dry_run": True,
            "tags": ["a", "b"],
            "note": None,
            "level": "high",
            "size": 7,
        },
    )
    assert isinstance(decided, CallTool)
    turn_knob.validate(decided.arguments)


def test_a_string_stays_text_even_when_it_looks_like_a_number():
    decided = ask(DEPLOYER, "call deploy service=checkout version=1.10 environment=staging")

    assert isinstance(decided, CallTool)
    assert decided.arguments["version"] == "1.10"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ('{"label": "x", "count": 2}', {"label": "x", "count": 2}),
        ('label=x tags=\'["a", "b"]\'', {"label": "x", "tags": ["a", "b"]}),
        ('color=\'{"name": "red"}\'', {"color": {"name": "red"}}),
        ("count=many", {"count": "many"}),  # left for the tool to refuse
        ("unknown=3 other=true word=hi", {"unknown": 3, "other": True, "word": "hi"}),
        ("label=a=b", {"label": "a=b"}),
        ("note=null label=null", {"note": None, "label": "null"}),
    ],
)
def test_parse_arguments(text, expected):
    assert parse_arguments(text, SCHEMA) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("label", "'label' is not key=value"),
        ("label=a label=b", "label is given twice"),
        ('label="open', "No closing quotation"),
        ("{not json", "the JSON object does not parse"),
        ("=x", "'=x' is not key=value"),
    ],
)
def test_unreadable_arguments_are_explained(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_arguments(text, SCHEMA)


def test_unreadable_arguments_get_a_reply_that_says_how():
    decided = ask(KNOBS, "call turn_knob label")

    assert isinstance(decided, Reply)
    assert "could not read the arguments of turn_knob: 'label' is not key=value" in decided.text
    assert OFFLINE_NOTICE in decided.text


def test_a_tool_the_agent_lacks_gets_its_list_of_tools():
    decided = ask(INSPECTOR, "call deploy service=checkout")

    assert isinstance(decided, Reply)
    assert decided.text.startswith(
        "I (inspector) have no tool 'deploy'; my tools: list_services, service_status, "
        "recent_deploys, ask_human."
    )
    assert OFFLINE_NOTICE in decided.text


def test_call_without_arguments_and_a_phrase_that_only_starts_with_call():
    assert ask(INSPECTOR, "call list_services") == CallTool(tool="list_services", arguments={})
    phrase = ask(INSPECTOR, "call me when checkout is running in staging")
    assert phrase == CallTool(tool="list_services", arguments={"environment": "staging"})


def test_the_help_names_the_call_syntax_and_the_tools():
    decided = ask(KNOBS, "hello")

    assert isinstance(decided, Reply)
    assert "'call TOOL key=value …' (turn_knob, ask_human)" in decided.text
