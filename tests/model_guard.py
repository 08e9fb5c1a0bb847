"""A pytest plugin that makes any real model request fail loudly.

Both model SDKs send through ``httpx2``. Its real transports are replaced by one that raises,
so a test that forgot to inject a mock transport (or a fake model) fails at once instead of
calling a paid API; ``httpx2.MockTransport`` is a different class and works as usual. The
provider environment variables are removed too, so nothing picks a real provider from the
developer's shell. Register with ``pytest_plugins = ["tests.model_guard"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

PROVIDER_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPSLOOP_MODELS",
)


@pytest.fixture(autouse=True)
def _no_real_model_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The SDKs wrap transport errors in their own connection error, which the model layer
    # turns into "unavailable" and a fallback chain may absorb: so the attempt is also
    # remembered, and the test fails at teardown whatever became of the error.
    attempts: list[str] = []

    def refuse(request: httpx2.Request) -> RuntimeError:
        attempts.append(str(request.url))
        return RuntimeError(f"a test tried to reach a real model API: {request.url}")

    def handle_request(self: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        raise refuse(request)

    async def handle_async_request(
        self: httpx2.AsyncHTTPTransport, request: httpx2.Request
    ) -> httpx2.Response:
        raise refuse(request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", handle_request)
    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle_async_request)
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    if attempts:
        pytest.fail(f"a test tried to reach a real model API: {', '.join(attempts)}")
