"""Outbound: deliver each outbox message as mail over SMTP, threaded in its conversation."""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from bot.events import HumanRequested, Identity, UserMessage
from bot.outbound import (
    DecisionNotice,
    OutboundReply,
    RequestProgress,
    RequestPrompt,
    RequestResolved,
)
from bot.plugins import DeliveryContext, DeliveryRetryError
from bot.policy import Policy, load_policy
from bot.store import OutboxItem
from channels.email._cards import (
    card_message_id,
    card_subject,
    progress_text,
    resolution_text,
)
from channels.email._compose import approval_text, build_mail, reply_subject
from channels.email._inbound import Notice
from channels.email._links import make_links
from channels.email._parse import subject_key
from channels.email._settings import EmailSettings, link_key
from channels.email._state import MailRecord, MailState, SqlMailState

__all__ = ["EmailSender", "approver_addresses"]

log = logging.getLogger(__name__)


def approver_addresses(policy: Policy, approvers: Sequence[str]) -> list[str]:
    """The email addresses of ``approvers`` (principals and roles), in policy order."""
    named = policy.principals_named(approvers)
    return list(dict.fromkeys(p[6:].lower() for p in named if p.startswith("email:")))


@dataclass(frozen=True)
class _Mail:
    to: tuple[str, ...]
    text: str
    request_id: str | None = None
    cc: tuple[str, ...] = ()


