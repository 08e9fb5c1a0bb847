"""Fixtures for the MCP tests: loopback HTTP is allowed (the test's own MCP server)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

_REAL = httpx2.AsyncHTTPTransport.handle_async_request
"""The real transport, taken before the model guard replaces it for each test."""


@pytest.fixture(autouse=True)
def _loopback_http_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The guard refuses every real HTTP request (no test may reach a model API); an MCP
    # server on 127.0.0.1 that the test itself serves is no model API.
    guarded = httpx2.AsyncHTTPTransport.handle_async_request

    async def handle(self: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> Any:
        if request.url.host == "127.0.0.1":
            return await _REAL(self, request)
        return await guarded(self, request)

    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle)
