"""Reading mail without servers: MIME, text, quotes, signatures, authentication, loops."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from channels.email._auth import automatic, verify_sender
from channels.email._parse import MalformedMailError, parse_mail, subject_key
from channels.email._text import html_to_text, strip_quotes


def mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann Example <Ann@Example.com>"
    message["To"] = "opsloop@example.com"
    message["Subject"] = "hello"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("body")
    return message


def test_plain_text_is_preferred_and_html_is_made_plain():
    message = mail()
    message.set_content("the plain words")
    message.add_alternative("<p>the <b>html</b> words</p>", subtype="html")
    assert parse_mail(bytes(message)).body == "the plain words"
    html_only = mail()
    html_only.set_content(
        "<html><head><style>p{}</style></head><body><p>deploy <b>it</b></p>"
        "<ul><li>one</li><li>two</li></ul><script>x()</script>"
        '<div class="gmail_quote">On Mon wrote: <blockquote>old</blockquote></div></body></html>',
        subtype="html",
    )
    assert parse_mail(bytes(html_only)).body == "deploy it\n\n- one\n\n- two"


def test_html_blockquotes_and_outlook_history_are_dropped():
    assert html_to_text("<div>yes</div><blockquote><p>old <i>x</i></p></blockquote>") == "yes"
    assert html_to_text('<p>ok</p><div id="divRplyFwdMsg">From: x</div>') == "ok"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("APPROVE\n\nOn Tue, 3 Mar 2026, Bot <b@x> wrote:\n> Approve?\n> more", "APPROVE"),
        ("yes\nOn Tue, 3 Mar 2026 at 10:00, Bot\n<bot@example.com> wrote:\n> old", "yes"),
        ("REJECT too risky\n\n-- \nAnn\nSRE team", "REJECT too risky"),
        ("fine\n\nSent from my iPhone", "fine"),
        ("ok\n-----Original Message-----\nFrom: bot\nSent: Monday", "ok"),
        ("ok\n\nFrom: opsloop <b@x>\nSent: Monday\nTo: me", "ok"),
        ("> quoted first\nmy answer\n> quoted again\nmore", "my answer\nmore"),
        ("Le lun. 2 mars 2026, Bot a écrit :\n> x", ""),
    ],
)
def test_quoted_history_and_signatures_are_stripped(text, kept):
    assert strip_quotes(text) == kept


def test_charsets_are_decoded_and_attachments_listed_not_read():
    message = mail(Message_ID="<a1@example.com>")
    message.set_content("Grüße aus Köln", charset="iso-8859-1")
    message.add_attachment(b"PK\x03\x04" * 300, maintype="application", subtype="zip",
                           filename="dump.zip")  # fmt: skip
    parsed = parse_mail(bytes(message))
    assert parsed.body == "Grüße aus Köln"
    [attachment] = parsed.attachments
    assert str(attachment) == "dump.zip (application/zip, 1 KB)"
    assert parsed.sender == "ann@example.com" and parsed.sender_name == "Ann Example"
    assert parsed.message_id == "a1@example.com"


def test_mislabelled_utf8_is_read_and_a_mail_without_id_gets_a_stable_one():
    raw = (
        b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.body == "café"
    assert parsed.message_id == parse_mail(raw).message_id
    assert parsed.message_id.endswith("@opsloop.invalid")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Subject: x\r\n\r\nno sender\r\n", "exactly one address"),
        (b"From: a@x.com, b@y.com\r\n\r\ntwo senders\r\n", "exactly one address"),
        (
            b'From: a@x.com\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\nnothing',
            "broken MIME",
        ),
    ],
)
def test_unreadable_mail_says_why(raw, reason):
    with pytest.raises(MalformedMailError, match=reason):
        parse_mail(raw)


def test_subject_keys_ignore_reply_prefixes_and_tags():
    assert subject_key("Re: AW: [ops] Deploy  Checkout") == "deploy checkout"
    assert subject_key("RE[2]: Fwd: deploy checkout") == "deploy checkout"


AR = "Authentication-Results"


def verdict(*results: str, authserv: str | None = "mx.example.com", trust: bool = False):
    message = mail()
    for value in results:
        message[AR] = value
    return verify_sender(message, "example.com", authserv_id=authserv, trust_server=trust)


def test_dmarc_pass_or_aligned_dkim_from_our_own_server_authenticates():
    for judged in (
        verdict("mx.example.com; dmarc=pass (p=none) header.from=example.com"),
        verdict("mx.example.com 1; dkim=pass header.d=mail.example.com"),
        verdict('MX.example.com; dkim=pass header.i="@example.com"'),
    ):
        assert judged.authenticated
        assert judged.auth == "email-dmarc"  # what identities record as how they were known


@pytest.mark.parametrize(
    "results",
    [
        (),
        ("mx.example.com; dmarc=fail header.from=example.com",),
        ("mx.example.com; dkim=pass header.d=other.test; dmarc=none",),
        ("mx.example.com; dmarc=pass header.from=other.test",),
        ("mx.attacker.test; dmarc=pass header.from=example.com",),
        # the sender's forged header sits below the one our server added on top
        (
            "mx.example.com; dmarc=fail header.from=example.com",
            "mx.example.com; dmarc=pass header.from=example.com",
        ),
    ],
)
def test_anything_else_does_not(results):
    judged = verdict(*results)
    assert not judged.authenticated and judged.reason


def test_a_trusted_server_or_a_missing_authserv_id_decides_alone():
    assert verdict(trust=True).authenticated
    assert verdict(trust=True).auth == "email"  # only the server vouched
    assert not verdict("mx.example.com; dmarc=pass", authserv=None).authenticated


@pytest.mark.parametrize(
    ("headers", "sender", "automatic_"),
    [
        ({"Auto_Submitted": "auto-generated"}, "a@example.com", True),
        ({"Auto_Submitted": "no"}, "a@example.com", False),
        ({"Precedence": "junk"}, "a@example.com", True),
        ({"Return_Path": "<>"}, "a@example.com", True),
        ({"Return_Path": "<a@example.com>"}, "a@example.com", False),
        ({"X_Autoreply": "yes"}, "a@example.com", True),
        ({}, "MAILER-DAEMON@example.com", True),
        ({}, "a@example.com", False),
    ],
)
def test_machines_are_recognised(headers, sender, automatic_):
    assert (automatic(mail(**headers), sender) is not None) is automatic_
