"""Fakes the tests share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordingDispatcher:
    """Records what was enqueued; does no work (the test does it, when it wants)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    broken: Exception | None = None
    """Raised by :meth:`ping`, to play a broker that is down."""

    def process(self, item_id: int) -> None:
        self.calls.append(("process", item_id))

    def deliver(self, thread_id: str) -> None:
        self.calls.append(("deliver", thread_id))

    def resume(self, thread_id: str) -> None:
        self.calls.append(("resume", thread_id))

    def ping(self) -> None:
        if self.broken is not None:
            raise self.broken

    def of(self, kind: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == kind]
