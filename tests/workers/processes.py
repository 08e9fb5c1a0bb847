"""Stopping the real worker processes the worker tests start."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from typing import IO, Any


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], logs: Iterable[IO[Any]]) -> None:
    """Stop each process warmly (its pool with it), killing its group if it will not go."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()  # warm shutdown: the main process stops its pool itself
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    for log in logs:
        log.close()
