"""One email channel wired end to end for a test: Dovecot, aiosmtpd, the watcher, the sender."""

from __future__ import annotations

import asyncio
import re
import ssl
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from bot.app import Opsloop
from bot.events import utcnow
from bot.plugins import ChannelContext
from channels.email import EmailSender, EmailSettings, MailWatcher
from channels.email._imap import ImapMailbox
from tests.channels.email.servers import Dovecot, SmtpServer
from tests.fakes import RecordingDispatcher
from workers import jobs

BOT = "opsloop@example.com"
AUTHSERV = "mx.example.com"
LINK_SECRET = "l" * 32


def email_settings(dovecot: Dovecot, smtp: SmtpServer, mailbox: str, **extra: Any) -> EmailSettings:
    values = {
        "EMAIL_ADDRESS": BOT,
        "IMAP_HOST": dovecot.host,
        "IMAP_PORT": dovecot.port,
        "IMAP_USER": dovecot.user,
        "IMAP_PASSWORD": dovecot.password,
        "IMAP_MAILBOX": mailbox,
        "IMAP_TLS": "none",
        "IMAP_POLL_SECONDS": 0.2,
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": smtp.port,
        "SMTP_TLS": "none",
        "EMAIL_AUTHSERV_ID": AUTHSERV,
        "EMAIL_LINK_SECRET": LINK_SECRET,
        "EMAIL_LINK_BASE_URL": "http://opsloop.test",
        **extra,
    }
    return EmailSettings(**values)


def human_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    auth: str | None = "pass",
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A mail as our receiving server stores it, and its Message-ID (bare).

    ``auth``: ``pass`` / ``fail`` as our server judged DMARC, ``forged`` for a header
    claiming a pass from another server, ``None`` for no verdict at all.
    """
    message_id = f"{uuid.uuid4().hex}@{sender.rpartition('@')[2]}"
    mail = EmailMessage()
    domain = sender.rpartition("@")[2]
    if auth in {"pass", "fail"}:
        mail["Authentication-Results"] = (
            f"{AUTHSERV}; spf={auth} smtp.mailfrom={domain}; "
            f"dkim={auth} header.d={domain}; dmarc={auth} (p=reject) header.from={domain}"
        )
    elif auth == "forged":
        mail["Authentication-Results"] = f"mx.attacker.test; dmarc=pass header.from={domain}"
    mail["From"] = sender
    mail["To"] = BOT
    mail["Subject"] = subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        mail["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return bytes(mail), message_id


def bare(value: object) -> str:
    return str(value).strip().strip("<>")


@dataclass
class Mail:
    """The pieces of one test: servers, app, watcher, sender."""

    dovecot: Dovecot
    smtp: SmtpServer
    mailbox: str
    ops: Opsloop
    settings: EmailSettings
    dispatcher: RecordingDispatcher = field(default_factory=RecordingDispatcher)
    client_tls: ssl.SSLContext | None = None
    """What the bot trusts for IMAP and SMTP TLS (the test certificate)."""
    watcher: MailWatcher | None = None
    task: asyncio.Task[None] | None = None
    done: int = 0

    @property
    def context(self) -> ChannelContext:
        return ChannelContext(ops=self.ops, dispatcher=self.dispatcher)

    @property
    def sender(self) -> EmailSender:
        return EmailSender(
            self.settings, policy=self.ops.runtime.policy, tls_context=self.client_tls
        )

    @property
    def sent(self) -> list[EmailMessage]:
        return self.smtp.recorder.messages

    async def start(self) -> MailWatcher:
        watcher = MailWatcher(
            self.settings,
            self.context,
            connect=lambda settings: ImapMailbox(settings, tls_context=self.client_tls),
        )
        self.watcher, self.task = watcher, asyncio.create_task(watcher.run())
        async with asyncio.timeout(20):
            await watcher.wait_for(lambda w: w.passes >= 1)
        return watcher

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def deliver(self, raw: bytes) -> int:
        """Put a mail in the mailbox and wait until the watcher has handled it."""
        uid = await self.dovecot.append(raw, self.mailbox)
        assert self.watcher is not None
        async with asyncio.timeout(20):
            await self.watcher.wait_for(lambda w: w.last_uid >= uid)
        return uid

    async def work(self) -> None:
        """Do what workers would: process what was enqueued, then deliver its threads."""
        while self.done < len(self.dispatcher.calls):
            kind, arg = self.dispatcher.calls[self.done]
            self.done += 1
            if kind == "process":
                await jobs.process_item(self.ops, self.dispatcher, arg)
            elif kind == "deliver":
                await jobs.deliver_thread(self.ops, {"email": self.sender}, arg)

    async def sent_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        def to(m: EmailMessage) -> bool:
            return address in str(m["To"])

        await self.smtp.recorder.wait_for(lambda ms: sum(map(to, ms)) >= count)
        return [m for m in self.sent if to(m)]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def links_in(message: EmailMessage) -> dict[str, str]:
    found = re.findall(r"^(Approve|Reject):\s+(\S+)", text_of(message), re.MULTILINE)
    return {name.lower(): url for name, url in found}
