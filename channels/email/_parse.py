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
    "MAX_MIME_DEPTH",
    "MAX_MIME_PARTS",
    "Attachment",
    "MalformedMailError",
    "NotADecision",
    "ParsedMail",
    "ReplyDecision",
    "message_ids",
    "mime_depth",
    "parse_mail",
    "read_decision",
    "subject_key",
]

MAX_MIME_DEPTH = 50
"""How deep MIME parts may nest; deeper mail is refused before the parser (which recurses)."""
MAX_MIME_PARTS = 1000
"""How many multipart and message parts a mail may have."""

_CONTAINER = re.compile(
    rb"^content-type:[ \t]*(?:(multipart)|message)/[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNDARY = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^;\s]{1,200}))', re.I)
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


def mime_depth(raw: bytes) -> int:
    """How deep the multipart and message parts of ``raw`` nest, read without parsing.

    A multipart part spans from its header to its closing boundary; a message part to the
    next boundary of the multipart part around it. The depth is the most spans open at
    one point.

    Raises:
        MalformedMailError: the mail has more than :data:`MAX_MIME_PARTS` such parts.
    """
    found = list(_CONTAINER.finditer(raw))
    if len(found) > MAX_MIME_PARTS:
        raise MalformedMailError(f"more than {MAX_MIME_PARTS} MIME parts")
    if len(found) <= MAX_MIME_DEPTH:
        return len(found)  # the depth is at most the count: nothing more to know
    spans: list[tuple[int, int, bytes]] = []  # start, end, boundary (b"" for messages)
    for header in found:
        start, end = header.start(), len(raw)
        found_boundary = _BOUNDARY.search(header[0]) if header[1] else None
        boundary = (found_boundary[1] or found_boundary[2]) if found_boundary else b""
        if boundary:
            close = raw.find(b"\n--" + boundary + b"--", header.end())
            end = close if close >= 0 else end
        else:  # a message part ends at the next boundary of the multipart around it
            around = [(s, b) for s, e, b in spans if b and s < start < e]
            if around:
                delimiter = raw.find(b"\n--" + max(around)[1], header.end())
                end = delimiter if delimiter >= 0 else end
        spans.append((start, end, boundary))
    edges = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    depth = deepest = 0
    for _, step in edges:
        depth += step
        deepest = max(deepest, depth)
    return deepest


def parse_mail(raw: bytes) -> ParsedMail:
    """Read one mail.

    Raises:
        MalformedMailError: the MIME structure is broken or nested deeper than
            :data:`MAX_MIME_DEPTH`, a charset is unknown or wrong, or there is no sender
            or no text.
    """
    if mime_depth(raw) > MAX_MIME_DEPTH:
        raise MalformedMailError(f"MIME parts nested deeper than {MAX_MIME_DEPTH}")
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


# ---------------------------------------------------------------- decisions by reply

# The first line: the keyword alone (bold and a final "." or "!" allowed), or the keyword,
# a colon and a comment. Nothing else decides.
_STRICT = re.compile(r"^\**(approved?|reject(?:ed)?)\**\s*(?:[.!]|:\s*(.*?))?\s*$", re.IGNORECASE)
_REJECT_SPACED = re.compile(r"^\**reject\**\s+(\w.*?)\s*$", re.IGNORECASE)
"""``REJECT <reason>``: the form documented first, kept for rejections (the safe direction)."""
_APPROVE_WORD = re.compile(r"\bapprov", re.IGNORECASE)
_KEYWORD_FIRST = re.compile(r"^\W*(approv|reject)", re.IGNORECASE)
_SHORT_ANSWER = re.compile(
    r"^\W*(yes|no|ok|okay|lgtm|sure|go|deny|denied|declined?|\+1|-1)\W*$", re.IGNORECASE
)
_OTHER_WORD = re.compile(r"\breject(?:ed|s|ing)?\b", re.IGNORECASE)
_HESITATION = re.compile(
    r"^\W*(no|not|don'?t|do not|wait|hold|stop|cancel|never|later)\b", re.IGNORECASE
)


_CHANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\s*:\s*(.*?)\s*$")
"""``key: value``, one argument's new value on a line after a bare ``APPROVE``."""


@dataclass(frozen=True)
class ReplyDecision:
    """A reply that decides: approve or reject, with the comment written with it."""

    decision: str
    """``approve`` or ``reject``."""
    comment: str | None
    changes: dict[str, str] | None = None
    """For an approval with changes: the ``key: value`` lines under ``APPROVE``, as text."""


@dataclass(frozen=True)
class NotADecision:
    """A reply that looks like a decision but is not one in the documented form."""

    why: str
    """What is wrong with it, to tell the sender."""


def read_decision(text: str) -> ReplyDecision | NotADecision | None:
    """Read a reply (quotes and signature already cut) as a decision.

    The rules (``docs/email.md``): the first non-empty line is exactly ``APPROVE`` or
    ``REJECT`` (``APPROVED`` / ``REJECTED``, any case), alone or followed by ``:`` and a
    comment; the lines after it are the comment too. A bare ``APPROVE`` followed by
    ``key: value`` lines (up to a blank line) approves with those arguments changed; every
    line of that paragraph must be one. ``REJECT <reason>`` (a space, no
    colon) also rejects, unless the reason asks, hesitates or mentions approving. A
    rejection needs a reason. An
    approval whose comment asks a question, hesitates ("no", "wait", "not yet"…) or
    mentions rejecting is not one. Anything else that looks like a decision — a first line
    that starts with the keyword but goes on ("Approve? why on a Friday?"), a bare "yes"
    or "ok", a keyword on a later line — is :class:`NotADecision`. Anything else is an
    ordinary message (``None``).
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return None
    first, rest = lines[0], "\n".join(lines[1:]).strip()
    strict = _STRICT.match(first)
    spaced = _REJECT_SPACED.match(first) if strict is None else None
    if spaced is not None and not (
        "?" in first or _HESITATION.match(spaced[1]) or _APPROVE_WORD.search(first)
    ):
        reason = "\n".join(x for x in (spaced[1], rest) if x).strip()
        return ReplyDecision("reject", reason)
    if strict is None:
        if _KEYWORD_FIRST.match(first):
            return NotADecision(f"the first line {first[:80]!r} is not APPROVE or REJECT alone")
        if _SHORT_ANSWER.match(first):
            return NotADecision(f"{first[:20]!r} is not APPROVE or REJECT")
        if any(_STRICT.match(line) or _KEYWORD_FIRST.match(line) for line in lines[1:]):
            return NotADecision("APPROVE or REJECT must be the first line")
        return None
    decision = "approve" if strict[1].lower().startswith("approve") else "reject"
    changes: dict[str, str] | None = None
    if decision == "approve" and lines[1:] and _CHANGE.match(lines[1]):
        read = _changes(first, strict[2], lines[1:])
        if isinstance(read, NotADecision):
            return read
        changes, rest = read
    comment = "\n".join(x for x in (strict[2] or "", rest) if x).strip() or None
    if decision == "reject":
        return (
            ReplyDecision(decision, comment)
            if comment
            else NotADecision("a rejection needs a reason")
        )
    if comment is not None:
        if "?" in comment:
            return NotADecision("an approval with a question in it is not an approval")
        if _HESITATION.match(comment) or _OTHER_WORD.search(comment):
            return NotADecision("the note after APPROVE hesitates or mentions rejecting")
    return ReplyDecision(decision, comment, changes)


def _changes(
    first: str, note: str | None, after: list[str]
) -> tuple[dict[str, str], str] | NotADecision:
    """The ``key: value`` lines under a bare ``APPROVE`` (up to a blank line), and the rest.

    Every line of that paragraph must be one: a change half-read would approve something
    other than what the person wrote.
    """
    if note:
        return NotADecision(
            "changes (key: value lines) go under a bare APPROVE, with no note on its line"
        )
    blank = after.index("") if "" in after else len(after)
    changes: dict[str, str] = {}
    for line in after[:blank]:
        found = _CHANGE.match(line)
        if found is None:
            return NotADecision(
                f"{line[:80]!r} is not a 'key: value' line; changes under APPROVE are one"
                " 'key: value' a line, ending at a blank line"
            )
        if found[1] in changes:
            return NotADecision(f"{found[1]!r} is changed twice")
        changes[found[1]] = found[2]
    return changes, "\n".join(after[blank:]).strip()
