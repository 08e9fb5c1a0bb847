"""TLS to the mail servers: IMAP STARTTLS and implicit TLS, SMTP STARTTLS, and trust."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.email._imap import ImapMailbox
from tests.channels.email.conftest import DEV
from tests.channels.email.harness import human_mail
from tests.channels.email.servers import Dovecot, dovecot_or_reason, make_certificate
from tests.conftest import need_service


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot_tls_server(certificate) -> Iterator[Dovecot | str]:
    yield from dovecot_or_reason(tls=certificate)


@pytest.fixture
def dovecot_tls(dovecot_tls_server) -> Dovecot:
    if isinstance(dovecot_tls_server, str):
        need_service("Dovecot", dovecot_tls_server)
    return dovecot_tls_server


@pytest.fixture
def trusting(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def server_tls(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_mail_flows_over_tls(make_mail, dovecot_tls, trusting, server_tls, mode):
    port = dovecot_tls.port if mode == "starttls" else dovecot_tls.tls_port
    mail = await make_mail(
        dovecot_tls,
        smtp_tls=server_tls,
        client_tls=trusting,
        IMAP_TLS=mode,
        IMAP_PORT=port,
        SMTP_TLS="starttls",
    )
    await mail.start()
    raw, message_id = human_mail(DEV, "tls", "what is running in production?")
    await mail.deliver(raw)
    await mail.work()
    [reply] = await mail.sent_to(DEV)
    assert message_id in str(reply["In-Reply-To"])


async def test_an_untrusted_server_certificate_is_refused(make_mail, dovecot_tls):
    mail = await make_mail(dovecot_tls, IMAP_TLS="starttls")
    mailbox = ImapMailbox(mail.settings)  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        await mailbox.open()
    await mailbox.close()
