"""OpenAIModel driven through the real SDK over a mock httpx2 transport."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest

from bot.errors import ModelError, ModelUnavailableError, NoDecisionError
from bot.events import CallTool, Reply, Usage
from bot.model import ModelRequest, OpenAIModel, ToolSpec
from tests.bot.model.garbled import GARBLED

KEY = "sk-proj-test-0123456789abcdef"

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


def tool_call(name: str, arguments: str, call_id: str = "call_abc123") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(
    content: str | None = None, tool_calls: list[dict] | None = None, usage: dict | None = None
) -> dict:
    """A chat.completion body, as OpenAI sends it."""
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "tool_calls": tool_calls,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 1200,
            "completion_tokens": 20,
            "total_tokens": 1220,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_44709d6fcb",
    }


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


Respond = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
async def make_model():
    made: list[OpenAIModel] = []

    def make(
        respond: Respond, *, base_url: str | None = None
    ) -> tuple[OpenAIModel, list[httpx2.Request]]:
        sent: list[httpx2.Request] = []

        def handler(request: httpx2.Request) -> httpx2.Response:
            sent.append(request)
            return respond(request)

        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        model = OpenAIModel(
            "gpt-4.1-mini", api_key=KEY, base_url=base_url, timeout=9, http_client=client
        )
        made.append(model)
        return model, sent

    yield make
    for model in made:
        await model.aclose()


def replying(body: dict, status: int = 200, headers: dict | None = None) -> Respond:
    return lambda request: httpx2.Response(status, json=body, headers=headers)


async def test_sends_system_and_context_with_single_tool_calls(make_model):
    model, sent = make_model(replying(completion("ok")))

    await model.request(REQUEST)

    assert len(sent) == 1
    assert str(sent[0].url) == "https://api.openai.com/v1/chat/completions"
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(sent[0].content)
    assert body["model"] == "gpt-4.1-mini"
    assert body["max_completion_tokens"] == 512
    assert "max_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": "You are opsloop, an operations assistant."},
        {"role": "user", "content": "<message from='alice'>restart the api</message>"},
    ]
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            },
        }
        for spec in TOOLS
    ]


async def test_without_tools_sends_no_tool_settings(make_model):
    model, sent = make_model(replying(completion("hello")))

    await model.request(REQUEST.model_copy(update={"tools": ()}))

    body = json.loads(sent[0].content)
    assert "tools" not in body
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


async def test_a_compatible_server_gets_max_tokens_at_its_base_url(make_model):
    model, sent = make_model(replying(completion("ok")), base_url="http://ollama.test:11434/v1")

    await model.request(REQUEST)

    assert str(sent[0].url) == "http://ollama.test:11434/v1/chat/completions"
    body = json.loads(sent[0].content)
    assert body["max_tokens"] == 512
    assert "max_completion_tokens" not in body


async def test_first_tool_call_is_the_decision(make_model):
    calls = [
        tool_call("lookup_service", '{"name": "api"}'),
        tool_call("restart_service", '{"name": "api"}', call_id="call_def456"),
    ]
    model, _ = make_model(replying(completion(None, calls)))

    response = await model.request(REQUEST)

    assert response.decision == CallTool(tool="lookup_service", arguments={"name": "api"})
    assert response.provider == "openai"
    assert response.model == "gpt-4.1-mini-2025-04-14"


async def test_cached_prompt_tokens_are_counted_apart(make_model):
    model, _ = make_model(replying(completion("ok")))

    response = await model.request(REQUEST)

    assert response.usage == Usage(
        input_tokens=1200 - 1024, output_tokens=20, cached_tokens=1024, cache_write_tokens=0
    )


async def test_missing_usage_details_count_as_uncached(make_model):
    usage = {"prompt_tokens": 300, "completion_tokens": 7, "total_tokens": 307}
    model, _ = make_model(replying(completion("ok", usage=usage)))

    response = await model.request(REQUEST)

    assert response.usage == Usage(input_tokens=300, output_tokens=7)


async def test_a_tool_without_arguments_gets_an_empty_object(make_model):
    model, _ = make_model(replying(completion(None, [tool_call("lookup_service", "")])))

    response = await model.request(REQUEST)

    assert response.decision == CallTool(tool="lookup_service", arguments={})


async def test_message_content_is_the_reply(make_model):
    model, _ = make_model(replying(completion("  The api is healthy.\n")))

    response = await model.request(REQUEST)

    assert response.decision == Reply(text="The api is healthy.")


async def test_nothing_said_is_no_decision(make_model):
    model, _ = make_model(replying(completion(None)))

    response = await model.request(REQUEST)

    assert response.decision is None


async def test_no_choices_is_no_decision(make_model):
    body = completion("ignored")
    body["choices"] = []
    model, _ = make_model(replying(body))

    response = await model.request(REQUEST)

    assert response.decision is None
    assert response.usage.output_tokens == 20


@pytest.mark.parametrize(
    ("arguments", "why"),
    [('{"name": "api"', "Expecting"), ('["api"]', "expected an object, got list")],
)
async def test_arguments_that_are_not_a_json_object_are_no_decision(make_model, arguments, why):
    model, _ = make_model(replying(completion(None, [tool_call("lookup_service", arguments)])))

    with pytest.raises(NoDecisionError) as caught:
        await model.request(REQUEST)

    message = str(caught.value)
    assert message.startswith("the model's arguments for tool lookup_service were not valid JSON: ")
    assert why in message
    assert len(message) < 120


async def test_rate_limit_carries_retry_after(make_model):
    body = error_body("Rate limit reached for gpt-4.1-mini", "requests", "rate_limit_exceeded")
    model, sent = make_model(replying(body, status=429, headers={"retry-after": "7"}))

    with pytest.raises(ModelUnavailableError) as caught:
        await model.request(REQUEST)

    assert caught.value.retry_after == 7
    assert len(sent) == 1, "the SDK must not retry on its own"


async def test_server_error_is_unavailable(make_model):
    model, sent = make_model(replying(error_body("The server had an error", "server_error"), 500))

    with pytest.raises(ModelUnavailableError, match="HTTP 500") as caught:
        await model.request(REQUEST)

    assert caught.value.retry_after is None
    assert len(sent) == 1


async def test_timeout_is_unavailable(make_model):
    def time_out(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    model, _ = make_model(time_out)

    with pytest.raises(ModelUnavailableError, match="timed out after 9s"):
        await model.request(REQUEST)


async def test_connection_failure_is_unavailable(make_model):
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    model, _ = make_model(refuse, base_url="http://ollama.test:11434/v1")

    with pytest.raises(ModelUnavailableError, match="could not be reached"):
        await model.request(REQUEST)


async def test_bad_key_is_a_model_error_that_never_shows_the_key(make_model):
    body = error_body(
        f"Incorrect API key provided: {KEY}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )
    model, _ = make_model(replying(body, status=401))

    with pytest.raises(ModelError) as caught:
        await model.request(REQUEST)

    assert not isinstance(caught.value, ModelUnavailableError)
    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value)
    assert KEY[:12] not in str(caught.value)


async def test_unknown_model_says_so(make_model):
    body = error_body(
        "The model `gpt-4.1-mini` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )
    model, _ = make_model(replying(body, status=404))

    with pytest.raises(ModelError) as caught:
        await model.request(REQUEST)

    assert not isinstance(caught.value, ModelUnavailableError)
    assert str(caught.value) == (
        "openai rejected the request (HTTP 404): The model `gpt-4.1-mini` does not exist "
        "or you do not have access to it."
    )


@pytest.mark.parametrize("respond", GARBLED)
async def test_an_unparseable_answer_is_unavailable_not_a_crash(make_model, respond):
    """Regression: an HTML or truncated answer raised from the SDK as something the
    runtime did not model, so the thread hung as running and was retried forever."""
    model, _ = make_model(respond)
    with pytest.raises(ModelUnavailableError, match="unusable answer"):
        await model.request(REQUEST)
