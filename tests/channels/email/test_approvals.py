"""Approvals by mail: a reply APPROVE from an authenticated approver, and signed links."""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from bot.api import create_app
from bot.config import load_settings
from bot.events import CallTool, HumanResponded, Reply, ThreadStatus, ToolCalled
from bot.model import ScriptedModel
from bot.plugins import Plugin
from bot.store._tables import InboxRow
from channels.email._routes import add_routes
from tests.channels.email.conftest import DEV, ONCALL
from tests.channels.email.harness import bare, human_mail, links_in, text_of


async def paused_on_deploy(mail):
    raw, first_id = human_mail(DEV, "deploy please", "deploy checkout 1.4.2 to production")
    await mail.deliver(raw)
    await mail.work()
    [request] = await mail.ops.store.human_requests()
    [ask] = await mail.sent_to(ONCALL)
    return first_id, request, ask


async def inbox(mail):
    async with mail.ops.store.db.session() as session:
        return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())


async def test_a_reply_approve_from_an_authenticated_approver_resumes_the_thread(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    reply, reply_id = human_mail(
        ONCALL,
        "Re: deploy please",
        f"APPROVE\n\nOn Tue, opsloop wrote:\n> {text_of(ask).splitlines()[0]}",
        in_reply_to=bare(ask["Message-ID"]),
        references=(first_id, bare(ask["Message-ID"])),
    )
    await mail.deliver(reply)
    await mail.work()

    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "approved"
    assert decided.decided_by == f"email:{ONCALL}"
    thread = await mail.ops.store.load_thread(request.thread_id)
    [call] = [e for e in thread.events if isinstance(e, ToolCalled)]
    assert call.approved_by == f"email:{ONCALL}" and call.arguments["version"] == "1.4.2"
    assert thread.status == ThreadStatus.WAITING
    # The outcome goes to the requester, in the same thread.
    result = (await mail.sent_to(DEV, 3))[-1]
    assert first_id in str(result["References"])
    assert result["Subject"] == "Re: deploy please"
    assert "1.4.2" in text_of(result)
    assert any("was approved by" in text_of(m) for m in mail.sent)
    assert len(await mail.ops.store.list_threads()) == 1
    assert reply_id


@pytest.mark.parametrize(
    "auth",
    [None, "fail", "forged"],
    ids=["unauthenticated", "dmarc-fail", "foreign-authserv-id"],
)
async def test_a_spoofed_or_unauthenticated_approve_changes_nothing(mail, auth):
    first_id, request, ask = await paused_on_deploy(mail)
    sent_before, processed_before = len(mail.sent), len(mail.dispatcher.of("process"))
    reply, _ = human_mail(
        ONCALL,
        "Re: deploy please",
        "APPROVE",
        auth=auth,
        in_reply_to=bare(ask["Message-ID"]),
        references=(first_id,),
    )
    await mail.deliver(reply)
    await mail.work()

    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    assert len(mail.dispatcher.of("process")) == processed_before  # nothing enqueued
    assert len(mail.sent) == sent_before  # nobody is mailed, least of all the forger
    refused = (await inbox(mail))[-1]
    assert refused.status == "failed"
    assert f"approve of request {request.id} by {ONCALL} refused" in refused.error
    assert refused.thread_id == request.thread_id
    thread = await mail.ops.store.load_thread(request.thread_id)
    assert thread.status == ThreadStatus.PAUSED
    assert not [e for e in thread.events if isinstance(e, HumanResponded)]


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


async def test_a_signed_link_approves_once_after_the_confirmation_page(mail, app_client):
    _, request, ask = await paused_on_deploy(mail)
    links = links_in(ask)
    assert set(links) == {"approve", "reject"}

    page = await app_client.get(path_of(links["approve"]))
    assert page.status_code == 200
    assert "checkout" in page.text and "1.4.2" in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    await mail.work()
    assert (
        await mail.ops.store.human_request(request.id)
    ).status == "pending"  # GET decides nothing

    done = await app_client.post(path_of(links["approve"]))
    assert done.status_code == 200, done.text
    # Before a worker records it, the request is still pending: the pair is one use.
    other = await app_client.post(path_of(links["reject"]), data={"reason": "no"})
    assert other.status_code == 409 and "already used" in other.text
    await mail.work()
    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "approved" and decided.decided_by == f"email:{ONCALL}"

    again = await app_client.post(path_of(links["approve"]))
    assert again.status_code == 409 and "Already decided" in again.text
    shown = await app_client.get(path_of(links["reject"]))
    assert "Already decided" in shown.text


async def test_a_forged_or_damaged_link_is_refused(mail, app_client):
    _, request, ask = await paused_on_deploy(mail)
    url = path_of(links_in(ask)["approve"])
    for bad in (url[:-3] + "xyz", url.replace("decide/", "decide/A")):
        response = await app_client.post(bad)
        assert response.status_code == 400
    assert (await mail.ops.store.human_request(request.id)).status == "pending"


async def test_a_reject_link_needs_a_reason_and_rejects(mail, app_client):
    _, request, ask = await paused_on_deploy(mail)
    url = path_of(links_in(ask)["reject"])
    page = await app_client.get(url)
    assert "textarea" in page.text
    assert (await app_client.post(url)).status_code == 400
    done = await app_client.post(url, data={"reason": "freeze until Monday"})
    assert done.status_code == 200
    await mail.work()
    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "rejected" and decided.comment == "freeze until Monday"


async def test_an_authenticated_sender_who_may_not_approve_is_refused_by_policy(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    # the requester replies to the thread: authenticated, but not an approver (four-eyes too)
    reply, _ = human_mail(
        DEV, "Re: deploy please", "approve", in_reply_to=first_id, references=(first_id,)
    )
    await mail.deliver(reply)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    thread = await mail.ops.store.load_thread(request.thread_id)
    [refused] = [e for e in thread.events if e.kind == "decision_refused"]
    assert refused.actor.principal == f"email:{DEV}"
    notice = (await mail.sent_to(DEV, 2))[-1]
    assert "may not decide" in text_of(notice)
    assert first_id in str(notice["References"]) and ask["To"] == ONCALL


async def test_a_question_is_answered_by_replying(make_mail):
    model = ScriptedModel(
        [
            CallTool(
                tool="ask_human",
                arguments={"question": "Which environment?", "options": ["staging", "production"]},
            ),
            Reply(text="Restarting in staging then."),
        ]
    )
    mail = await make_mail(model=model)
    await mail.start()
    raw, first_id = human_mail(DEV, "restart", "restart checkout please")
    await mail.deliver(raw)
    await mail.work()
    [question] = await mail.sent_to(DEV)
    assert "Which environment?" in text_of(question) and "staging / production" in text_of(question)

    answer, _ = human_mail(
        DEV,
        "Re: restart",
        "staging\n\nOn Tue, opsloop wrote:\n> Which environment?",
        in_reply_to=bare(question["Message-ID"]),
        references=(first_id, bare(question["Message-ID"])),
    )
    await mail.deliver(answer)
    await mail.work()
    [request] = await mail.ops.store.human_requests(status=None)
    assert request.status == "answered" and request.comment == "staging"
    assert "Restarting in staging then." in text_of((await mail.sent_to(DEV, 3))[-1])
