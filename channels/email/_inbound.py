"""One raw mail to one inbound event: threading, approval replies, sender authentication.

The result is either an event to accept, or a refusal to record (as a failed inbox item
with its reason), so that nothing that arrived is lost and nothing unproven counts.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import JsonValue

from bot.edits import typed
from bot.errors import NotFoundError
from bot.events import (
    ActionReceived,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    utcnow,
)
from bot.human import refusal_of
from bot.policy import Policy
from bot.store import HumanRequest, Store
from channels.email._auth import Verdict, automatic, verify_sender
from channels.email._cards import is_card
from channels.email._parse import (
    MalformedMailError,
    NotADecision,
    ParsedMail,
    ReplyDecision,
    headers_of,
    parse_mail,
    read_decision,
)
from channels.email._settings import EmailSettings
from channels.email._state import MailRecord, MailState

__all__ = ["Inbound", "MailReader", "Notice", "how_to_decide", "idempotency_key"]

log = logging.getLogger(__name__)

SUBJECT_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class Notice:
    """A mail to send straight back to the sender of a mail that decided nothing."""

    to: str
    """The sender's (authenticated) address."""
    answering: ParsedMail
    """The mail it answers, to thread under."""
    text: str
    """What to say."""


def how_to_decide(reading: NotADecision, request: HumanRequest | None) -> str:
    """The reply to a mail that looked like a decision but was not one."""
    which = f"request {request.id}" if request is not None else "the request"
    lines = [
        f"Your reply did not decide {which}: {reading.why}.",
        "",
        "To decide, reply to the approval mail with one of these as the first line:",
        "",
        "  APPROVE",
        "  REJECT: <your reason>",
        "",
        "A note to go with APPROVE goes on the lines below it. To approve with changes,",
        "put one 'key: value' line per changed argument right under APPROVE, then a blank",
        "line, e.g.",
        "",
        "  APPROVE",
        "  version: 1.4.3",
        "",
        "Nothing was decided;",
    ]
    if request is not None:
        lines.append(
            f"the request stays open until {request.request.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    else:
        lines.append("the request stays open.")
    return "\n".join(lines)


@dataclass(frozen=True)
class Inbound:
    """What to do with one mail: accept ``event``, or record it refused for ``refused``."""

    event: Any
    """The event (for a refusal: a stand-in message that is stored, never processed)."""
    refused: str | None = None
    """Why the mail was refused."""
    thread_id: str | None = None
    """The thread a refused mail was meant for, when known."""
    notice: Notice | None = None
    """A mail to send the sender about the refusal (only to authenticated senders)."""


def idempotency_key(message_id: str) -> str:
    """The inbox key of a mail: its Message-ID (hashed when too long)."""
    key = f"email:{message_id}"
    return key if len(key) <= 255 else "email:sha256:" + hashlib.sha256(key.encode()).hexdigest()


class MailReader:
    """Turns mail into events; reads the thread and request state, writes the mail index."""

    def __init__(
        self,
        settings: EmailSettings,
        store: Store,
        state: MailState,
        policy: Callable[[], Policy] | None = None,
    ) -> None:
        """Read for the bot at ``settings.address``.

        ``policy`` gives the policy in force, to check replies to request cards early.
        """
        self.settings = settings
        self.store = store
        self.state = state
        self.policy = policy
        self.room = (settings.address or "").lower()

    def _conversation(self, thread_key: str) -> ConversationRef:
        return ConversationRef(
            channel="email", tenant=self.settings.domain, room=self.room, thread_key=thread_key
        )

    def _refused(
        self,
        ids: tuple[str, str],
        why: str,
        conversation: ConversationRef | None = None,
        thread_id: str | None = None,
    ) -> Inbound:
        message_id, sender = ids
        event = MessageReceived(
            idempotency_key=idempotency_key(message_id),
            conversation=conversation or self._conversation(message_id),
            sender=Identity(channel="email", user_id=sender or "unknown"),
            text=f"(email refused: {why})",
        )
        return Inbound(event=event, refused=why, thread_id=thread_id)

    def oversized(self, header_block: bytes, size: int) -> Inbound:
        """A mail too big to read: refused, identified by its headers."""
        why = f"the mail is {size:,} bytes; the limit is {self.settings.max_bytes:,}"
        return self._refused(_ids_of(header_block), why)

    async def refusal_of(self, inbound: Inbound, why: str) -> Inbound:
        """The refusal to record when ingest refused an event (too long, unknown agent…)."""
        event = inbound.event
        who = event.sender if isinstance(event, MessageReceived) else event.actor
        thread_id = await self.store.thread_id_for(event.conversation)
        stand_in = MessageReceived(
            idempotency_key=event.idempotency_key,
            conversation=event.conversation,
            sender=Identity(channel="email", user_id=who.user_id),
            text=f"(email refused: {why})",
        )
        return Inbound(event=stand_in, refused=why, thread_id=thread_id)

    def _judge(self, raw: bytes) -> Inbound | tuple[ParsedMail, Verdict]:
        """Parse and judge a mail (pure; the email package may fail on odd input)."""
        try:
            mail = parse_mail(raw)
        except MalformedMailError as exc:
            return self._refused(_ids_of(raw), f"malformed mail: {exc}")
        except Exception as exc:  # a mail no rule foresaw must not stop the watcher
            log.warning("email: unreadable mail: %s", exc, exc_info=True)
            return self._refused(_ids_of(raw), f"malformed mail: {type(exc).__name__}: {exc}")
        ids = (mail.message_id, mail.sender)
        if mail.sender == self.room:
            return self._refused(ids, "mail from the bot's own address (a loop)")
        try:
            machine = automatic(mail.message, mail.sender)
            verdict = verify_sender(
                mail.message,
                mail.sender_domain,
                authserv_id=self.settings.authserv_id,
                trust_server=self.settings.trust_mail_server,
            )
        except Exception as exc:
            return self._refused(ids, f"malformed headers: {type(exc).__name__}: {exc}")
        if machine is not None:
            return self._refused(ids, f"automatic mail ignored ({machine})")
        return mail, verdict

    async def read(self, raw: bytes) -> Inbound:
        """Decide what one mail is.

        Only trouble with opsloop's own storage raises (so the mail is read again).
        """
        judged = self._judge(raw)
        if isinstance(judged, Inbound):
            return judged
        mail, verdict = judged
        ids = (mail.message_id, mail.sender)
        thread_key = await self._thread_key(mail)
        if is_card(thread_key):
            assert thread_key is not None
            return await self._card_reply(mail, thread_key, verdict)
        conversation = self._conversation(thread_key or mail.message_id)
        thread_id = await self.store.thread_id_for(conversation) if thread_key else None
        if thread_id is not None:
            answer = await self._answer(mail, thread_id, conversation, verdict)
            if answer is not None:
                if answer.refused is None:
                    await self._remember(mail, conversation.thread_key)
                return answer
        if not (verdict.authenticated or self.settings.accept_unauthenticated):
            why = f"sender {mail.sender} is not authenticated: {verdict.reason}"
            return self._refused(ids, why, conversation, thread_id)
        text = mail.body
        if thread_id is None and mail.subject and not mail.body.startswith(mail.subject):
            text = f"{mail.subject}\n\n{mail.body}".strip()
        if mail.attachments:
            text += "\n\n[attachments, not read: " + "; ".join(map(str, mail.attachments)) + "]"
        event = MessageReceived(
            idempotency_key=idempotency_key(mail.message_id),
            conversation=conversation,
            sender=self._identity(mail, verdict),
            text=text.strip() or "(empty email)",
        )
        await self._remember(mail, conversation.thread_key)
        return Inbound(event=event)

    def _identity(self, mail: ParsedMail, verdict: Verdict) -> Identity:
        # An unauthenticated sender (accepted only with EMAIL_ACCEPT_UNAUTHENTICATED) is
        # recorded as such: no verified address, no authentication method.
        return Identity(
            channel="email",
            user_id=mail.sender,
            display_name=mail.sender_name,
            email=mail.sender if verdict.authenticated else None,
            auth=verdict.auth if verdict.authenticated else None,
        )

    async def _thread_key(self, mail: ParsedMail) -> str | None:
        """The conversation: by Message-ID references first, the subject as a last resort."""
        known = await self.state.thread_of(self.room, [*mail.references, *mail.in_reply_to])
        if known is not None:
            return known
        if mail.is_reply and mail.subject_key:
            since = utcnow() - SUBJECT_WINDOW
            return await self.state.thread_by_subject(
                self.room, mail.subject_key, mail.sender, since
            )
        return None

    async def _answer(
        self, mail: ParsedMail, thread_id: str, conversation: ConversationRef, verdict: Verdict
    ) -> Inbound | None:
        """An answer to the thread's pending request, or ``None`` for an ordinary message."""
        pending = await self.store.human_requests(thread_id=thread_id)
        if not pending:
            return None
        request = await self._addressed(mail, pending)
        reading = read_decision(mail.body)
        if request is not None and request.request.type == "question":
            if not isinstance(reading, ReplyDecision) or reading.decision != "reject":
                reading = ReplyDecision("answer", mail.body.strip() or None)
        if reading is None:
            return None
        ids = (mail.message_id, mail.sender)
        if not verdict.authenticated:
            what = reading.decision if isinstance(reading, ReplyDecision) else "reply"
            which = f"request {request.id}" if request is not None else "a request"
            why = (
                f"{what} of {which} by {mail.sender} refused: "
                f"the sender is not authenticated: {verdict.reason}"
            )
            return self._refused(ids, why, conversation, thread_id)
        if request is None:
            reading = NotADecision("it does not say which request: reply to its approval mail")
        changes = None
        if request is not None and isinstance(reading, ReplyDecision) and reading.changes:
            changes = _typed_changes(reading.changes, request)
            if isinstance(changes, NotADecision):
                reading = changes
        if isinstance(reading, NotADecision):
            assert request is None or request.request.type == "approval"
            why = f"not a decision: {reading.why}"
            refused = self._refused(ids, why, conversation, thread_id)
            notice = Notice(to=mail.sender, answering=mail, text=how_to_decide(reading, request))
            return Inbound(refused.event, refused.refused, thread_id, notice)
        assert request is not None  # a reading without a request became NotADecision
        event = ActionReceived(
            idempotency_key=idempotency_key(mail.message_id),
            conversation=conversation,
            actor=self._identity(mail, verdict),
            request_id=request.id,
            decision=HumanDecision(reading.decision),
            comment=reading.comment,
            changes=changes,
        )
        return Inbound(event=event)

    async def _card_reply(self, mail: ParsedMail, card_key: str, verdict: Verdict) -> Inbound:
        """A reply to a request card (see ``_cards.py``): a decision of its request, or refused.

        A card's thread holds nothing else, so whatever does not decide is refused, with a
        mail saying why to an authenticated sender.
        """
        ids = (mail.message_id, mail.sender)
        conversation = self._conversation(card_key)
        card = await self.state.record(card_key)
        try:
            request = await self.store.human_request(card.request_id or "") if card else None
        except NotFoundError:
            request = None
        if request is None:
            return self._refused(ids, "a reply to a request card of no known request", conversation)
        reading = read_decision(mail.body)
        if request.request.type == "question":
            if not isinstance(reading, ReplyDecision) or reading.decision != "reject":
                reading = ReplyDecision("answer", mail.body.strip() or None)
        if not verdict.authenticated:
            what = reading.decision if isinstance(reading, ReplyDecision) else "reply"
            why = (
                f"{what} of request {request.id} by {mail.sender} refused: "
                f"the sender is not authenticated: {verdict.reason}"
            )
            return self._refused(ids, why, conversation, request.thread_id)
        if not isinstance(reading, ReplyDecision):
            reading = reading or NotADecision("it is neither APPROVE nor REJECT: <your reason>")
            why, text = f"not a decision: {reading.why}", how_to_decide(reading, request)
        elif request.status != "pending":
            by = request.decided_by or "expiry"
            why = f"request {request.id} was already {request.status} by {by}"
            text = f"Your reply decided nothing: {why}."
        elif isinstance(
            changes := _typed_changes(reading.changes, request) if reading.changes else None,
            NotADecision,
        ):
            why, text = f"not a decision: {changes.why}", how_to_decide(changes, request)
        else:
            event = ActionReceived(
                idempotency_key=idempotency_key(mail.message_id),
                conversation=conversation,
                actor=self._identity(mail, verdict),
                request_id=request.id,
                decision=HumanDecision(reading.decision),
                comment=reading.comment,
                changes=changes,
            )
            refusal = refusal_of(self.policy(), request, event) if self.policy else None
            if refusal is None:
                await self._remember(mail, card_key)
                return Inbound(event=event)
            why, text = refusal, f"Your reply decided nothing: {refusal}."
        refused = self._refused(ids, why, conversation, request.thread_id)
        notice = Notice(to=mail.sender, answering=mail, text=text)
        return Inbound(refused.event, refused.refused, request.thread_id, notice)

    async def _addressed(
        self, mail: ParsedMail, pending: list[HumanRequest]
    ) -> HumanRequest | None:
        for message_id in reversed((*mail.references, *mail.in_reply_to)):
            record = await self.state.record(message_id)
            if record is not None and record.request_id is not None:
                return next((r for r in pending if r.id == record.request_id), None)
        return pending[0] if len(pending) == 1 else None

    async def _remember(self, mail: ParsedMail, thread_key: str) -> None:
        await self.state.remember(
            MailRecord(
                message_id=mail.message_id,
                room=self.room,
                thread_key=thread_key,
                direction="in",
                correspondent=mail.sender,
                subject=mail.subject,
                subject_key=mail.subject_key,
                refs=(*mail.references, *mail.in_reply_to),
            )
        )


def _typed_changes(
    texts: dict[str, str], request: HumanRequest
) -> dict[str, JsonValue] | NotADecision:
    """A reply's ``key: value`` lines as argument overrides of ``request``'s call.

    A key that is not one of the call's arguments decides nothing (the person meant some
    change that cannot be made, so approving the call as it stands would be wrong).
    """
    recorded = request.request.arguments or {}
    unknown = [key for key in texts if key not in recorded]
    if unknown:
        names = ", ".join(recorded) or "none"
        return NotADecision(f"{', '.join(unknown)}: not an argument of the call (its: {names})")
    return {key: typed(text, recorded[key]) for key, text in texts.items()}


def _ids_of(raw: bytes) -> tuple[str, str]:
    """Message-ID and sender of a mail that cannot be read, as far as its headers allow."""
    try:
        headers = headers_of(raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\r\n\r\n")
        message_id = next(iter(_bare(headers.get("Message-ID"))), None)
        sender = str(headers.get("From", "")).strip()
        found = re.search(r"[^\s<>\"]+@[^\s<>\"]+", sender)
        address = found[0].lower() if found else "unknown"
    except Exception:
        message_id, address = None, "unknown"
    return message_id or f"{hashlib.sha256(raw).hexdigest()[:32]}@opsloop.invalid", address


def _bare(value: object) -> list[str]:
    return re.findall(r"<([^<>\s]{1,500})>", str(value or ""))
