"""Turning templates into pages: one autoescaping Jinja environment, filters, safe headers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.app import Opsloop
from bot.events import Identity, ThreadStatus
from channels.web._signin import csrf_token

__all__ = ["STATIC_DIR", "page", "roles_of", "signed_in_as", "status_label"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

SECURITY_HEADERS = {
    # Nothing but our own files: no inline script, no CDN, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


STATUS_LABELS: dict[str, tuple[str, str]] = {
    "running": ("working", "the agent is working on it"),
    "waiting": ("answered", "the agent answered; waiting for the next message"),
    "paused": ("paused", "paused: nothing is pending; an operator can resume it"),
    "failed": ("failed", "stopped on an error it could not recover from"),
    "done": ("done", "closed for good"),
}
"""How the console names a thread status (the API's values stay as they are), and a tooltip."""

PENDING_LABELS: dict[str, tuple[str, str]] = {
    "approval": ("waiting for approval", "a step waits for an approver's decision"),
    "question": ("waiting for an answer", "the agent asked a question and waits for the answer"),
}
"""How the console names a paused thread with a pending human request, by request type."""

FILTER_HINTS: dict[str, str] = {
    "paused": "waiting for approval or an answer, or paused by an operator",
}


def status_label(status: str, pending: Iterable[str] = ()) -> tuple[str, str]:
    """The console's words for a thread ``status`` and a tooltip.

    ``pending`` holds the types of the thread's pending human requests (``approval``,
    ``question``): a paused thread with one waits for approval or an answer.
    """
    label = STATUS_LABELS.get(status, (status, f"status {status}"))
    types = set(pending)
    if status == "paused" and types:
        return PENDING_LABELS["approval" if "approval" in types else "question"]
    return label


def _status_filters() -> list[tuple[str, str, str]]:
    """The thread list's filters: API value, label, tooltip."""
    filters = []
    for status in ThreadStatus:
        label, hint = status_label(status.value)
        filters.append((status.value, label, FILTER_HINTS.get(status.value, hint)))
    return filters


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _when(value: datetime | None) -> str:
    """``2026-05-04 12:34:56 UTC``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _clock(value: datetime) -> str:
    """``12:34:56.789``, for events within one thread."""
    return value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def _ago(value: datetime) -> str:
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now" if seconds < 10 else f"{seconds} s ago"


def _usd(value: float) -> str:
    return f"${value:,.6f}" if 0 < value < 0.01 else f"${value:,.4f}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _compact(value: Any) -> str:
    """A value on one line when it is short, else indented."""
    if isinstance(value, str):
        return value
    line = json.dumps(value, ensure_ascii=False)
    return line if len(line) <= 80 else _pretty(value)


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=_when, minute=_minute, clock=_clock, ago=_ago, usd=_usd, pretty=_pretty, compact=_compact
)
_env.globals["asset_version"] = _asset_version()
_env.globals["status_label"] = status_label
_env.globals["status_filters"] = _status_filters()


def signed_in_as(request: Request) -> Identity | None:
    """Who this request's console session signed in (checked earlier in the request)."""
    session = getattr(request.state, "console_session", None)
    identity: Identity | None = session.identity if session is not None else None
    return identity


def roles_of(request: Request, who: Identity) -> list[str]:
    """The policy roles ``who`` holds."""
    ops: Opsloop = request.app.state.ops
    return sorted(ops.runtime.policy.roles_of(who))


AUTH_LABELS: dict[str, str] = {
    "login-link": "signed in with a one-time link",
    "admin": "signed in with the API token (admin)",
    "oidc": "signed in with single sign-on",
    "dev": "development identity: anyone can pick it",
}
"""How the header explains a session's authentication."""


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the header's context, behind strict security headers."""
    me = signed_in_as(request)
    ops: Opsloop | None = getattr(request.app.state, "ops", None)
    settings = request.app.state.settings
    known: list[str] = []
    if ops and settings.dev_identities:
        principals = ops.runtime.policy.known_principals()
        known = sorted(m.removeprefix("web:") for m in principals if m.startswith("web:"))
    context.setdefault("nav", "")
    signed_in = getattr(request.state, "console_session", None) is not None
    html = _env.get_template(template).render(
        me=me,
        my_roles=roles_of(request, me) if ops and me else [],
        auth_label=AUTH_LABELS.get(me.auth or "", me.auth or "") if me else "",
        known_users=known,
        dev_identities=settings.dev_identities,
        signed_in=signed_in,
        csrf=csrf_token(request) if signed_in else "",
        console_url=settings.console_url,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
