"""OpenAI's Chat Completions API behind the :class:`~bot.model.Model` interface.

The only module that imports ``openai``. Chat Completions is the dialect every
OpenAI-compatible server speaks (Ollama, vLLM, LiteLLM…), so ``base_url`` reaches them too.
The client is built in :func:`make_client`; :func:`to_params` and :func:`from_completion`
only translate.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import JsonValue

from bot.errors import ModelUnavailableError, NoDecisionError
from bot.events import CallTool, Reply, Usage
from bot.model._base import Model, ModelRequest, ModelResponse
from bot.model._provider_errors import UNUSABLE, status_error, unusable_answer

if TYPE_CHECKING:
    import httpx2

__all__ = ["OpenAIModel", "from_completion", "make_client", "to_params"]


# ---------------------------------------------------------------- client


def make_client(
    *,
    api_key: str,
    base_url: str | None = None,
    timeout: float = 60.0,
    http_client: httpx2.AsyncClient | None = None,
) -> openai.AsyncOpenAI:
    """Build the SDK client.

    Args:
        api_key: the API key (any value for servers that need none).
        base_url: an OpenAI-compatible server; ``None`` means OpenAI's own.
        timeout: seconds before one request times out.
        http_client: an ``httpx2.AsyncClient`` to send through (tests inject a mock transport).
    """
    # max_retries=0: retries are RetryingModel's, so the breaker and Retry-After see them all.
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


# ---------------------------------------------------------------- wire format


def to_params(
    request: ModelRequest, model: str, *, compatible_server: bool = False
) -> CompletionCreateParamsNonStreaming:
    """The ``chat.completions.create`` arguments for ``request``.

    Args:
        request: what to ask.
        model: the model's name at the server.
        compatible_server: the server is not OpenAI's own but speaks its dialect.
    """
    params: CompletionCreateParamsNonStreaming = {
        "model": model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.context},
        ],
    }
    # OpenAI deprecated max_tokens (its reasoning models refuse it); servers that copy the API
    # do not all know max_completion_tokens yet.
    if compatible_server:
        params["max_tokens"] = request.max_tokens
    else:
        params["max_completion_tokens"] = request.max_tokens
    if request.tools:
        tools: list[ChatCompletionFunctionToolParam] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
        params["tools"] = tools
        params["tool_choice"] = "auto"
        # One decision per turn. Servers refuse these two without tools, hence only here.
        params["parallel_tool_calls"] = False
    return params


def _arguments(tool: str, raw: str) -> dict[str, JsonValue]:
    if not raw.strip():  # some compatible servers send "" for a tool without arguments
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise NoDecisionError(
            f"the model's arguments for tool {tool} were not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(parsed, dict):
        raise NoDecisionError(
            f"the model's arguments for tool {tool} were not valid JSON: "
            f"expected an object, got {type(parsed).__name__}"
        )
    return parsed


def from_completion(completion: ChatCompletion) -> tuple[CallTool | Reply | None, Usage]:
    """The decision and usage in a ``ChatCompletion``.

    The first function tool call wins; otherwise the message's text is the reply.

    Raises:
        NoDecisionError: when the tool call's arguments are not a JSON object.
    """
    decision: CallTool | Reply | None = None
    if completion.choices:
        message = completion.choices[0].message
        call = next(
            (
                c
                for c in message.tool_calls or ()
                if isinstance(c, ChatCompletionMessageFunctionToolCall)
            ),
            None,
        )
        if call is not None:
            name = call.function.name
            decision = CallTool(tool=name, arguments=_arguments(name, call.function.arguments))
        elif text := (message.content or "").strip():
            decision = Reply(text=text)
    usage = Usage()
    if completion.usage is not None:
        details = completion.usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details is not None else 0
        # OpenAI counts cached tokens inside prompt_tokens; opsloop bills them apart.
        usage = Usage(
            input_tokens=completion.usage.prompt_tokens - cached,
            output_tokens=completion.usage.completion_tokens,
            cached_tokens=cached,
        )
    return decision, usage


# ---------------------------------------------------------------- the model


class OpenAIModel(Model):
    """A model behind OpenAI's Chat Completions API, or any server that speaks it."""

    provider = "openai"

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        """Create the model.

        Args:
            model_name: the model at the server, such as ``gpt-4.1-mini`` or ``llama3.1:8b``.
            api_key: the API key (any value for servers that need none).
            base_url: an OpenAI-compatible server; ``None`` means OpenAI's own.
            timeout: seconds before one request times out.
            http_client: an ``httpx2.AsyncClient`` to send through (for tests).
        """
        self.model_name = model_name
        self._api_key = api_key
        self._timeout = timeout
        self._compatible_server = base_url is not None
        self._client = make_client(
            api_key=api_key, base_url=base_url, timeout=timeout, http_client=http_client
        )

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Ask the model for one decision.

        Raises:
            ModelUnavailableError: on a timeout, a connection failure, 408, 429 or 5xx.
            ModelError: when the server rejects the request (400, 401, 403, 404…).
            NoDecisionError: when the model's tool arguments are not a JSON object.
        """
        params = to_params(request, self.model_name, compatible_server=self._compatible_server)
        try:
            completion = await self._client.chat.completions.create(**params)
        except openai.APITimeoutError as exc:
            raise ModelUnavailableError(f"openai timed out after {self._timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            raise ModelUnavailableError("openai could not be reached") from exc
        except openai.APIStatusError as exc:
            detail = exc.body.get("message") if isinstance(exc.body, dict) else None
            error = status_error(
                self.provider,
                exc.status_code,
                exc.response.headers,
                detail if isinstance(detail, str) else None,
                secret=self._api_key,
            )
            raise error from exc
        except UNUSABLE as exc:  # the SDK could not read the body (HTML, truncated JSON)
            raise unusable_answer(self.provider, exc) from exc
        try:
            if not isinstance(completion, ChatCompletion) or completion.choices is None:
                raise TypeError(f"{type(completion).__name__} is not a chat completion")
            decision, usage = from_completion(completion)
        except NoDecisionError:
            raise
        except UNUSABLE as exc:
            raise unusable_answer(self.provider, exc) from exc
        return ModelResponse(
            decision=decision,
            provider=self.provider,
            model=completion.model or self.model_name,
            usage=usage,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
