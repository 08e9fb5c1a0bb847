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

from bot.declared._secrets import Lookups
from bot.declared.runbooks._model import CommandAction
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


async def _drain(stream: asyncio.StreamReader, keep: int) -> tuple[bytes, bool]:
    """The first ``keep`` bytes and whether there were more.

    Reads to the end regardless, so a chatty program never blocks on a full pipe.
    """
    data = bytearray()
    more = False
    while chunk := await stream.read(_CHUNK):
        room = keep - len(data)
        data += chunk[:room] if room > 0 else b""
        more = more or len(chunk) > room
    return bytes(data), more


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


async def _pipe(closing: list[asyncio.BaseTransport]) -> tuple[int, asyncio.StreamReader]:
    """A pipe whose write end is for the command and whose read end is ours.

    Ours to close, even while something the command left running still holds the write
    end (``Process.wait()`` on ``PIPE`` would wait for that forever).
    """
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    closing.append(transport)
    return write_fd, reader


async def _run(
    argv: list[str], action: CommandAction, cwd: Path, env: dict[str, str], keep: int
) -> tuple[int, tuple[bytes, bool], tuple[bytes, bool]]:
    closing: list[asyncio.BaseTransport] = []
    try:
        (out_fd, out), (err_fd, err) = await _pipe(closing), await _pipe(closing)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_fd,
                stderr=err_fd,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        finally:
            os.close(out_fd)
            os.close(err_fd)
        try:
            async with asyncio.timeout(action.timeout_seconds):
                stdout, stderr, code = await asyncio.gather(
                    _drain(out, keep), _drain(err, keep), process.wait()
                )
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            raise ToolError(
                f"{argv[0]} did not finish within {action.timeout_seconds:g}s (or left "
                "something running that kept its output open); its process group was killed"
            ) from None
        return code, stdout, stderr
    finally:
        for transport in closing:
            transport.close()


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
    keep = action.max_bytes + lookups.margin
    code, (out, more_out), (err, more_err) = await _run(argv, action, plan.cwd, env, keep)
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
