"""A runbook's ``[command]`` action: one program, never a shell, bounded and scrubbed.

Each argv template becomes exactly one argument, whatever the values hold (spaces, quotes,
``;``), because the program is started with :func:`asyncio.create_subprocess_exec`. The
program gets only the variables the runbook passes, in a process group of its own, which
is killed whole when the time is up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.declared.runbooks._model import CommandAction
from bot.declared.runbooks._secrets import Lookups
from bot.declared.runbooks._template import Template
from bot.errors import ToolError

__all__ = ["CommandPlan", "run_command"]

SNIPPET = 300
"""Characters of stderr quoted when a command fails."""
_CHUNK = 65536


@dataclass(frozen=True)
class CommandPlan:
    """A ``[command]`` table with its templates parsed."""

    action: CommandAction
    """The table as written."""
    argv: tuple[Template, ...]
    """One template per argument."""
    env: Mapping[str, Template]
    """Variable templates by name."""
    cwd: Path
    """The working directory, resolved against the runbook's folder."""


async def _drain(stream: asyncio.StreamReader | None, keep: int) -> tuple[bytes, bool]:
    """The first ``keep`` bytes and whether there were more.

    Reads to the end regardless, so a chatty program never blocks on a full pipe.
    """
    data = bytearray()
    more = False
    while stream is not None and (chunk := await stream.read(_CHUNK)):
        room = keep - len(data)
        data += chunk[:room] if room > 0 else b""
        more = more or len(chunk) > room
    return bytes(data), more


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


async def run_command(
    plan: CommandPlan, values: Mapping[str, Any], lookups: Lookups, idempotency_key: str
) -> dict[str, Any]:
    """Run the command; its exit code and (capped, scrubbed) stdout and stderr.

    Raises:
        ToolError: the program is missing, it timed out, or it exited with a code the
            runbook does not expect. The message may quote a secret; the caller scrubs it.
    """
    action = plan.action
    argv = [template.render(values, lookups) for template in plan.argv]
    env = {name: os.environ[name] for name in action.pass_env if name in os.environ}
    env |= {name: template.render(values, lookups) for name, template in plan.env.items()}
    env["OPSLOOP_IDEMPOTENCY_KEY"] = idempotency_key
    if not plan.cwd.is_dir():
        raise ToolError(f"the working directory {plan.cwd} does not exist")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=plan.cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    keep = action.max_bytes + lookups.margin
    try:
        async with asyncio.timeout(action.timeout_seconds):
            (out, more_out), (err, more_err), code = await asyncio.gather(
                _drain(process.stdout, keep), _drain(process.stderr, keep), process.wait()
            )
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        raise ToolError(
            f"{argv[0]} did not finish within {action.timeout_seconds:g}s; its process "
            "group was killed"
        ) from None
    stdout, cut_out = lookups.capped(out, action.max_bytes, more=more_out)
    stderr, cut_err = lookups.capped(err, action.max_bytes, more=more_err)
    if code not in action.expect_exit:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        tail = " ".join(stderr[-SNIPPET:].split())
        raise ToolError(
            f"{argv[0]} {how}, expected {', '.join(map(str, action.expect_exit))}; "
            f"stderr (untrusted data): {tail!r}"
        )
    result: dict[str, Any] = {"exit_code": code, "stdout": stdout, "stderr": stderr}
    cut = [name for name, was_cut in (("stdout", cut_out), ("stderr", cut_err)) if was_cut]
    if cut:
        result["truncated"] = f"{' and '.join(cut)} cut at {action.max_bytes} bytes"
    return result
