"""Retries, the circuit breaker, the fallback chain and provider failure classification."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.errors import ModelError, ModelUnavailableError
from bot.events import Reply
from bot.model import (
    BreakerModel,
    CircuitBreaker,
    FallbackModel,
    FunctionModel,
    ModelRequest,
    ModelResponse,
    RetryingModel,
)
from bot.model._provider_errors import parse_retry_after, status_error

REQUEST = ModelRequest(agent="ops", system="system", context="context")
ANSWER = Reply(text="done")


def scripted(*outcomes, provider: str = "alpha", model_name: str = "alpha-1") -> FunctionModel:
    """A model that raises or answers with each outcome in turn."""
    queue = list(outcomes)

    def fn(request):
        outcome = queue.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    model = FunctionModel(fn, model_name=model_name)
    model.provider = provider
    return model


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable(retry_after: float | None = None) -> ModelUnavailableError:
    return ModelUnavailableError("alpha had a server error (HTTP 503)", retry_after=retry_after)


# ---------------------------------------------------------------- retries


async def test_retries_back_off_exponentially_then_succeed():
    inner = scripted(unavailable(), unavailable(), ANSWER)
    sleep = FakeSleep()
    model = RetryingModel(inner, retries=2, sleep=sleep, jitter=lambda: 0.0)

    response = await model.request(REQUEST)

    assert response.decision == ANSWER
    assert len(inner.requests) == 3
    # equal jitter at its minimum: half of 0.5s, then half of 1s
    assert sleep.delays == [0.25, 0.5]


async def test_backoff_is_capped_by_max_delay():
    inner = scripted(*[unavailable()] * 4, ANSWER)
    sleep = FakeSleep()
    model = RetryingModel(
        inner, retries=4, sleep=sleep, base_delay=1.0, max_delay=3.0, jitter=lambda: 1.0
    )

    await model.request(REQUEST)

    assert sleep.delays == [1.0, 2.0, 3.0, 3.0]


async def test_retry_waits_exactly_what_retry_after_asks():
    inner = scripted(unavailable(retry_after=7), ANSWER)
    sleep = FakeSleep()
    model = RetryingModel(inner, retries=2, sleep=sleep, max_delay=20)

    response = await model.request(REQUEST)

    assert response.decision == ANSWER
    assert sleep.delays == [7]


async def test_retry_after_beyond_max_delay_gives_up_at_once():
    inner = scripted(unavailable(retry_after=120), ANSWER)
    sleep = FakeSleep()
    model = RetryingModel(inner, retries=3, sleep=sleep, max_delay=20)

    with pytest.raises(ModelUnavailableError) as caught:
        await model.request(REQUEST)

    assert caught.value.retry_after == 120
    assert sleep.delays == []
    assert len(inner.requests) == 1


async def test_retries_run_out():
    inner = scripted(unavailable(), unavailable(), unavailable())
    sleep = FakeSleep()
    model = RetryingModel(inner, retries=2, sleep=sleep)

    with pytest.raises(ModelUnavailableError):
        await model.request(REQUEST)

    assert len(inner.requests) == 3
    assert len(sleep.delays) == 2


async def test_a_rejected_request_is_not_retried():
    inner = scripted(ModelError("alpha rejected the request (HTTP 400)"), ANSWER)
    sleep = FakeSleep()
    model = RetryingModel(inner, retries=3, sleep=sleep)

    with pytest.raises(ModelError, match="HTTP 400"):
        await model.request(REQUEST)

    assert len(inner.requests) == 1
    assert sleep.delays == []


def test_wrappers_name_the_primary_model():
    inner = scripted(provider="anthropic", model_name="claude-haiku-4-5")
    wrapped = BreakerModel(RetryingModel(inner, retries=1), CircuitBreaker())
    chain = FallbackModel([wrapped, scripted(provider="openai", model_name="gpt-4o")])

    assert (wrapped.provider, wrapped.model_name) == ("anthropic", "claude-haiku-4-5")
    assert (chain.provider, chain.model_name) == ("anthropic", "claude-haiku-4-5")


# ---------------------------------------------------------------- circuit breaker


async def test_breaker_opens_after_consecutive_failures_and_stops_calling():
    clock = FakeClock()
    inner = scripted(*[unavailable()] * 3, ANSWER)
    model = BreakerModel(inner, CircuitBreaker(failures=3, reset=30, clock=clock))

    for _ in range(3):
        with pytest.raises(ModelUnavailableError, match="HTTP 503"):
            await model.request(REQUEST)
    clock.now += 10
    with pytest.raises(ModelUnavailableError, match="circuit open for alpha") as caught:
        await model.request(REQUEST)

    assert model.breaker.state == "open"
    assert caught.value.retry_after == 20
    assert len(inner.requests) == 3


async def test_half_open_trial_success_closes_the_circuit():
    clock = FakeClock()
    inner = scripted(unavailable(), unavailable(), ANSWER, ANSWER)
    model = BreakerModel(inner, CircuitBreaker(failures=2, reset=30, clock=clock))
    for _ in range(2):
        with pytest.raises(ModelUnavailableError):
            await model.request(REQUEST)

    clock.now += 30
    assert model.breaker.state == "half_open"
    trial = await model.request(REQUEST)

    assert trial.decision == ANSWER
    assert model.breaker.state == "closed"
    assert (await model.request(REQUEST)).decision == ANSWER


async def test_half_open_trial_failure_opens_the_circuit_again():
    clock = FakeClock()
    inner = scripted(unavailable(), unavailable(), ANSWER)
    model = BreakerModel(inner, CircuitBreaker(failures=1, reset=30, clock=clock))
    with pytest.raises(ModelUnavailableError):
        await model.request(REQUEST)

    clock.now += 30
    with pytest.raises(ModelUnavailableError, match="HTTP 503"):
        await model.request(REQUEST)  # the trial, which fails

    assert model.breaker.state == "open"
    with pytest.raises(ModelUnavailableError, match="circuit open"):
        await model.request(REQUEST)
    assert len(inner.requests) == 2


def test_half_open_admits_one_trial_at_a_time():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, reset=5, clock=clock)
    breaker.record_failure()
    clock.now += 5

    assert breaker.allow() is True
    assert breaker.allow() is False
    breaker.release()  # the trial was cancelled: the next caller may try
    assert breaker.allow() is True


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker(failures=3, reset=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


async def test_rejected_requests_do_not_open_the_circuit():
    bad = [ModelError("alpha rejected the request (HTTP 400)")] * 3
    model = BreakerModel(scripted(*bad), CircuitBreaker(failures=2, clock=FakeClock()))

    for _ in range(3):
        with pytest.raises(ModelError, match="HTTP 400"):
            await model.request(REQUEST)

    assert model.breaker.state == "closed"


async def test_a_cancelled_trial_frees_the_half_open_circuit():
    clock = FakeClock()
    started = asyncio.Event()

    async def hang(request):
        started.set()
        await asyncio.Event().wait()

    model = BreakerModel(FunctionModel(hang), CircuitBreaker(failures=1, reset=5, clock=clock))
    model.breaker.record_failure()
    clock.now += 5
    task = asyncio.create_task(model.request(REQUEST))
    await started.wait()
    assert model.breaker.allow() is False  # the trial is running

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert model.breaker.allow() is True


# ---------------------------------------------------------------- fallback


async def test_fallback_moves_on_when_unavailable_and_names_who_answered():
    first = scripted(unavailable(), provider="anthropic", model_name="claude-haiku-4-5")
    second = scripted(ANSWER, provider="openai", model_name="gpt-4.1-mini")
    third = scripted(ANSWER, provider="offline", model_name="offline-patterns")

    response = await FallbackModel([first, second, third]).request(REQUEST)

    assert response.decision == ANSWER
    assert response.provider == "openai"
    assert len(first.requests) == 1
    assert len(second.requests) == 1
    assert third.requests == []


async def test_fallback_keeps_the_response_of_the_provider_that_answered():
    first = scripted(unavailable(), provider="anthropic")

    async def answer(request):
        return ModelResponse(decision=ANSWER, provider="openai", model="gpt-4.1-mini-2025-04-14")

    second = FunctionModel(answer, model_name="gpt-4.1-mini")

    response = await FallbackModel([first, second]).request(REQUEST)

    assert (response.provider, response.model) == ("openai", "gpt-4.1-mini-2025-04-14")


async def test_fallback_does_not_move_on_after_a_rejected_request():
    first = scripted(ModelError("anthropic rejected the request (HTTP 400): bad"))
    second = scripted(ANSWER, provider="openai")

    with pytest.raises(ModelError, match="HTTP 400"):
        await FallbackModel([first, second]).request(REQUEST)

    assert second.requests == []


async def test_when_all_fail_one_line_names_each_failure():
    first = scripted(
        ModelUnavailableError("anthropic rate limited us (HTTP 429)", retry_after=30),
        provider="anthropic",
        model_name="claude-haiku-4-5",
    )
    second = scripted(
        ModelUnavailableError("openai timed out\nafter 60s", retry_after=None),
        provider="openai",
        model_name="gpt-4.1-mini",
    )
    third = scripted(
        ModelUnavailableError("circuit open for openai", retry_after=12),
        provider="openai",
        model_name="gpt-4o",
    )

    with pytest.raises(ModelUnavailableError) as caught:
        await FallbackModel([first, second, third]).request(REQUEST)

    assert str(caught.value) == (
        "every model failed: anthropic:claude-haiku-4-5: anthropic rate limited us (HTTP 429); "
        "openai:gpt-4.1-mini: openai timed out after 60s; "
        "openai:gpt-4o: circuit open for openai"
    )
    assert caught.value.retry_after == 12


def test_fallback_needs_a_model():
    with pytest.raises(ValueError, match="at least one"):
        FallbackModel([])


async def test_closing_a_chain_closes_every_model():
    closed: list[str] = []

    class Closable(FunctionModel):
        async def aclose(self) -> None:
            closed.append(self.model_name)

    chain = FallbackModel(
        [
            BreakerModel(
                RetryingModel(Closable(lambda r: None, model_name="a"), 1), CircuitBreaker()
            ),
            Closable(lambda r: None, model_name="b"),
        ]
    )

    await chain.aclose()

    assert closed == ["a", "b"]


# ---------------------------------------------------------------- classifying failures


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "Sat, 21 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"retry-after": "Sat, 21 Nov 2026 11:59:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    noon = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after(headers, now=lambda: noon) == expected


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_unavailable(status):
    error = status_error("openai", status, {"retry-after": "3"}, "busy", secret="sk-x")

    assert isinstance(error, ModelUnavailableError)
    assert error.retry_after == 3.0
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_statuses_are_plain_model_errors(status):
    error = status_error("openai", status, {}, "sk-secret-key is wrong", secret="sk-secret-key")

    assert type(error) is ModelError
    assert "sk-secret-key" not in str(error)


def test_a_long_explanation_is_cut_short():
    error = status_error("anthropic", 400, {}, "word " * 100, secret="k")

    assert len(str(error)) < 220
    assert str(error).endswith("...")
