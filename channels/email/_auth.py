"""Who really sent a mail (Authentication-Results, RFC 8601) and whether a machine did."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

__all__ = ["Verdict", "automatic", "verify_sender"]


@dataclass(frozen=True)
class Verdict:
    """Whether the From address is authenticated, and why (for the record)."""

    authenticated: bool
    """DMARC passed or an aligned DKIM signature verified (or the server is trusted)."""
    reason: str
    """What decided it, in words."""
    auth: str = "email"
    """How an authenticated sender was authenticated, as identities record it:
    ``email-dmarc`` (DMARC, or an aligned DKIM signature) or ``email`` (the server is
    trusted to take only authenticated mail)."""


def _unfold(value: str) -> str:
    # Comments "(...)" carry no results (RFC 8601 §2.2); drop them, quoted strings survive.
    value = re.sub(r"\s+", " ", value)
    while True:
        stripped = re.sub(r"\([^()]*\)", "", value)
        if stripped == value:
            return stripped
        value = stripped


def _results(header: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """The authserv-id and ``(method, result, properties)`` of one header."""
    parts = [p.strip() for p in _unfold(header).split(";")]
    authserv = parts[0].split(" ")[0].lower() if parts else ""
    found = []
    for part in parts[1:]:
        match = re.match(r"([a-z0-9_.-]+)\s*=\s*([a-z0-9_-]+)(.*)$", part, re.IGNORECASE)
        if match is None:
            continue
        props = {
            k.lower(): v.strip('"').lower()
            for k, v in re.findall(r"([a-z]+\.[a-z0-9_-]+)\s*=\s*(\S+)", match[3], re.IGNORECASE)
        }
        found.append((match[1].lower(), match[2].lower(), props))
    return authserv, found


def _aligned(signer: str, domain: str) -> bool:
    # Relaxed alignment, approximated: one domain is the other or a subdomain of it.
    signer, domain = signer.lower().lstrip("@").rstrip("."), domain.lower().rstrip(".")
    return bool(signer) and (
        signer == domain or domain.endswith("." + signer) or signer.endswith("." + domain)
    )


def verify_sender(
    message: EmailMessage, from_domain: str, *, authserv_id: str | None, trust_server: bool
) -> Verdict:
    """Judge the sender by our own receiving server's Authentication-Results header.

    Only the topmost header with our authserv-id counts: our server adds its header above
    what the sender wrote, and a well-run server also deletes forged ones with its id.
    """
    if trust_server:
        return Verdict(True, "the mail server is trusted (EMAIL_TRUST_MAIL_SERVER)")
    if not authserv_id:
        return Verdict(False, "no EMAIL_AUTHSERV_ID is configured")
    ours = authserv_id.lower()
    for header in message.get_all("Authentication-Results", []):
        authserv, results = _results(str(header))
        if authserv != ours:
            continue
        for method, result, props in results:
            if method == "dmarc" and result == "pass":
                if _aligned(props.get("header.from", from_domain), from_domain):
                    return Verdict(True, f"dmarc=pass for {from_domain} ({ours})", "email-dmarc")
        for method, result, props in results:
            signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            if method == "dkim" and result == "pass" and _aligned(signer, from_domain):
                why = f"dkim=pass aligned with {from_domain} ({ours})"
                return Verdict(True, why, "email-dmarc")
        summary = ", ".join(f"{m}={r}" for m, r, _ in results) or "no results"
        return Verdict(False, f"{summary} ({ours})")
    return Verdict(False, f"no Authentication-Results from {ours}")


_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_DAEMONS = re.compile(r"^(mailer-daemon|postmaster|no-?reply|bounces?)([+@-]|$)", re.IGNORECASE)


def automatic(message: EmailMessage, sender: str) -> str | None:
    """Why a mail was sent by a machine (auto-reply, bounce, list), or ``None``.

    Answering such mail is how mail loops start (RFC 3834), so it never starts or answers
    a thread.
    """
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if "Return-Path" in message and str(message["Return-Path"]).strip() in {"<>", ""}:
        return "empty return path (a bounce)"
    if any(h in message for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")):
        return "auto-reply header"
    if message.get_content_type() == "multipart/report":
        return "delivery or read report"
    if _DAEMONS.match(sender):
        return f"sent by {sender}"
    return None
