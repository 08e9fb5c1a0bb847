"""Signed, expiring, single-use Approve / Reject links (the single use is kept in the state)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["LinkClaim", "LinkError", "make_links", "read_link"]

_SALT = "opsloop.email.decide.v1"


class LinkError(Exception):
    """A link that is forged, damaged or expired; the message says which."""


@dataclass(frozen=True)
class LinkClaim:
    """What a valid link says."""

    request_id: str
    """The human request it decides."""
    decision: Literal["approve", "reject"]
    """What clicking it does."""
    address: str
    """The approver it was mailed to (and who decides by using it)."""
    token_id: str
    """Shared by the Approve and Reject link of one mail: using either uses both."""
    expires_at: datetime
    """When it stops working (the request's own expiry)."""


def make_links(key: bytes, request_id: str, address: str, expires_at: datetime) -> dict[str, str]:
    """The ``approve`` and ``reject`` tokens of one approval mail to ``address``."""
    signer = URLSafeSerializer(key, salt=_SALT)
    token_id = secrets.token_urlsafe(12)
    expires = int(expires_at.timestamp())
    return {
        decision: signer.dumps(
            {"r": request_id, "d": decision, "a": address, "j": token_id, "e": expires}
        )
        for decision in ("approve", "reject")
    }


def read_link(key: bytes, token: str, *, now: datetime) -> LinkClaim:
    """Check a token and say what it decides.

    Raises:
        LinkError: the signature is wrong or the link expired.
    """
    try:
        data = URLSafeSerializer(key, salt=_SALT).loads(token)
        claim = LinkClaim(
            request_id=str(data["r"]),
            decision="approve" if data["d"] == "approve" else "reject",
            address=str(data["a"]),
            token_id=str(data["j"]),
            expires_at=datetime.fromtimestamp(int(data["e"]), UTC),
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        raise LinkError("this link is not valid (damaged, or not from this opsloop)") from None
    if data["d"] not in {"approve", "reject"}:
        raise LinkError("this link is not valid")
    if claim.expires_at <= now:
        raise LinkError(f"this link expired at {claim.expires_at:%Y-%m-%d %H:%M} UTC")
    return claim