@dataclass
class EmailSender:
    """The ``email`` channel's :data:`bot.plugins.Sender`."""

    settings: EmailSettings
    """SMTP and address settings."""
    policy: Policy | None = None
    """The policy, to find approvers' addresses; default: the policy file in the settings."""
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)
    """TLS settings for the SMTP connection (default: the system's trusted CAs)."""

    async def __call__(self, item: OutboxItem, context: DeliveryContext) -> None:
        """Send the mail(s) ``item`` calls for; each is sent at most once across retries."""
        message = item.message
        state = SqlMailState(context.store.db)
        if isinstance(message, RequestPrompt) and message.target:
            await self._card(state, message, context)
            return
        if isinstance(message, RequestResolved | RequestProgress) and message.target:
            text = (
                resolution_text(message)
                if isinstance(message, RequestResolved)
                else progress_text(message)
            )
            await self._card_note(state, item, message.request_id, message.target, text, context)
            return
        room = message.conversation.room
        thread = await context.store.load_thread(item.thread_id)
        people = _participants(thread.events, room)
        mails = await self._mails(item, context, people)
        root = message.conversation.thread_key
        parent = await state.latest_inbound(room, root)
        chain = (*(parent.refs if parent else ()), *([parent.message_id] if parent else ()))
        references = chain if root in chain else (root, *chain)
        first = await state.record(root)
        subject = reply_subject(first.subject if first else thread.title.split("\n")[0])
        sent = []
        for index, mail in enumerate(mails):
            message_id = _message_id(item, index, mail.to, self.settings.domain)
            sent.append((message_id, mail.to))
            await self._send_once(
                state,
                MailRecord(
                    message_id=message_id,
                    room=room,
                    thread_key=root,
                    direction="out",
                    correspondent=mail.to[0],
                    subject=subject,
                    subject_key=subject_key(subject),
                    refs=tuple(references),
                    request_id=mail.request_id,
                ),
                to=mail.to,
                cc=mail.cc,
                text=mail.text,
                parent=parent.message_id if parent else root,
            )
        if isinstance(message, RequestPrompt) and sent:
            ref = {"email": [{"message_id": m, "to": list(to)} for m, to in sent]}
            await context.store.set_message_ref(message.request.request_id, ref)

    async def _mails(
        self, item: OutboxItem, context: DeliveryContext, people: list[str]
    ) -> list[_Mail]:
        message = item.message
        if isinstance(message, OutboundReply):
            return [_Mail(tuple(people), message.text)] if people else []
        if isinstance(message, DecisionNotice):
            return [_Mail((message.to.user_id,), message.text)] if _mailable(message.to) else []
        if isinstance(message, RequestResolved):
            text = resolution_text(message)
            copied = await self._approvers_mailed(context, message.request_id)
            cc = tuple(a for a in copied if a not in people)
            return [_Mail(tuple(people), text, cc=cc)] if people else []
        if isinstance(message, RequestProgress):
            return await self._progress_mails(message, context, people)
        assert isinstance(message, RequestPrompt)
        return self._request_mails(message, context, people)

    async def _progress_mails(
        self, message: RequestProgress, context: DeliveryContext, people: list[str]
    ) -> list[_Mail]:
        """A short note in the thread: who has approved, who is still needed."""
        text = progress_text(message)
        copied = await self._approvers_mailed(context, message.request_id)
        to = tuple(people) or tuple(copied)
        cc = tuple(a for a in copied if a not in to)
        return [_Mail(to, text, cc=cc)] if to else []

    def _request_mails(
        self, message: RequestPrompt, context: DeliveryContext, people: list[str]
    ) -> list[_Mail]:
        request = message.request
        if request.type == "question":
            text = approval_text(request, None, for_approver=True)
            return [_Mail(tuple(people), text, request_id=request.request_id)] if people else []
        approvers = approver_addresses(self._policy(context), request.approvers)
        mails = []
        for address in approvers:
            text = approval_text(request, self._links(context, request, address), for_approver=True)
            mails.append(_Mail((address,), text, request_id=request.request_id))
        others = tuple(p for p in people if p not in approvers)
        if others or not approvers:
            text = approval_text(request, None, for_approver=not approvers)
            mails.append(_Mail(others or tuple(people), text, request_id=request.request_id))
        return [m for m in mails if m.to]

    def _policy(self, context: DeliveryContext) -> Policy:
        return self.policy or context.policy or load_policy(context.settings.policy_file)

    def _links(
        self, context: DeliveryContext, request: HumanRequested, address: str
    ) -> dict[str, str] | None:
        """The signed Approve / Reject links for ``address``, if links are enabled."""
        key = link_key(self.settings, context.settings)
        if key is None:
            return None
        base = self.settings.links_base(context.settings)
        tokens = make_links(key, request.request_id, address, request.expires_at)
        return {d: f"{base}/email/decide/{t}" for d, t in tokens.items()}

    async def _card(
        self, state: MailState, message: RequestPrompt, context: DeliveryContext
    ) -> None:
        """Mail the request card for an ``email:`` place, once, as a thread of its own.

        It says what the thread's approval mail says; the signed links (which decide as the
        address they were mailed to) only go to an address that may decide the request now.
        """
        request, place = message.request, message.target or ""
        address = place.partition(":")[2].lower()
        stored = await context.store.human_request(request.request_id)
        allowed = approver_addresses(self._policy(context), stored.approvers)
        links = self._links(context, request, address) if address in allowed else None
        message_id = card_message_id(request.request_id, place, self.settings.domain)
        subject = card_subject(request)
        record = MailRecord(
            message_id=message_id,
            room=(self.settings.address or "").lower(),
            thread_key=message_id,
            direction="out",
            correspondent=address,
            subject=subject,
            subject_key=subject_key(subject),
            request_id=request.request_id,
        )
        text = approval_text(request, links, for_approver=True)
        await self._send_once(state, record, to=(address,), text=text, parent=None)
        ref = {"message_id": message_id, "to": [address], "subject": subject}
        await context.store.add_message_ref(request.request_id, place, ref)

    async def _card_note(
        self,
        state: MailState,
        item: OutboxItem,
        request_id: str,
        place: str,
        text: str,
        context: DeliveryContext,
    ) -> None:
        """Say ``text`` (a decision, a partial approval) in the thread of each card at ``place``."""
        refs = await context.store.message_refs(request_id, place)
        for index, ref in enumerate(refs):
            card, to = str(ref["message_id"]), tuple(ref["to"])
            subject = reply_subject(str(ref.get("subject") or ""))
            record = MailRecord(
                message_id=_message_id(item, index, to, self.settings.domain),
                room=(self.settings.address or "").lower(),
                thread_key=card,
                direction="out",
                correspondent=to[0],
                subject=subject,
                subject_key=subject_key(subject),
                refs=(card,),
            )
            await self._send_once(state, record, to=to, text=text, parent=card)

    async def send_notice(
        self, state: MailState, notice: Notice, *, room: str, thread_key: str
    ) -> None:
        """Answer one mail at once, threaded under it; a mail read again is not answered twice."""
        mail = notice.answering
        digest = hashlib.sha256(f"notice:{room}:{mail.message_id}".encode()).hexdigest()[:24]
        message_id = f"opsloop.notice.{digest}@{self.settings.domain}"
        references = tuple(dict.fromkeys((*mail.references, *mail.in_reply_to, mail.message_id)))
        subject = reply_subject(mail.subject)
        await self._send_once(
            state,
            MailRecord(
                message_id=message_id,
                room=room,
                thread_key=thread_key,
                direction="out",
                correspondent=notice.to,
                subject=subject,
                subject_key=subject_key(subject),
                refs=references,
            ),
            to=(notice.to,),
            text=notice.text,
            parent=mail.message_id,
        )

    async def _send_once(
        self,
        state: MailState,
        record: MailRecord,
        *,
        to: tuple[str, ...],
        text: str,
        parent: str | None,
        cc: tuple[str, ...] = (),
    ) -> None:
        """Send the mail ``record`` describes unless an earlier attempt did, and remember it."""
        if await state.record(record.message_id) is not None:
            return  # sent by an earlier attempt
        built = build_mail(
            sender=self.settings.address or "",
            to=to,
            cc=cc,
            subject=record.subject,
            text=text,
            message_id=record.message_id,
            parent=parent,
            references=record.refs,
        )
        await self._send(built)
        await state.remember(record)

    async def _approvers_mailed(self, context: DeliveryContext, request_id: str) -> list[str]:
        ref = (await context.store.human_request(request_id)).message_ref or {}
        return [a for mail in ref.get("email", []) for a in mail.get("to", [])]

    async def _send(self, mail: EmailMessage) -> None:
        s = self.settings
        if not (s.smtp_host and s.address):
            raise RuntimeError("SMTP_HOST and EMAIL_ADDRESS must be set to send mail")
        try:
            await aiosmtplib.send(
                mail,
                hostname=s.smtp_host,
                port=s.smtp_port_number,
                username=s.smtp_user,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_tls == "ssl",
                start_tls=s.smtp_tls == "starttls",
                tls_context=self.tls_context,
                timeout=30,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise DeliveryRetryError(f"SMTP {exc.code}: {exc.message}") from exc
            raise
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise DeliveryRetryError(f"SMTP server unreachable: {exc}") from exc


def _mailable(who: Identity) -> bool:
    return who.channel == "email" and who.email is not None


def _participants(events: Sequence[object], room: str) -> list[str]:
    """The people who wrote in the thread by mail, most recent first."""
    found = [
        e.sender.user_id
        for e in events
        if isinstance(e, UserMessage) and e.sender.channel == "email"
    ]
    return [a for a in dict.fromkeys(reversed(found)) if a != room]


def _message_id(item: OutboxItem, index: int, to: Sequence[str], domain: str) -> str:
    digest = hashlib.sha256(f"{item.thread_id}:{item.id}:{index}:{','.join(to)}".encode())
    return f"opsloop.{item.id}.{index}.{digest.hexdigest()[:16]}@{domain}"
