"""The email channel's small parts: links, outbound headers, settings and the plugin."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.events import HumanRequested, utcnow
from bot.policy import Person
from channels.email import EmailSettings, gateway, plugin
from channels.email._compose import approval_text, build_mail, reply_subject
from channels.email._links import LinkError, make_links, read_link
from channels.email._send import approver_addresses
from channels.email._settings import link_key, load_email_settings

KEY = b"k" * 32


def test_links_are_signed_expiring_and_name_their_approver():
    expires = utcnow() + timedelta(hours=1)
    tokens = make_links(KEY, "hr_1", "oncall@example.com", expires)
    approve = read_link(KEY, tokens["approve"], now=utcnow())
    reject = read_link(KEY, tokens["reject"], now=utcnow())
    assert (approve.decision, reject.decision) == ("approve", "reject")
    assert approve.address == "oncall@example.com" and approve.request_id == "hr_1"
    assert approve.token_id == reject.token_id  # one mail, one use
    with pytest.raises(LinkError, match="not valid"):
        read_link(b"another key" * 3, tokens["approve"], now=utcnow())
    with pytest.raises(LinkError, match="expired"):
        read_link(KEY, tokens["approve"], now=expires + timedelta(seconds=1))


def test_reply_subjects_never_stack():
    assert reply_subject("deploy") == "Re: deploy"
    assert reply_subject("RE: deploy") == "RE: deploy"
    assert reply_subject("  ") == "Re: opsloop"


def test_outbound_mail_threads_and_keeps_the_root_when_references_grow():
    refs = [f"r{i}@x" for i in range(15)]
    built = build_mail(
        sender="opsloop@example.com",
        to=["a@example.com"],
        cc=["b@example.com"],
        subject="Re: x",
        text="Approve: https://opsloop.test/email/decide/abc\n\nplain <words>",
        message_id="m1@example.com",
        parent="r14@x",
        references=refs,
    )
    assert built["In-Reply-To"] == "<r14@x>" and built["Cc"] == "b@example.com"
    kept = str(built["References"]).split()
    assert kept[0] == "<r0@x>" and kept[-1] == "<r14@x>" and len(kept) == 10
    html = built.get_body(preferencelist=("html",)).get_content()
    assert 'href="https://opsloop.test/email/decide/abc"' in html and "&lt;words&gt;" in html
    assert built["X-Auto-Response-Suppress"] == "All"


def request(**extra) -> HumanRequested:
    values = {
        "request_id": "hr_1",
        "type": "approval",
        "tool": "restart",
        "arguments": {"service": "api", "replicas": 3},
        "call_id": "c1",
        "question": "Approve restart?",
        "approvers": ("role:oncall",),
        "expires_at": utcnow(),
    }
    return HumanRequested(**(values | extra))


def test_the_approval_text_shows_the_exact_action():
    text = approval_text(request(), {"approve": "A", "reject": "R"}, for_approver=True)
    assert "Action: restart\n  service: api\n  replicas: 3" in text
    assert "Approve: A" in text and "APPROVE on the first line" in text
    waiting = approval_text(request(), None, for_approver=False)
    assert "Approve:" not in waiting and "Waiting for: role:oncall" in waiting
    question = approval_text(request(type="question", options=("a", "b")), None, for_approver=True)
    assert "Options: a / b" in question


def test_approvers_are_found_through_roles(policy):
    roles = dict(policy.roles) | {"oncall": ("email:On@Example.com", "slack:U1")}
    policy = policy.model_copy(update={"roles": roles})
    assert approver_addresses(policy, ("role:oncall", "email:x@example.com", "role:none")) == [
        "on@example.com",
        "x@example.com",
    ]


def test_settings_are_checked_and_secrets_hidden(tmp_path):
    with pytest.raises(ValueError, match="IMAP_USER, IMAP_PASSWORD"):
        EmailSettings(IMAP_HOST="imap.example.com", EMAIL_ADDRESS="bot@example.com")
    with pytest.raises(ValueError, match="EMAIL_AUTHSERV_ID"):
        EmailSettings(
            IMAP_HOST="h", EMAIL_ADDRESS="b@example.com", IMAP_USER="u", IMAP_PASSWORD="p"
        )
    settings = EmailSettings(SMTP_TLS="ssl", IMAP_TLS="starttls", SMTP_PASSWORD="hunter2")
    assert (settings.smtp_port_number, settings.imap_port_number) == (465, 143)
    assert "hunter2" not in repr(settings)
    bot = load_settings(OPSLOOP_HOME=str(tmp_path))
    assert link_key(settings, bot) is None
    assert settings.links_base(bot) == bot.console_url
    with_token = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_API_TOKEN="t" * 24)
    assert link_key(settings, with_token) not in (None, b"t" * 24)


def test_the_plugin_offers_a_gateway_only_with_imap_settings(monkeypatch):
    load_email_settings.cache_clear()
    monkeypatch.delenv("IMAP_HOST", raising=False)
    assert gateway() is None
    load_email_settings.cache_clear()
    monkeypatch.setenv("IMAP_HOST", "imap.example.com")
    with pytest.raises(ConfigError, match="IMAP_HOST is set"):
        gateway()
    for name, value in {
        "EMAIL_ADDRESS": "bot@example.com",
        "IMAP_USER": "bot",
        "IMAP_PASSWORD": "x",
        "EMAIL_TRUST_MAIL_SERVER": "true",
    }.items():
        monkeypatch.setenv(name, value)
    load_email_settings.cache_clear()
    assert callable(gateway())
    load_email_settings.cache_clear()
    assert plugin.settings is EmailSettings and "email" in plugin.senders


def test_approvers_are_found_through_the_people_a_role_names(policy):
    """A role that names a person reaches them at the address among their principals."""
    people = dict(policy.people) | {
        "ann": Person(principals=("web:ann", "email:Ann@Example.com")),
    }
    roles = dict(policy.roles) | {"oncall": ("ann", "slack-group:S1")}
    policy = policy.model_copy(update={"people": people, "roles": roles})
    assert approver_addresses(policy, ("role:oncall",)) == ["ann@example.com"]
