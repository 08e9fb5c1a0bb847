"""The small HTML pages of the approval links."""

from __future__ import annotations

import json
from html import escape

from fastapi.responses import HTMLResponse

from bot.events import HumanRequested
from channels.email._links import LinkClaim

__all__ = ["confirm_page", "message_page"]

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · opsloop</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}"
        "th{text-align:left;padding-right:1em}button{padding:.5em 1.5em;font-size:1em}"
        "textarea{width:100%}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def message_page(title: str, text: str, status: int = 200) -> HTMLResponse:
    """A page that only says something."""
    return _page(title, f"<p>{escape(text)}</p>", status)


def confirm_page(claim: LinkClaim, request: HumanRequested) -> HTMLResponse:
    """The exact action, and one button that decides (with a reason field for Reject)."""
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td><code>{escape(_shown(value))}</code></td></tr>"
        for name, value in (request.arguments or {}).items()
    )
    verb = "Approve" if claim.decision == "approve" else "Reject"
    reason = (
        '<p><label>Reason (required)<br><textarea name="reason" rows="3" required></textarea>'
        "</label></p>"
        if claim.decision == "reject"
        else ""
    )
    body = (
        f"<p>{escape(request.question)}</p>"
        f"<table><tr><th>action</th><td><code>{escape(request.tool or '')}</code></td></tr>{rows}"
        f"<tr><th>requested by</th><td>{escape(request.requested_by or 'unknown')}</td></tr>"
        f"<tr><th>expires</th><td>{request.expires_at:%Y-%m-%d %H:%M} UTC</td></tr></table>"
        f"<p>You are deciding as <b>{escape(claim.address)}</b>.</p>"
        f'<form method="post">{reason}<button type="submit">{verb}</button></form>'
    )
    return _page(f"{verb} request {request.request_id}?", body)
