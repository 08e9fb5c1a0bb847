"""Anthropic's Messages API behind the :class:`~bot.model.Model` interface.

The only module that imports ``anthropic``. The client is built in :func:`make_client`
(keys, base URL, timeout); :func:`to_params` and :func:`from_message` only translate
between opsloop's request/response and the wire format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anthropic
from anthropic.types import (
    CacheControlEphemeralParam,
    Message,
    TextBlock,
    TextBlockParam,
    ToolParam,
    ToolUseBlock,
)
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from bot.errors import ModelUnavailableError
from bot.events import CallTool, Reply, Usage
from bot.model._base import Model, ModelRequest, ModelResponse
from bot.model._provider_errors import UNUSABLE, status_error, unusable_answer

if TYPE_CHECKING:
    import httpx2

__all__ = ["AnthropicModel", "from_message", "make_client", "to_params"]

_CACHED: CacheControlEphemeralParam = {"type": "ephemeral"}


# ---------------------------------------------------------------- client


def make_client(
    *,
    api_key: str,
    base_url: str | None = None,
    timeout: float = 60.0,
    http_client: httpx2.AsyncClient | None = None,
) -> anthropic.AsyncAnthropic:
    """Build the SDK client.

    Args:
        api_key: the Anthropic API key.
        base_url: another endpoint (a proxy or gateway); ``None`` means Anthropic's own.
        timeout: seconds before one request times out.
        http_client: an ``httpx2.AsyncClient`` to send through (tests inject a mock transport).
    """
    # max_retries=0: retries are RetryingModel's, so the breaker and Retry-After see them all.
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


# ---------------------------------------------------------------- wire format


def to_params(request: ModelRequest, model: str) -> MessageCreateParamsNonStreaming:
    """The ``messages.create`` arguments for ``request``.

    The system prompt and the tools are the stable prefix of every call in a thread, so both
    carry a cache breakpoint (on the system block and on the last tool); the thread's context
    is the one user turn that changes.
    """
    params: MessageCreateParamsNonStreaming = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": "user", "content": request.context}],
    }
    if request.system:  # the API refuses an empty text block
        system: TextBlockParam = {"type": "text", "text": request.system, "cache_control": _CACHED}
        params["system"] = [system]
    if request.tools:
        tools: list[ToolParam] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        tools[-1]["cache_control"] = _CACHED
        params["tools"] = tools
        # One decision per turn: the runtime records and runs a single tool call at a time.
        # The API refuses tool_choice without tools, hence only here.
        params["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    return params


def from_message(message: Message) -> tuple[CallTool | Reply | None, Usage]:
    """The decision and usage in an Anthropic ``Message``.

    The first ``tool_use`` block wins; otherwise the text blocks, joined, are the reply.
    """
    decision: CallTool | Reply | None = None
    tool_use = next((b for b in message.content if isinstance(b, ToolUseBlock)), None)
    if tool_use is not None:
        decision = CallTool(tool=tool_use.name, arguments=tool_use.input)
    else:
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock)).strip()
        decision = Reply(text=text) if text else None
    usage = message.usage
    return decision, Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


# ---------------------------------------------------------------- the model


class AnthropicModel(Model):
    """A Claude model through Anthropic's Messages API, with prompt caching."""

    provider = "anthropic"

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
            model_name: the model at Anthropic, such as ``claude-sonnet-4-5``.
            api_key: the Anthropic API key.
            base_url: another endpoint; ``None`` means Anthropic's own.
            timeout: seconds before one request times out.
            http_client: an ``httpx2.AsyncClient`` to send through (for tests).
        """
        self.model_name = model_name
        self._api_key = api_key
        self._timeout = timeout
        self._client = make_client(
            api_key=api_key, base_url=base_url, timeout=timeout, http_client=http_client
        )

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Ask Claude for one decision.

        Raises:
            ModelUnavailableError: on a timeout, a connection failure, 408, 429 or 5xx.
            ModelError: when Anthropic rejects the request (400, 401, 403, 404…).
        """
        try:
            message = await self._client.messages.create(**to_params(request, self.model_name))
        except anthropic.APITimeoutError as exc:
            raise ModelUnavailableError(f"anthropic timed out after {self._timeout:g}s") from exc
        except anthropic.APIConnectionError as exc:
            raise ModelUnavailableError("anthropic could not be reached") from exc
        except anthropic.APIStatusError as exc:
            error = status_error(
                self.provider,
                exc.status_code,
                exc.response.headers,
                exc.api_message,
                secret=self._api_key,
            )
            raise error from exc
        except UNUSABLE as exc:  # the SDK could not read the body (HTML, truncated JSON)
            raise unusable_answer(self.provider, exc) from exc
        try:
            if not isinstance(message, Message) or message.content is None:
                raise TypeError(f"{type(message).__name__} is not a message")
            decision, usage = from_message(message)
        except UNUSABLE as exc:
            raise unusable_answer(self.provider, exc) from exc
        return ModelResponse(
            decision=decision,
            provider=self.provider,
            model=message.model or self.model_name,
            usage=usage,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
