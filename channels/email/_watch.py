"""The email gateway: watch a mailbox and hand each new mail to ingest, exactly once.

The UIDVALIDITY and the last UID handled are kept in the database after every mail, so
a restart neither misses nor repeats mail (and a repeat would be a duplicate anyway: the
inbox key is the Message-ID). Connection trouble means reconnecting with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import timedelta

from bot.errors import UserFacingError
from bot.plugins import ChannelContext
from channels.email._imap import ImapMailbox
from channels.email._inbound import Inbound, MailReader
from channels.email._send import EmailSender
from channels.email._settings import EmailSettings
from channels.email._state import MailState, SqlMailState

__all__ = ["MailWatcher"]

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0


class MailWatcher:
    """Reads the configured mailbox for as long as it runs (see the module docstring)."""

    def __init__(
        self,
        settings: EmailSettings,
        context: ChannelContext,
        *,
        state: MailState | None = None,
        connect: Callable[[EmailSettings], ImapMailbox] = ImapMailbox,
        sender: EmailSender | None = None,
    ) -> None:
        """Watch for ``context``; ``connect`` makes the IMAP connection (tests inject it).

        ``sender`` answers mail that decided nothing (default: SMTP from ``settings``).
        """
        self.settings = settings
        self.context = context
        self.state = state or SqlMailState(context.ops.store.db)
        self.reader = MailReader(
            settings, context.ops.store, self.state, lambda: context.ops.runtime.policy
        )
        self.connect = connect
        self.sender = sender or EmailSender(settings, policy=context.ops.runtime.policy)
        self.key = f"{settings.imap_user}@{settings.imap_host}/{settings.imap_mailbox}"
        self.last_uid = 0
        """The last UID handled (for tests and logs)."""
        self.connections = 0
        """How many times a connection was opened."""
        self.passes = 0
        """How many times the mailbox was read up to its end."""
        self.mailbox: ImapMailbox | None = None
        """The current connection."""
        self.changed = asyncio.Condition()

    async def run(self) -> None:
        """Watch until cancelled, reconnecting with exponential backoff."""
        failures = 0
        while True:
            mailbox = self.mailbox = self.connect(self.settings)
            try:
                status = await mailbox.open()
                await self._notify(connections=self.connections + 1)
                while True:
                    await self._catch_up(mailbox, status.uidvalidity, status.uidnext)
                    failures = 0
                    await self._notify(passes=self.passes + 1)
                    await mailbox.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(MAX_BACKOFF, 2.0 ** (failures - 1)) * (0.5 + random.random() / 2)
                log.warning(
                    "email: %s: %s: %s; reconnecting in %.1fs",
                    self.key,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                await mailbox.close()

    @property
    def idle(self) -> bool:
        """Whether the current connection waits with IDLE (else it polls)."""
        return self.mailbox is not None and self.mailbox.idle

    async def _catch_up(self, mailbox: ImapMailbox, uidvalidity: int, uidnext: int | None) -> None:
        cursor = await self.state.cursor(self.key)
        if cursor is None:
            # First start: mail from before opsloop watched is history, not requests.
            start = uidnext - 1 if uidnext else await _highest_uid(mailbox)
            await self.state.save_cursor(self.key, uidvalidity, start)
            log.info("email: watching %s from UID %s on", self.key, start + 1)
            cursor = await self.state.cursor(self.key)
            assert cursor is not None
        elif cursor.uidvalidity != uidvalidity:
            # The mailbox was rebuilt and its UIDs renumbered: read again what arrived since
            # the last mail handled; mail seen before is a duplicate and dropped by ingest.
            day = (cursor.updated_at - timedelta(days=1)).strftime("%d-%b-%Y")
            log.warning("email: %s UIDVALIDITY changed; re-reading mail since %s", self.key, day)
            for uid in await mailbox.uids_since(day):
                await self._handle(mailbox, uid, None)
            last = await _highest_uid(mailbox)
            await self.state.save_cursor(self.key, uidvalidity, last)
            cursor = await self.state.cursor(self.key)
            assert cursor is not None
        for uid, size in await mailbox.new_messages(cursor.last_uid):
            await self._handle(mailbox, uid, size)
            await self.state.save_cursor(self.key, uidvalidity, uid)
            await self._notify(last_uid=uid)

    async def _handle(self, mailbox: ImapMailbox, uid: int, size: int | None) -> None:
        """Read one mail and accept or record it; only storage trouble propagates."""
        if size is not None and size > self.settings.max_bytes:
            header = await mailbox.fetch(uid, headers_only=True)
            inbound = self.reader.oversized(header or b"", size)
        else:
            raw = await mailbox.fetch(uid)
            if raw is None:
                return  # deleted meanwhile
            if len(raw) > self.settings.max_bytes:
                inbound = self.reader.oversized(raw.split(b"\r\n\r\n", 1)[0], len(raw))
            else:
                inbound = await self.reader.read(raw)
        await self._apply(inbound)

    async def _apply(self, inbound: Inbound) -> None:
        if inbound.refused is None:
            try:
                await self.context.accept(inbound.event)
                return
            except UserFacingError as exc:
                inbound = await self.reader.refusal_of(inbound, str(exc))
        log.info("email: %s refused: %s", inbound.event.idempotency_key, inbound.refused)
        # Stored failed in one write: no crash can leave it pending for the sweeper.
        await self.context.ops.store.ingest(
            inbound.event, refused=inbound.refused, thread_id=inbound.thread_id
        )
        if inbound.notice is not None:
            await self._tell(inbound)

    async def _tell(self, inbound: Inbound) -> None:
        """Mail the sender why their mail decided nothing; trouble is logged, not retried.

        The refusal is already recorded (the console and API show it); a mail server that
        is down must not stop the mailbox being read.
        """
        assert inbound.notice is not None
        conversation = inbound.event.conversation
        try:
            await self.sender.send_notice(
                self.state,
                inbound.notice,
                room=conversation.room,
                thread_key=conversation.thread_key,
            )
        except Exception as exc:
            log.warning(
                "email: could not tell %s why their mail decided nothing: %s: %s",
                inbound.notice.to,
                type(exc).__name__,
                exc,
            )

    async def _notify(self, **changes: int) -> None:
        async with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[MailWatcher], bool]) -> None:
        """Wait until ``predicate(self)`` holds (for tests and supervisors)."""
        async with self.changed:
            await self.changed.wait_for(lambda: predicate(self))


async def _highest_uid(mailbox: ImapMailbox) -> int:
    return max((uid for uid, _ in await mailbox.new_messages(0)), default=0)
