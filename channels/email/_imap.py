"""The IMAP side, on aioimaplib: open a mailbox, list and fetch by UID, wait for news.

Waiting uses IDLE where the server offers it and polls otherwise; a dropped connection
ends the wait with :class:`ImapError` so the watcher reconnects.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aioimaplib import aioimaplib  # type: ignore[import-untyped]

from channels.email._settings import EmailSettings

__all__ = ["ImapError", "ImapMailbox", "MailboxStatus"]


class ImapError(Exception):
    """The server refused a command, or the connection went away."""


@dataclass(frozen=True)
class MailboxStatus:
    """What SELECT said about the mailbox."""

    uidvalidity: int
    uidnext: int | None


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    """One logged-in connection with the watched mailbox selected."""

    def __init__(self, settings: EmailSettings, tls_context: ssl.SSLContext | None = None) -> None:
        """Prepare a connection (:meth:`open` makes it)."""
        self.settings = settings
        self.tls_context = tls_context
        self.client: aioimaplib.IMAP4 | None = None
        self.lost = asyncio.Event()

    @property
    def idle(self) -> bool:
        """Whether the server offers IDLE."""
        return self.client is not None and self.client.has_capability("IDLE")

    async def _call(self, operation: Awaitable[Any]) -> Any:
        """Await one client operation, or fail as soon as the connection is lost.

        aioimaplib leaves a command waiting forever when the connection drops under it.
        """
        task = asyncio.ensure_future(operation)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise ImapError("the IMAP connection was lost")
        return task.result()

    def _check(self, response: aioimaplib.Response, what: str) -> aioimaplib.Response:
        if response.result != "OK":
            text = b" ".join(x for x in response.lines if isinstance(x, bytes)).decode(
                errors="replace"
            )
            raise ImapError(f"IMAP {what} failed: {response.result} {text}".strip())
        return response

    async def open(self) -> MailboxStatus:
        """Connect, log in and select the mailbox."""
        s = self.settings
        host, port = s.imap_host or "", s.imap_port_number
        context = self.tls_context or ssl.create_default_context()
        lost = self.lost.set
        if s.imap_tls == "ssl":
            self.client = aioimaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=30)
            self.client.protocol.conn_lost_cb = lambda exc: lost()
        else:
            self.client = aioimaplib.IMAP4(host, port, timeout=30, conn_lost_cb=lambda exc: lost())
        await self._call(self.client.wait_hello_from_server())
        if s.imap_tls == "starttls":
            await self._starttls(host, context)
        password = s.imap_password.get_secret_value() if s.imap_password else ""
        self._check(await self._call(self.client.login(s.imap_user or "", password)), "LOGIN")
        await self._call(self.client.protocol.capability())  # more is offered once logged in
        selected = self._check(
            await self._call(self.client.select(_quoted(s.imap_mailbox))), "SELECT"
        )
        text = b"\n".join(x for x in selected.lines if isinstance(x, bytes))
        validity = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
        uidnext = re.search(rb"\[UIDNEXT (\d+)\]", text)
        if validity is None:
            raise ImapError(f"the server gave no UIDVALIDITY for {s.imap_mailbox}")
        return MailboxStatus(int(validity[1]), int(uidnext[1]) if uidnext else None)

    async def _starttls(self, host: str, context: ssl.SSLContext) -> None:
        # aioimaplib has no STARTTLS of its own: upgrade its transport in place.
        assert self.client is not None
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS (IMAP_TLS=starttls)")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        self._check(await self._call(protocol.execute(command)), "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=host
        )
        await self._call(protocol.capability())

    async def new_messages(self, after_uid: int) -> list[tuple[int, int]]:
        """``(uid, size)`` of every message with a UID above ``after_uid``, in UID order."""
        assert self.client is not None
        response = self._check(
            await self._call(self.client.uid("fetch", f"{after_uid + 1}:*", "(UID RFC822.SIZE)")),
            "FETCH",
        )
        found = {}
        for line in response.lines:
            if isinstance(line, bytes) and b"FETCH" in line:
                uid, size = re.search(rb"UID (\d+)", line), re.search(rb"RFC822\.SIZE (\d+)", line)
                if uid and size and int(uid[1]) > after_uid:  # "n:*" always matches the last
                    found[int(uid[1])] = int(size[1])
        return sorted(found.items())

    async def uids_since(self, day: str) -> list[int]:
        """UIDs of messages that arrived on or after ``day`` (``01-Jan-2026``)."""
        assert self.client is not None
        response = self._check(
            await self._call(self.client.uid_search("SINCE", day, charset=None)), "SEARCH"
        )
        # aioimaplib hands the "* SEARCH 1 2 3" data over as b"1 2 3"
        found: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes) and re.fullmatch(rb"(SEARCH)?[\d ]*", line):
                found |= {int(n) for n in re.findall(rb"\d+", line)}
        return sorted(found)

    async def fetch(self, uid: int, *, headers_only: bool = False) -> bytes | None:
        """The raw message (or its header block); ``None`` if it is gone."""
        assert self.client is not None
        part = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        response = self._check(
            await self._call(self.client.uid("fetch", str(uid), f"({part})")), "FETCH"
        )
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def wait(self) -> None:
        """Return when new mail may have arrived: an IDLE push, or the poll interval."""
        assert self.client is not None
        limit = self.settings.imap_poll_seconds
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            if not self.idle:
                await asyncio.wait({lost}, timeout=limit)
                if not self.lost.is_set():
                    self._check(await self._call(self.client.noop()), "NOOP")
            else:
                await self._idle(lost, limit)
        finally:
            lost.cancel()
        if self.lost.is_set():
            raise ImapError("the IMAP connection was lost")

    async def _idle(self, lost: asyncio.Future[Any], limit: float) -> None:
        assert self.client is not None
        idle = await self._call(self.client.idle_start(timeout=limit))
        try:
            while not self.lost.is_set():
                push = asyncio.ensure_future(self.client.wait_server_push(timeout=limit + 30))
                await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
                if not push.done():
                    push.cancel()
                    break
                lines = push.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH or any(
                    isinstance(x, bytes) and (x.endswith((b"EXISTS", b"EXPUNGE"))) for x in lines
                ):
                    break
        finally:
            if not self.lost.is_set() and self.client.has_pending_idle():
                self.client.idle_done()
                await self._call(asyncio.wait_for(idle, 30))

    async def close(self) -> None:
        """Drop the connection.

        No LOGOUT: the watcher only closes when cancelled or after an error, when a
        command (an interrupted IDLE) may still hold the connection; servers are used to
        clients simply leaving.
        """
        client, self.client = self.client, None
        if client is not None and client.protocol.transport is not None:
            client.protocol.transport.close()
