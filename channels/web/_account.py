"""The signed-in person's own console sessions and API tokens; the admin sees everyone's."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bot.api import console_session, sessions_of
from bot.events import utcnow
from bot.store import ConsoleSession
from channels.web._render import page
from channels.web._signin import CSRF_FIELD, check_csrf, end_session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ADMIN_PRINCIPAL = "admin:admin"


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (first value of each), after the CSRF check."""
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=20)
    form = {name: values[0] for name, values in raw.items()}
    check_csrf(request, form.get(CSRF_FIELD))
    return form


async def _current(request: Request) -> ConsoleSession | None:
    return await console_session(request)


def _is_admin(session: ConsoleSession) -> bool:
    return session.principal == ADMIN_PRINCIPAL


@router.get("/sessions")
async def sessions(request: Request) -> Response:
    """Your console sessions (everyone's for the admin), the current one marked."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    everyone = _is_admin(current)
    found = await sessions_of(request).list_sessions(
        principal=None if everyone else current.principal
    )
    return page(
        request,
        "sessions.html",
        nav="sessions",
        sessions=found,
        current=current.id,
        everyone=everyone,
        now=utcnow(),
        revoked=request.query_params.get("revoked"),
    )


@router.post("/sessions/{session_id}/revoke")
async def revoke_session(session_id: str, request: Request) -> Response:
    """Revoke one of your sessions (the admin: anyone's); revoking this one signs you out."""
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    await _form(request)
    if session_id == current.id:
        await end_session(request)
        return RedirectResponse("/login", status_code=303)
    owner = None if _is_admin(current) else current.principal
    done = await sessions_of(request).revoke(session_id, principal=owner)
    where = f"/sessions?revoked={session_id}" if done else "/sessions?revoked="
    return RedirectResponse(where, status_code=303)
