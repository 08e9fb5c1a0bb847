"""Escalation: a request nobody decided in time goes to the next step of its chain.

The sweep calls :func:`escalate_requests`. Each step is a
:class:`~bot.events.RequestEscalated` event in the request's thread, committed with the
cards it posts and, on the request's row, the approvers it adds; the row takes each level
once, so two sweeps never escalate a request twice. Expiry stays as it was: the last step
still ends at ``expires_at``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.errors import ConcurrentStepError
from bot.events import ConversationRef, RequestEscalated
from bot.outbound import RequestPrompt, place_conversation
from bot.policy import Policy, escalation_due

if TYPE_CHECKING:
    from bot.app import Opsloop
    from bot.store import HumanRequest

__all__ = ["DM_CHANNELS", "direct_place", "escalate_requests", "escalation_event", "places_for"]

log = logging.getLogger(__name__)

DM_CHANNELS = frozenset({"slack", "discord", "email"})
"""Channels whose principals can be asked directly (a Slack or Discord DM, a mail); others
see the console."""


def direct_place(principal: str) -> str:
    """The place that asks ``principal`` directly.

    A Discord user id looks like a channel id, so its DM place is ``discord:@<user id>``;
    Slack user ids (``U…``) and email addresses are places as they are.
    """
    channel, _, who = principal.partition(":")
    return f"discord:@{who}" if channel == "discord" else principal


def places_for(policy: Policy, step: str) -> list[str]:
    """Where to ask the approvers of escalation ``step``.

    The rooms the policy configures for the step, else each named person's direct messages
    where their channel has them, or their mailbox (console people see the request in the
    console).
    """
    if step in policy.rooms:
        return list(policy.rooms[step])
    principals = policy.principals_named([step])
    return [direct_place(p) for p in principals if p.partition(":")[0] in DM_CHANNELS]


def escalation_event(policy: Policy, request: HumanRequest) -> RequestEscalated | None:
    """The next escalation step of a pending request, or ``None`` when it has none."""
    asked = request.request
    level = request.escalation_level + 1
    if request.status != "pending" or level > len(asked.escalate_to):
        return None
    step = asked.escalate_to[level - 1]
    return RequestEscalated(
        request_id=asked.request_id,
        level=level,
        to=(step,),
        posted_to=tuple(places_for(policy, step)),
        next_at=escalation_due(asked, level),
    )


def _cards(
    home: ConversationRef, request: HumanRequest, step: RequestEscalated
) -> list[RequestPrompt]:
    return [
        RequestPrompt(
            conversation=place_conversation(place, home), request=request.request, target=place
        )
        for place in step.posted_to
    ]


async def escalate_requests(ops: Opsloop) -> list[str]:
    """Take the next escalation step of every request due one now (the runtime's clock).

    Returns:
        The ids of the requests escalated; busy threads are left for the next sweep.
    """
    from bot.app import ThreadBusyError

    escalated = []
    for request_id in await ops.store.escalations_due(ops.runtime.clock()):
        request = await ops.store.human_request(request_id)
        try:
            async with ops.lease(request.thread_id):
                request = await ops.store.human_request(request_id)
                step = escalation_event(ops.runtime.policy, request)
                if step is None:
                    continue
                thread = await ops.store.load_thread(request.thread_id)
                await ops.store.append(
                    thread.id,
                    expected_seq=thread.last_seq,
                    events=[step],
                    outbound=_cards(thread.conversation, request, step),
                )
            escalated.append(request_id)
        except ThreadBusyError:
            log.info("thread of request %s is busy; it escalates next sweep", request_id)
        except ConcurrentStepError:
            log.info("request %s was decided or escalated meanwhile", request_id)
    return escalated
