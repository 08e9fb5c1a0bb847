"""A runbook's ``[http]`` action: one request, checked, bounded and scrubbed."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2

from bot.declared._secrets import Lookups
from bot.declared.runbooks._model import HttpAction
from bot.declared.runbooks._template import Template
from bot.errors import ToolError

__all__ = ["HttpPlan", "run_http"]

MAX_REDIRECTS = 5
"""Redirects followed at most, and only on the same scheme, host and port."""
SNIPPET = 200
"""Characters of an unexpected response's body quoted in the error."""


@cache
def _tls() -> ssl.SSLContext:
    """The default TLS context, made once.

    Loading the trust store is most of a fresh client's cost (about 20 ms a call), and it
    does not change while opsloop runs.
    """
    return httpx2.create_ssl_context()


def _quoted(value: str) -> str:
    """One argument's value in a URL: quoted as a path segment and a query value alike.

    ``/``, ``?``, ``&``, ``=`` and ``#`` are quoted; ``.`` and ``..`` are refused, as the
    client (and the server) would resolve them and send the request to another path.
    """
    if value in (".", ".."):
        raise ToolError(f"{value!r} is not a value for a URL (it would change the path)")
    return quote(value, safe="")


@dataclass(frozen=True)
class HttpPlan:
    """An ``[http]`` table with its templates parsed."""

    action: HttpAction
    """The table as written."""
    url: Template
    """The URL template."""
    headers: Mapping[str, Template]
    """Header templates by name."""
    body: Any
    """The JSON body with a :class:`Template` for every string."""


def _body(template: Any, values: Mapping[str, Any], lookups: Lookups) -> Any:
    if isinstance(template, Template):
        return template.value(values, lookups)
    if isinstance(template, list):
        return [_body(item, values, lookups) for item in template]
    if isinstance(template, dict):
        return {key: _body(item, values, lookups) for key, item in template.items()}
    return template


def _dig(value: Any, path: str) -> Any:
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise ToolError(f"the response has no {path!r} (stopped at {step!r})")
    return value


async def _read(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), True
    return bytes(data), False


def _result(plan: HttpPlan, status: int, ctype: str, text: str, cut: bool) -> dict[str, Any]:
    returns = plan.action.returns
    if returns == "status":
        return {"status": status}
    wants_json = returns.startswith("json") or (returns == "auto" and "json" in ctype)
    if not wants_json or (returns == "auto" and cut):
        body = text + (f"…[cut at {plan.action.max_bytes} bytes]" if cut else "")
        return {"status": status, "body": body, **({"truncated": True} if cut else {})}
    if cut:
        raise ToolError(
            f"the response is over max_bytes ({plan.action.max_bytes}), so its JSON cannot "
            "be read; the runbook should raise max_bytes"
        )
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        raise ToolError(f"the response is not JSON (status {status})") from None
    _, _, path = returns.partition(":")
    return {"status": status, "body": _dig(parsed, path) if path else parsed}


async def run_http(
    plan: HttpPlan, values: Mapping[str, Any], lookups: Lookups, idempotency_key: str
) -> dict[str, Any]:
    """Send the request; the status and the part of the response the runbook returns.

    Raises:
        ToolError: a bad URL, a header with a line break, a redirect to another host, an
            unexpected status, a timeout or a network failure. Its message may quote a
            secret; the caller scrubs it.
    """
    action = plan.action
    url = plan.url.render(values, lookups, _quoted)
    where = urlsplit(url)
    if where.scheme not in ("http", "https") or not where.hostname:
        raise ToolError(f"the URL must be http:// or https:// with a host, not {url!r}")
    headers = {}
    if not any(name.lower() == "idempotency-key" for name in plan.headers):
        headers["Idempotency-Key"] = idempotency_key
    for name, template in plan.headers.items():
        headers[name] = template.render(values, lookups)
        if any(c in headers[name] for c in "\r\n\0"):
            raise ToolError(f"header {name}: a value may not hold a line break")
    origin = httpx2.URL(url)

    async def same_origin(request: httpx2.Request) -> None:
        there = request.url
        if (there.scheme, there.host, there.port) != (origin.scheme, origin.host, origin.port):
            raise ToolError(f"redirected to another host ({there.host}); not followed")

    body = _body(plan.body, values, lookups)
    try:
        async with (
            asyncio.timeout(action.timeout_seconds),
            httpx2.AsyncClient(
                verify=_tls(),
                timeout=action.timeout_seconds,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                event_hooks={"request": [same_origin]},
            ) as client,
            client.stream(
                action.method,
                url,
                headers=headers,
                json=body if action.json_body is not None else None,
            ) as response,
        ):
            data, more = await _read(response, action.max_bytes + lookups.margin)
    except TimeoutError:
        raise ToolError(f"no complete response within {action.timeout_seconds:g}s") from None
    except httpx2.HTTPError as exc:
        raise ToolError(
            f"{action.method} {where.hostname} failed: {type(exc).__name__}: {exc}"
        ) from None
    text, cut = lookups.capped(data, action.max_bytes, more=more)
    status = response.status_code
    expected = action.expect_status
    if (status not in expected) if expected else not 200 <= status < 300:
        shown = " ".join(text[:SNIPPET].split())
        raise ToolError(
            f"{action.method} {where.hostname}{where.path} answered {status}, expected "
            f"{', '.join(map(str, expected)) or '2xx'}; body (untrusted data): {shown!r}"
        )
    return _result(plan, status, response.headers.get("content-type", ""), text, cut)
