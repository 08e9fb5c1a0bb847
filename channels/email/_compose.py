"""Outbound mail: the words of each outbound message, and the MIME message with its headers.

Every mail is plain text plus a simple HTML part, threads under the conversation
(In-Reply-To, References, ``Re:`` subject) and says it is automatic, so that out-of-office
replies and other robots do not answer it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from bot.events import HumanRequested, utcnow

__all__ = ["approval_text", "build_mail", "reply_subject"]

_PREFIX = ("re:", "aw:", "sv:", "antw:")


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, never ``Re: Re: …``."""
    subject = subject.strip() or "opsloop"
    return subject if subject.lower().startswith(_PREFIX) else f"Re: {subject}"


def approval_text(
    request: HumanRequested, links: dict[str, str] | None, *, for_approver: bool
) -> str:
    """The body of an approval or question mail: the exact action, then how to answer."""
    lines = [request.question, ""]
    if request.type == "approval" and request.tool:
        lines.append(f"Action: {request.tool}")
        for name, value in (request.arguments or {}).items():
            shown = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"  {name}: {shown}")
        lines.append("")
    if request.requested_by:
        lines.append(f"Requested by: {request.requested_by}")
    lines.append(f"Request: {request.request_id}")
    lines.append(f"Expires: {request.expires_at:%Y-%m-%d %H:%M} UTC")
    lines.append("")
    if request.type == "question":
        if request.options:
            lines.append("Options: " + " / ".join(request.options))
        lines.append("Reply to this mail with your answer.")
    elif for_approver:
        if links:
            lines += [f"Approve: {links['approve']}", f"Reject:  {links['reject']}", ""]
        lines += [
            "Or reply to this mail with APPROVE on the first line (a note may go on the",
            "lines below it), or REJECT: <your reason>. Nothing else decides.",
            "To approve with changes, put 'key: value' lines right under APPROVE, one per",
            "changed argument (e.g. 'version: 1.4.3'), then a blank line.",
        ]
    else:
        lines.append("Waiting for: " + ", ".join(request.approvers))
    return "\n".join(lines)


def _html(text: str) -> str:
    paragraphs = []
    for block in text.split("\n\n"):
        rows = []
        for line in block.splitlines():
            label, sep, url = line.partition(": ")
            url = url.strip()
            if sep and url.startswith(("http://", "https://")) and label.strip().isalpha():
                rows.append(
                    f'<a href="{html.escape(url)}" style="display:inline-block;padding:6px 14px;'
                    f'margin:2px 0;border:1px solid #555;border-radius:4px;text-decoration:none">'
                    f"{html.escape(label.strip())}</a>"
                )
            else:
                rows.append(html.escape(line))
        paragraphs.append("<p>" + "<br>\n".join(rows) + "</p>")
    body = "\n".join(paragraphs)
    return f'<!doctype html>\n<html><body style="font-family:sans-serif">\n{body}\n</body></html>\n'


def build_mail(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    text: str,
    message_id: str,
    parent: str | None,
    references: Sequence[str],
) -> EmailMessage:
    """One outbound mail, threaded under ``parent`` (the mail it answers)."""
    mail = EmailMessage()
    mail["From"] = Address("opsloop", addr_spec=sender)
    mail["To"] = ", ".join(to)
    if cc:
        mail["Cc"] = ", ".join(cc)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{message_id}>"
    if parent:
        mail["In-Reply-To"] = f"<{parent}>"
    if references:
        # Keep the root and the newest ids: clients thread on either (RFC 5322 §3.6.4).
        kept = list(dict.fromkeys(references))
        kept = kept[:1] + kept[-9:] if len(kept) > 10 else kept
        mail["References"] = " ".join(f"<{r}>" for r in kept)
    mail["Auto-Submitted"] = "auto-replied"
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(text)
    mail.add_alternative(_html(text), subtype="html")
    return mail
