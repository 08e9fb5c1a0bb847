"""What counts as a decision by mail: the reply's exact form, and the links' honest pages."""

from __future__ import annotations

import dataclasses

import httpx2
import pytest
from sqlalchemy import select

from bot.api import create_app
from bot.config import load_settings
from bot.plugins import Plugin
from bot.store._tables import InboxRow
from channels.email._parse import NotADecision, ReplyDecision, read_decision
from channels.email._routes import add_routes
from tests.channels.email.conftest import DEV, ONCALL
from tests.channels.email.harness import bare, human_mail, links_in, text_of

# ---------------------------------------------------------------- the rules, without servers


@pytest.mark.parametrize(
    ("text", "decision", "comment"),
    [
        ("APPROVE", "approve", None),
        ("approved.", "approve", None),
        ("*Approve*", "approve", None),
        ("APPROVE: ship it", "approve", "ship it"),
        ("APPROVE\n\nship it\nthanks", "approve", "ship it\nthanks"),
        ("\n\nApprove:", "approve", None),
        ("REJECT: freeze until Monday", "reject", "freeze until Monday"),
        ("rejected\nfreeze until Monday", "reject", "freeze until Monday"),
        ("REJECT: I won't approve this on a Friday", "reject", "I won't approve this on a Friday"),
        ("reject freeze until monday", "reject", "freeze until monday"),
        ("REJECT change freeze\nuntil Monday", "reject", "change freeze\nuntil Monday"),
    ],
)
def test_a_decision_is_the_keyword_alone_or_with_a_colon(text, decision, comment):
    assert read_decision(text) == ReplyDecision(decision, comment)


@pytest.mark.parametrize(
    "text",
    [
        "Approve? why on a Friday?",
        "approve not yet - wait for the freeze",
        "Approve—no wait, REJECT",
        "Approve, no wait, reject",
        "approved?",
        "APPROVE\n\nno wait, reject it",
        "APPROVE: not yet",
        "APPROVE: why on a Friday?",
        "APPROVE\nwait for the freeze",
        "REJECT",
        "Reject? no, approve it",
        "reject - no wait, approve",
        "reject not yet",
        "yes",
        "LGTM!",
        "ok",
        "Hi,\n\nAPPROVE",
    ],
)
def test_anything_else_that_looks_like_a_decision_is_not_one(text):
    """Regression: the parser took anything after the keyword as a comment, and decided."""
    assert isinstance(read_decision(text), NotADecision)


@pytest.mark.parametrize(
    "text", ["Looks risky: can you check the error rate first?", "staging", "No rush.", ""]
)
def test_a_reply_with_no_decision_in_it_is_an_ordinary_message(text):
    assert read_decision(text) is None


# ---------------------------------------------------------------- by reply, on a real mailbox


async def paused_on_deploy(mail):
    raw, first_id = human_mail(DEV, "deploy please", "deploy checkout 1.4.2 to production")
    await mail.deliver(raw)
    await mail.work()
    [request] = await mail.ops.store.human_requests()
    [ask] = await mail.sent_to(ONCALL)
    return first_id, request, ask


async def reply(mail, first_id, ask, body, sender=ONCALL):
    raw, reply_id = human_mail(
        sender,
        "Re: deploy please",
        f"{body}\n\nOn Tue, opsloop wrote:\n> {text_of(ask).splitlines()[0]}",
        in_reply_to=bare(ask["Message-ID"]),
        references=(first_id, bare(ask["Message-ID"])),
    )
    await mail.deliver(raw)
    await mail.work()
    return reply_id


async def last_inbox_item(mail) -> InboxRow:
    async with mail.ops.store.db.session() as session:
        return (await session.scalars(select(InboxRow).order_by(InboxRow.id.desc()))).first()


@pytest.mark.parametrize(
    "body",
    [
        "Approve? why on a Friday?",
        "approve not yet - wait for the freeze",
        "Approve—no wait, REJECT",
        "APPROVE\n\nno wait, reject it",
    ],
)
async def test_an_ambiguous_reply_decides_nothing_and_says_how_to_answer(mail, body):
    """Regression: each of these replies approved the production deploy."""
    first_id, request, ask = await paused_on_deploy(mail)
    processed = len(mail.dispatcher.of("process"))

    reply_id = await reply(mail, first_id, ask, body)

    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    assert len(mail.dispatcher.of("process")) == processed  # nothing for the core to do
    item = await last_inbox_item(mail)
    assert item.status == "failed" and item.error.startswith("not a decision:")
    assert item.thread_id == request.thread_id
    how_to = (await mail.sent_to(ONCALL, 2))[-1]
    assert bare(how_to["In-Reply-To"]) == reply_id and first_id in str(how_to["References"])
    text = text_of(how_to)
    assert f"did not decide request {request.id}" in text
    assert "  APPROVE\r\n" in text and "  REJECT: <your reason>" in text
    assert "Nothing was decided" in text

    # The same person answering in the documented form then decides.
    await reply(mail, first_id, ask, "APPROVE: after checking the freeze calendar")
    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "approved"
    assert decided.comment == "after checking the freeze calendar"


