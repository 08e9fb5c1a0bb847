"""The console's Tools page: every tool in force, where it came from and who approves it.

The page shows the report ``opsloop tools list`` and ``GET /api/tools`` show
(:func:`bot.policy_check.check_runtime`: the runtime's policy, tools and agents, and the
tool sources that could not be read), with the policy check's warnings above the table.
Anyone signed in may read it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bot.api import console_session
from bot.app import Opsloop
from bot.policy_check import check_runtime, tools_in_force
from bot.tools import Tool
from channels.web._render import page

__all__ = ["router", "tool_sources"]

router = APIRouter(include_in_schema=False)


def tool_sources(ops: Opsloop) -> dict[str, Tool]:
    """Every tool in force that is not built-in, by name: the timeline tags their calls."""
    rt = ops.runtime
    return {
        name: tool
        for name, tool in tools_in_force(rt.tools, rt.agents.agents).items()
        if tool.source != "built-in"
    }


@router.get("/tools")
async def tools_page(request: Request) -> Response:
    """Every tool in force: source, tier, agents, what it touches and the deciding rules."""
    if await console_session(request) is None:
        return RedirectResponse("/login", status_code=303)
    ops: Opsloop = request.app.state.ops
    report = check_runtime(ops.runtime)
    return page(request, "tools.html", nav="tools", report=report)
