"""Staying up when a provider is not: retries, a circuit breaker and a fallback chain.

Each wrapper is itself a :class:`~bot.model.Model`, so they stack: the factory builds
``FallbackModel([BreakerModel(RetryingModel(provider), breaker), ...])``. Only
:class:`~bot.errors.ModelUnavailableError` (timeouts, 429, 5xx, an open circuit) is worth
retrying or falling back on; any other :class:`~bot.errors.ModelError` means the request
itself is wrong and would fail the same way everywhere.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from bot.errors import ModelError, ModelUnavailableError
from bot.model._base import Model, ModelRequest, ModelResponse

__all__ = ["BreakerModel", "CircuitBreaker", "FallbackModel", "RetryingModel"]

DEFAULT_MAX_DELAY = 20.0
"""The longest single wait between retries, in seconds."""


class RetryingModel(Model):
    """Retries a model on :class:`ModelUnavailableError`, honouring ``Retry-After``.

    Without a ``retry_after`` the wait grows exponentially with jitter. With one, the wait is
    exactly what the provider asked for; when that is longer than ``max_delay`` the error is
    raised at once, so a fallback chain moves on instead of stalling.
    """

    def __init__(
        self,
        inner: Model,
        retries: int,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_delay: float = DEFAULT_MAX_DELAY,
        base_delay: float = 0.5,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Wrap ``inner``.

        Args:
            inner: the model to call.
            retries: how many times to retry after the first attempt.
            sleep: waits a number of seconds (injectable for tests).
            max_delay: the longest single wait, in seconds.
            base_delay: the first backoff wait, in seconds; it doubles on each retry.
            jitter: returns a float in ``[0, 1)`` that spreads concurrent retries apart.
        """
        self.inner = inner
        """The wrapped model."""
        self._retries = retries
        self._sleep = sleep
        self._max_delay = max_delay
        self._base_delay = base_delay
        self._jitter = jitter
        self.provider = inner.provider
        self.model_name = inner.model_name

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self._max_delay else None
        backoff = min(self._max_delay, self._base_delay * 2.0**attempt)
        # "Equal jitter": never less than half the backoff, so retries still slow down.
        return backoff / 2 + self._jitter() * backoff / 2

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Call the inner model, retrying transient failures."""
        attempt = 0
        while True:
            try:
                return await self.inner.request(request)
            except ModelUnavailableError as exc:
                delay = self._delay(attempt, exc.retry_after)
                if attempt >= self._retries or delay is None:
                    raise
                await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the inner model."""
        await self.inner.aclose()


class CircuitBreaker:
    """Stops calling a provider that keeps failing, then probes it with one trial call.

    Closed: calls pass; ``failures`` consecutive failures open the circuit. Open: calls are
    refused until ``reset`` seconds pass. Half-open: one trial call passes (others are refused
    while it runs); success closes the circuit, failure opens it again.
    """

    def __init__(
        self, failures: int = 5, reset: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create a closed breaker.

        Args:
            failures: consecutive failures that open the circuit.
            reset: seconds an open circuit waits before letting one trial call through.
            clock: monotonic seconds (injectable for tests).
        """
        self._threshold = failures
        self._reset = reset
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        """Where the breaker stands now."""
        if self._opened_at is None:
            return "closed"
        if self._trial_running or self._clock() - self._opened_at >= self._reset:
            return "half_open"
        return "open"

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial through; 0 when it is not open."""
        if self._opened_at is None or self._trial_running:
            return 0.0
        return max(0.0, self._reset - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go ahead now; a half-open circuit admits one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._trial_running:
            return False
        self._trial_running = True
        return True

    def record_success(self) -> None:
        """The provider answered: close the circuit."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        """The provider was unavailable: count it, and open (or re-open) when due."""
        self._failures += 1
        if self._trial_running or self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._trial_running = False

    def release(self) -> None:
        """A call ended without telling us anything (cancelled, or a bug): free the trial."""
        self._trial_running = False


class BreakerModel(Model):
    """Guards a model with a :class:`CircuitBreaker`; an open circuit fails fast."""

    def __init__(self, inner: Model, breaker: CircuitBreaker) -> None:
        """Wrap ``inner`` with ``breaker``."""
        self.inner = inner
        """The wrapped model."""
        self.breaker = breaker
        """The breaker, exposed for health checks."""
        self.provider = inner.provider
        self.model_name = inner.model_name

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Call the inner model unless the circuit is open."""
        if not self.breaker.allow():
            raise ModelUnavailableError(
                f"circuit open for {self.provider}", retry_after=self.breaker.retry_after()
            )
        try:
            response = await self.inner.request(request)
        except ModelUnavailableError:
            self.breaker.record_failure()
            raise
        except ModelError:
            # A rejected request or an unusable answer still proves the provider is up.
            self.breaker.record_success()
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return response

    async def aclose(self) -> None:
        """Close the inner model."""
        await self.inner.aclose()


class FallbackModel(Model):
    """Tries models in order, moving on only when one is unavailable.

    Any other :class:`ModelError` (a bad request, an unusable answer) is raised as it is:
    another provider would not do better with the same request. The response names the
    provider that actually answered.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        """Chain ``models``, the first being the primary.

        Raises:
            ValueError: when ``models`` is empty.
        """
        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models = tuple(models)
        """The chain, in the order it is tried."""
        self.provider = models[0].provider
        self.model_name = models[0].model_name

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Ask each model in turn until one answers."""
        failures: list[ModelUnavailableError] = []
        for model in self.models:
            try:
                return await model.request(request)
            except ModelUnavailableError as exc:
                failures.append(exc)
        summary = "; ".join(
            f"{model.provider}:{model.model_name}: {' '.join(str(exc).split())}"
            for model, exc in zip(self.models, failures, strict=True)
        )
        waits = [exc.retry_after for exc in failures if exc.retry_after is not None]
        raise ModelUnavailableError(
            f"every model failed: {summary}", retry_after=min(waits) if waits else None
        )

    async def aclose(self) -> None:
        """Close every model in the chain."""
        for model in self.models:
            await model.aclose()
