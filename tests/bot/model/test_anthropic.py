"""AnthropicModel driven through the real SDK over a mock httpx2 transport."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest

from bot.errors import ModelError, ModelUnavailableError
from bot.events import CallTool, Reply, Usage
from bot.model import AnthropicModel, ModelRequest, ToolSpec
from tests.bot.model.garbled import GARBLED

KEY = "sk-ant-test-0123456789abcdef"

TOOLS = (
    ToolSpec(
        name="lookup_service",
        description="Look up a service by name.",
        parameters={
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    ),
    ToolSpec(
        name="restart_service",
        description="Restart a service.",
        parameters={"type": "object", "properties": {"name": {"type": "string"}}},
    ),
)

REQUEST = ModelRequest(
    agent="ops",
    system="You are opsloop, an operations assistant.",
    context="<message from='alice'>restart the api</message>",
    tools=TOOLS,
    max_tokens=512,
)

USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": None,
}


def message(content: list[dict], usage: dict | None = None) -> dict:
    """A Messages API response body, as Anthropic sends it."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": content,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
        "stop_sequence": None,
        "usage": usage or USAGE,
    }


def error_body(kind: str, text: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": text}}


Respond = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
async def make_model():
    made: list[AnthropicModel] = []

    def make(respond: Respond) -> tuple[AnthropicModel, list[httpx2.Request]]:
        sent: list[httpx2.Request] = []

        def handler(request: httpx2.Request) -> httpx2.Response:
            sent.append(request)
            return respond(request)

        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        model = AnthropicModel("claude-haiku-4-5", api_key=KEY, timeout=12, http_client=client)
        made.append(model)
        return model, sent

    yield make
    for model in made:
        await model.aclose()


def replying(body: dict, status: int = 200, headers: dict | None = None) -> Respond:
    return lambda request: httpx2.Response(status, json=body, headers=headers)


async def test_sends_a_cached_prefix_and_one_user_turn(make_model):
    model, sent = make_model(replying(message([{"type": "text", "text": "ok"}])))

    await model.request(REQUEST)

    assert len(sent) == 1
    assert sent[0].method == "POST"
    assert sent[0].url.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token, no longer as x-api-key
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(sent[0].content)
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 512
    assert body["system"] == [
        {
            "type": "text",
            "text": "You are opsloop, an operations assistant.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert body["messages"] == [
        {"role": "user", "content": "<message from='alice'>restart the api</message>"}
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


async def test_tools_become_input_schemas_with_the_cache_breakpoint_on_the_last(make_model):
    model, sent = make_model(replying(message([{"type": "text", "text": "ok"}])))

    await model.request(REQUEST)

    tools = json.loads(sent[0].content)["tools"]
    assert [t["name"] for t in tools] == ["lookup_service", "restart_service"]
    assert tools[0]["description"] == "Look up a service by name."
    assert tools[0]["input_schema"] == TOOLS[0].parameters
    assert "cache_control" not in tools[0]
    assert tools[1]["cache_control"] == {"type": "ephemeral"}


async def test_without_tools_sends_neither_tools_nor_tool_choice(make_model):
    model, sent = make_model(replying(message([{"type": "text", "text": "hello"}])))

    await model.request(REQUEST.model_copy(update={"tools": ()}))

    body = json.loads(sent[0].content)
    assert "tools" not in body
    assert "tool_choice" not in body


async def test_first_tool_use_is_the_decision(make_model):
    content = [
        {"type": "text", "text": "Let me look that up."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "lookup_service",
            "input": {"name": "api"},
        },
        {
            "type": "tool_use",
            "id": "toolu_02",
            "name": "restart_service",
            "input": {"name": "api"},
        },
    ]
    model, _ = make_model(replying(message(content)))

    response = await model.request(REQUEST)

    assert response.decision == CallTool(tool="lookup_service", arguments={"name": "api"})
    assert response.provider == "anthropic"
    assert response.model == "claude-haiku-4-5-20251001"


async def test_usage_maps_cache_reads_and_writes(make_model):
    usage = {
        "input_tokens": 80,
        "output_tokens": 12,
        "cache_read_input_tokens": None,
        "cache_creation_input_tokens": 1500,
    }
    model, _ = make_model(replying(message([{"type": "text", "text": "ok"}], usage)))

    response = await model.request(REQUEST)

    assert response.usage == Usage(
        input_tokens=80, output_tokens=12, cached_tokens=0, cache_write_tokens=1500
    )


async def test_cache_reads_are_counted_apart(make_model):
    model, _ = make_model(replying(message([{"type": "text", "text": "ok"}])))

    response = await model.request(REQUEST)

    assert response.usage == Usage(
        input_tokens=120, output_tokens=30, cached_tokens=1000, cache_write_tokens=0
    )


async def test_text_blocks_are_joined_into_a_reply(make_model):
    content = [{"type": "text", "text": "The api is "}, {"type": "text", "text": "healthy.\n"}]
    model, _ = make_model(replying(message(content)))

    response = await model.request(REQUEST)

    assert response.decision == Reply(text="The api is healthy.")


@pytest.mark.parametrize("content", [[], [{"type": "text", "text": "  \n"}]])
async def test_nothing_said_is_no_decision(make_model, content):
    model, _ = make_model(replying(message(content)))

    response = await model.request(REQUEST)

    assert response.decision is None


async def test_rate_limit_carries_retry_after(make_model):
    model, sent = make_model(
        replying(
            error_body("rate_limit_error", "Number of requests has exceeded your rate limit"),
            status=429,
            headers={"retry-after": "7"},
        )
    )

    with pytest.raises(ModelUnavailableError) as caught:
        await model.request(REQUEST)

    assert caught.value.retry_after == 7
    assert "rate limited" in str(caught.value)
    assert len(sent) == 1, "the SDK must not retry on its own"


async def test_overloaded_is_unavailable(make_model):
    model, _ = make_model(replying(error_body("overloaded_error", "Overloaded"), status=529))

    with pytest.raises(ModelUnavailableError, match="overloaded") as caught:
        await model.request(REQUEST)

    assert caught.value.retry_after is None


async def test_server_error_is_unavailable_and_not_retried_by_the_sdk(make_model):
    model, sent = make_model(replying(error_body("api_error", "Internal server error"), 500))

    with pytest.raises(ModelUnavailableError, match="HTTP 500"):
        await model.request(REQUEST)

    assert len(sent) == 1


async def test_timeout_is_unavailable(make_model):
    def time_out(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    model, _ = make_model(time_out)

    with pytest.raises(ModelUnavailableError, match="timed out after 12s"):
        await model.request(REQUEST)


async def test_connection_failure_is_unavailable(make_model):
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    model, _ = make_model(refuse)

    with pytest.raises(ModelUnavailableError, match="could not be reached"):
        await model.request(REQUEST)


async def test_bad_key_is_a_model_error_that_never_shows_the_key(make_model):
    body = error_body("authentication_error", f"invalid x-api-key {KEY}")
    model, _ = make_model(replying(body, status=401))

    with pytest.raises(ModelError) as caught:
        await model.request(REQUEST)

    assert not isinstance(caught.value, ModelUnavailableError)
    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value)


async def test_bad_request_explains_itself_without_the_key(make_model):
    body = error_body("invalid_request_error", f"max_tokens: too large (key {KEY})")
    model, _ = make_model(replying(body, status=400))

    with pytest.raises(ModelError) as caught:
        await model.request(REQUEST)

    assert not isinstance(caught.value, ModelUnavailableError)
    message = str(caught.value)
    assert message.startswith("anthropic rejected the request (HTTP 400): max_tokens: too large")
    assert KEY not in message


@pytest.mark.parametrize("respond", GARBLED)
async def test_an_unparseable_answer_is_unavailable_not_a_crash(make_model, respond):
    """Regression: an HTML or truncated answer raised from the SDK as something the
    runtime did not model, so the thread hung as running and was retried forever."""
    model, _ = make_model(respond)
    with pytest.raises(ModelUnavailableError, match="unusable answer"):
        await model.request(REQUEST)