async def test_a_reply_in_the_documented_form_rejects_with_its_reason(mail):
    """Regression: a reason on the lines below REJECT was dropped, so the core refused it."""
    first_id, request, ask = await paused_on_deploy(mail)
    await reply(mail, first_id, ask, "REJECT\n\nfreeze until Monday")
    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "rejected" and decided.comment == "freeze until Monday"


async def test_an_unauthenticated_ambiguous_reply_is_refused_and_nobody_is_mailed(mail):
    _, request, ask = await paused_on_deploy(mail)
    sent = len(mail.sent)
    raw, _ = human_mail(
        ONCALL, "Re: deploy please", "yes", auth=None, in_reply_to=bare(ask["Message-ID"])
    )
    await mail.deliver(raw)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    assert len(mail.sent) == sent  # no mail to whoever forged the From
    assert "not authenticated" in (await last_inbox_item(mail)).error


async def test_the_how_to_mail_is_sent_once_for_a_mail_read_twice(mail):
    _, _, ask = await paused_on_deploy(mail)
    raw, _ = human_mail(ONCALL, "Re: deploy please", "ok", in_reply_to=bare(ask["Message-ID"]))
    inbound = await mail.watcher.reader.read(raw)
    assert inbound.notice is not None
    await mail.watcher._apply(inbound)
    await mail.watcher._apply(inbound)  # a re-read after a crash
    await mail.sent_to(ONCALL, 2)
    assert sum("did not decide" in text_of(m) for m in mail.sent) == 1


# ---------------------------------------------------------------- the links' pages


@pytest.fixture
async def app_client(mail, tmp_path):
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_API_TOKEN="t" * 24)
    plugin = Plugin(name="email", routes=lambda app: add_routes(app, mail.settings))
    app = create_app(settings, ops=mail.ops, dispatcher=mail.dispatcher, plugins=(plugin,))
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://t") as client,
    ):
        yield client


def path_of(url: str) -> str:
    return url.removeprefix("http://opsloop.test")


async def test_a_link_used_after_the_request_was_decided_says_so_and_records_nothing(
    mail, app_client
):
    """Regression: the page said "recorded" and the core then refused the decision."""
    first_id, request, ask = await paused_on_deploy(mail)
    await reply(mail, first_id, ask, "REJECT: freeze until Monday")
    processed = len(mail.dispatcher.of("process"))

    done = await app_client.post(path_of(links_in(ask)["approve"]))

    assert done.status_code == 409 and "Already decided" in done.text
    assert "recorded" not in done.text
    assert len(mail.dispatcher.of("process")) == processed
    assert (await mail.ops.store.human_request(request.id)).status == "rejected"


async def test_a_link_of_someone_no_longer_allowed_is_refused_before_it_is_used(mail, app_client):
    """Regression: the page said "recorded" for a decision the policy then refused."""
    _, request, ask = await paused_on_deploy(mail)
    allowed = mail.ops.runtime
    roles = dict(allowed.policy.roles)
    roles["oncall"] = tuple(r for r in roles["oncall"] if r != f"email:{ONCALL}")
    policy = allowed.policy.model_copy(update={"roles": roles})
    mail.ops.runtime = dataclasses.replace(allowed, policy=policy)
    url = path_of(links_in(ask)["approve"])

    page = await app_client.get(url)
    assert page.status_code == 403 and "may not decide" in page.text
    assert 'method="post"' not in page.text
    done = await app_client.post(url)
    assert done.status_code == 403 and "may not decide" in done.text
    assert "recorded" not in done.text
    assert (await mail.ops.store.human_request(request.id)).status == "pending"

    # The refusal did not use the link up: allowed again, it works, and says what it knows.
    mail.ops.runtime = allowed
    done = await app_client.post(url)
    assert done.status_code == 200
    assert "sent for recording" in done.text and "whether it counted" in done.text
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "approved"
