"""Mail in, reply out, in one thread: against Dovecot and an SMTP server on loopback."""

from __future__ import annotations

from bot.events import ThreadStatus, UserMessage
from tests.channels.email.conftest import DEV, ONCALL
from tests.channels.email.harness import BOT, bare, human_mail, text_of


async def test_a_mail_gets_a_reply_in_the_same_thread(mail):
    raw, first_id = human_mail(DEV, "Production?", "what is running in production?")
    await mail.deliver(raw)
    await mail.work()

    [reply] = await mail.sent_to(DEV)
    assert bare(reply["In-Reply-To"]) == first_id
    assert first_id in str(reply["References"])
    assert reply["Subject"] == "Re: Production?"
    assert reply["From"].addresses[0].addr_spec == BOT
    assert reply["Auto-Submitted"] == "auto-replied"
    assert "checkout" in text_of(reply)
    assert reply.get_body(preferencelist=("html",)) is not None

    # The person answers the bot's reply: the answer joins the same thread.
    answer, answer_id = human_mail(
        DEV,
        "Re: Production?",
        "and how is checkout in production?\n\nOn Mon, the bot wrote:\n> old text",
        in_reply_to=bare(reply["Message-ID"]),
        references=(first_id, bare(reply["Message-ID"])),
    )
    await mail.deliver(answer)
    await mail.work()
    [thread] = await mail.ops.store.list_threads()
    assert thread.conversation.thread_key == first_id
    loaded = await mail.ops.store.load_thread(thread.id)
    said = [e.text for e in loaded.events if isinstance(e, UserMessage)]
    assert said == [
        "Production?\n\nwhat is running in production?",
        "and how is checkout in production?",
    ]
    assert loaded.status == ThreadStatus.WAITING
    second = (await mail.sent_to(DEV, 2))[1]
    assert bare(second["In-Reply-To"]) == answer_id
    refs = str(second["References"])
    assert refs.index(first_id) < refs.index(bare(reply["Message-ID"])) < refs.index(answer_id)
    assert second["Subject"] == "Re: Production?"


async def test_a_risky_request_gets_an_approval_mail(mail):
    raw, first_id = human_mail(DEV, "deploy", "deploy checkout 1.4.2 to production")
    await mail.deliver(raw)
    await mail.work()

    [thread] = await mail.ops.store.list_threads()
    assert thread.status == ThreadStatus.PAUSED
    [request] = await mail.ops.store.human_requests()
    [ask] = await mail.sent_to(ONCALL)
    body = text_of(ask)
    assert (
        "Action: deploy" in body and "version: 1.4.2" in body and "environment: production" in body
    )
    assert "/email/decide/" in body and "APPROVE" in body
    assert bare(ask["In-Reply-To"]) == first_id
    assert ask["Subject"] == "Re: deploy"
    assert request.id in body
    [note] = await mail.sent_to(DEV)
    assert "/email/decide/" not in text_of(note)
    assert "role:oncall" in text_of(note)


async def test_a_reply_without_references_joins_its_thread_by_subject(mail):
    raw, first_id = human_mail(DEV, "Checkout status", "how is checkout in production?")
    await mail.deliver(raw)
    await mail.work()
    # A client that drops In-Reply-To and References: only "Re:" and the subject remain.
    again, _ = human_mail(DEV, "RE: checkout status", "and in staging?")
    await mail.deliver(again)
    other, _ = human_mail(ONCALL, "Re: Checkout status", "what is running in staging?")
    await mail.deliver(other)
    await mail.work()
    threads = await mail.ops.store.list_threads()
    keys = sorted(t.conversation.thread_key for t in threads)
    assert len(threads) == 2 and first_id in keys  # another sender's mail starts its own
    joined = next(t for t in threads if t.conversation.thread_key == first_id)
    loaded = await mail.ops.store.load_thread(joined.id)
    said = [e.text for e in loaded.events if isinstance(e, UserMessage)]
    assert said[-1] == "and in staging?"
