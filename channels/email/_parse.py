"""Raw mail to what the channel needs: ids, sender, clean text, attachment names."""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses

from channels.email._text import html_to_text, strip_quotes

__all__ = [
    "Attachment",
    "MalformedMailError",
    "ParsedMail",
    "message_ids",
    "parse_mail",
    "subject_key",
]

_FATAL_DEFECTS = {"StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect"}
_RE = re.compile(
    r"^\s*((re|fwd?|aw|wg|sv|vs|antw|tr|r)\s*(\[\d+\])?\s*:\s*|\[[^\]]{1,40}\]\s*)+", re.I
)


class MalformedMailError(Exception):
    """A mail that cannot be read; the message says why, for the inbox record."""


@dataclass(frozen=True)
class Attachment:
    """An attachment, listed for the person but never read into the context."""

    filename: str
    content_type: str
    size: int

    def __str__(self) -> str:
        return f"{self.filename} ({self.content_type}, {max(1, round(self.size / 1024))} KB)"


@dataclass(frozen=True)
class ParsedMail:
    """A mail as the channel reads it."""

    message: EmailMessage
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender: str
    sender_name: str | None
    body: str
    attachments: tuple[Attachment, ...]

    @property
    def subject_key(self) -> str:
        """The subject without reply prefixes and list tags, for the last-resort match."""
        return subject_key(self.subject)

    @property
    def is_reply(self) -> bool:
        """Whether the mail says it answers another."""
        return bool(self.in_reply_to or self.references or _RE.match(self.subject))

    @property
    def sender_domain(self) -> str:
        """The domain of the From address."""
        return self.sender.rpartition("@")[2]


def subject_key(subject: str) -> str:
    """A subject without reply prefixes and list tags, lower case: what replies share."""
    return re.sub(r"\s+", " ", _RE.sub("", subject)).strip().lower()[:200]


def message_ids(value: object) -> tuple[str, ...]:
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References header, bare."""
    return tuple(re.findall(r"<([^<>\s]{1,500})>", str(value or "")))


def _clean(value: object) -> str:
    text = str(value or "").encode("utf-8", "replace").decode("utf-8")
    return re.sub(r"\s+", " ", text.replace("\x00", "")).strip()


def _decode(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise MalformedMailError(f"unknown charset {charset!r}") from None
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        try:  # a common mislabel: UTF-8 text declared as ASCII or Latin-1
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMailError(f"the text is not valid {charset}") from None


def _sender(message: EmailMessage) -> tuple[str, str | None]:
    try:
        found = getaddresses([str(h) for h in message.get_all("From", [])])
    except Exception:
        found = []
    addresses = [(name, addr) for name, addr in found if "@" in addr]
    if len(addresses) != 1:
        raise MalformedMailError("the From header must name exactly one address")
    name, addr = addresses[0]
    return addr.strip().lower(), _clean(name) or None


def headers_of(raw: bytes) -> EmailMessage:
    """Parse a mail (or just its header block)."""
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parse_mail(raw: bytes) -> ParsedMail:
    """Read one mail.

    Raises:
        MalformedMailError: the MIME structure is broken, a charset is unknown or wrong,
            or there is no sender or no text.
    """
    message = headers_of(raw)
    sender, name = _sender(message)
    fatal = sorted({type(d).__name__ for d in message.defects} & _FATAL_DEFECTS)
    if fatal:
        raise MalformedMailError(f"broken MIME structure ({', '.join(fatal)})")
    body_part = message.get_body(preferencelist=("plain", "html"))
    if body_part is None and message.get_content_maintype() == "multipart":
        raise MalformedMailError("broken MIME structure: no readable text part")
    body = ""
    if isinstance(body_part, EmailMessage):
        text = _decode(body_part)
        body = html_to_text(text) if body_part.get_content_subtype() == "html" else text
    attachments = tuple(
        Attachment(
            _clean(part.get_filename()) or "(unnamed)",
            part.get_content_type(),
            len(part.get_payload(decode=True) or b""),
        )
        for part in message.walk()
        if part is not body_part and isinstance(part, EmailMessage) and _is_attachment(part)
    )
    message_id = next(iter(message_ids(message.get("Message-ID"))), None)
    if message_id is None:  # stable across fetches, so a re-read is still a duplicate
        message_id = f"{hashlib.sha256(raw).hexdigest()[:32]}@opsloop.invalid"
    return ParsedMail(
        message=message,
        message_id=message_id,
        in_reply_to=message_ids(message.get("In-Reply-To")),
        references=message_ids(message.get("References")),
        subject=_clean(message.get("Subject")),
        sender=sender,
        sender_name=name,
        body=strip_quotes(body),
        attachments=attachments,
    )


def _is_attachment(part: EmailMessage) -> bool:
    if part.is_multipart():
        return False
    return part.is_attachment() or part.get_content_maintype() not in {"text", "message"}
