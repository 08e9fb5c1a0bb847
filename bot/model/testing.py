"""Models written as code, for tests and benchmarks: no network, fully deterministic."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from bot.events import CallTool, Reply, Usage
from bot.model._base import Model, ModelRequest, ModelResponse

__all__ = ["FunctionModel", "ScriptedModel"]

ModelFunction = Callable[
    [ModelRequest],
    CallTool | Reply | ModelResponse | Awaitable[CallTool | Reply | ModelResponse | None] | None,
]


def _as_response(result: CallTool | Reply | ModelResponse | None, name: str) -> ModelResponse:
    if isinstance(result, ModelResponse):
        return result
    return ModelResponse(decision=result, provider=name, model=name, usage=Usage())


class FunctionModel(Model):
    """The LLM written as a plain (sync or async) function of the request.

    The function returns a decision, a whole :class:`ModelResponse`, or ``None`` for "no
    decision"; it may raise to simulate a provider failure.
    """

    provider = "function"

    def __init__(self, fn: ModelFunction, *, model_name: str = "function") -> None:
        """Wrap ``fn``."""
        self._fn = fn
        self.model_name = model_name
        self.requests: list[ModelRequest] = []
        """Every request received, in order."""

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Call the function."""
        self.requests.append(request)
        result = self._fn(request)
        if inspect.isawaitable(result):
            result = await result
        return _as_response(result, self.provider)


class ScriptedModel(Model):
    """A queue of canned decisions, one per call.

    Running out is an error, and so is finishing with decisions left unused:
    call :meth:`assert_consumed` (the test fixture does) to check.
    """

    provider = "scripted"
    model_name = "scripted"

    def __init__(self, decisions: Iterable[CallTool | Reply | ModelResponse | None]) -> None:
        """Queue ``decisions``; ``None`` stands for a response with no decision."""
        self._queue = deque(decisions)
        self.requests: list[ModelRequest] = []
        """Every request received, in order."""

    @property
    def remaining(self) -> int:
        """Decisions not yet used."""
        return len(self._queue)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Pop the next decision."""
        self.requests.append(request)
        if not self._queue:
            raise AssertionError(
                f"ScriptedModel ran out of decisions after {len(self.requests) - 1} calls"
            )
        return _as_response(self._queue.popleft(), self.provider)

    def assert_consumed(self) -> None:
        """Fail if any scripted decision was never asked for."""
        if self._queue:
            raise AssertionError(f"ScriptedModel has {len(self._queue)} unused decisions")
