"""The Approve / Reject links of approval mails: GET shows the action, only a POST decides.

Mail scanners and link previews fetch every link in a mail; a GET therefore decides
nothing. The person confirms on the page, whose form POSTs back to the same address.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from bot.errors import NotFoundError, UserFacingError
from bot.events import ActionReceived, ConversationRef, HumanDecision, Identity, utcnow
from bot.human import refusal_of
from bot.plugins import ChannelContext
from bot.policy import Policy
from bot.store import HumanRequest
from channels.email._inbound import idempotency_key
from channels.email._links import LinkClaim, LinkError, read_link
from channels.email._pages import confirm_page, message_page
from channels.email._settings import EmailSettings, link_key, load_email_settings
from channels.email._state import SqlMailState

__all__ = ["add_routes"]


def action(
    claim: LinkClaim, conversation: ConversationRef, reason: str | None = None
) -> ActionReceived:
    """The decision a link stands for, as the event the core records.

    Without a ``reason`` a rejection is checked as if it had one (for the page shown
    before the person writes it).
    """
    approve = claim.decision == "approve"
    return ActionReceived(
        idempotency_key=idempotency_key(f"link.{claim.token_id}"),
        conversation=conversation,
        # The link was signed for this address and mailed only to it.
        actor=Identity(
            channel="email", user_id=claim.address, email=claim.address, auth="email-link"
        ),
        request_id=claim.request_id,
        decision=HumanDecision.APPROVE if approve else HumanDecision.REJECT,
        comment=reason or (None if approve else "(to be given)"),
    )


def refused_page(policy: Policy, human: HumanRequest, event: ActionReceived) -> HTMLResponse | None:
    """The page that says why ``event`` would not count, as far as can be known now.

    The core checks again when it records the decision (someone may decide meanwhile).
    """
    if human.status != "pending":
        by = human.decided_by or "expiry"
        return message_page("Already decided", f"This request was {human.status} by {by}.", 409)
    if human.request.expires_at <= utcnow():
        return message_page("Expired", f"Request {human.id} expired; nothing can decide it.", 409)
    refusal = refusal_of(policy, human, event)
    if refusal is not None:
        return message_page("You may not decide this", f"{refusal}.", status=403)
    return None


def add_routes(app: FastAPI, settings: EmailSettings | None = None) -> None:
    """Add ``GET`` and ``POST /email/decide/{token}`` to the HTTP app."""
    router = APIRouter(include_in_schema=False)

    def email_settings() -> EmailSettings:
        return settings or load_email_settings()

    async def claim(request: Request, token: str) -> tuple[LinkClaim, HumanRequest]:
        key = link_key(email_settings(), request.app.state.settings)
        if key is None:
            raise LinkError("approval links are not enabled on this opsloop")
        found = read_link(key, token, now=utcnow())
        try:
            human = await request.app.state.ops.store.human_request(found.request_id)
        except NotFoundError:
            raise LinkError("this link names a request that does not exist") from None
        return found, human

    @router.get("/email/decide/{token}")
    async def show(request: Request, token: str) -> HTMLResponse:
        """The confirmation page; decides nothing."""
        try:
            found, human = await claim(request, token)
        except LinkError as exc:
            return message_page("Link not valid", str(exc), status=400)
        ops = request.app.state.ops
        conversation = (await ops.store.load_thread(human.thread_id)).conversation
        refused = refused_page(ops.runtime.policy, human, action(found, conversation))
        return refused or confirm_page(found, human.request)

    @router.post("/email/decide/{token}")
    async def decide(request: Request, token: str) -> HTMLResponse:
        """Record the decision the link stands for, once."""
        try:
            found, human = await claim(request, token)
        except LinkError as exc:
            return message_page("Link not valid", str(exc), status=400)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        reason = (form.get("reason") or [""])[0].strip()[:2000]
        if found.decision == "reject" and not reason:
            return message_page("A reason is needed", "Go back and say why you reject.", 400)
        ops = request.app.state.ops
        conversation = (await ops.store.load_thread(human.thread_id)).conversation
        event = action(found, conversation, reason or None)
        refused = refused_page(ops.runtime.policy, human, event)  # before the link is used up
        if refused is not None:
            return refused
        state = SqlMailState(ops.store.db)
        if not await state.use_link(found.token_id, found.request_id, found.address):
            return message_page("Link already used", "Each mail's links decide once.", 409)
        channel: ChannelContext = request.app.state.channel
        try:
            await channel.accept(event)
        except UserFacingError as exc:
            return message_page("Not recorded", str(exc), status=400)
        verb = "approval" if event.decision == HumanDecision.APPROVE else "rejection"
        return message_page(
            "Sent for recording",
            f"Your {verb} of request {found.request_id} was sent for recording. "
            "You will get a mail saying whether it counted.",
        )

    app.include_router(router)
