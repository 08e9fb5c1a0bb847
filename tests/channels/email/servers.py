"""Real mail servers on loopback for the email tests: Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot runs rootless-style from a config written into a temp dir: its own base, state and
mail directories, a passwd-file with a plaintext test password, no TLS, on a free port.
As root it still must not run its login and mail processes as root, so those use the
package's unprivileged users (``dovenull``/``dovecot``) and ``nobody``; as anyone else,
everything runs as the current user.
"""

from __future__ import annotations

import asyncio
import atexit
import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aioimaplib import aioimaplib
from aiosmtpd.smtp import SMTP, Envelope, Session

USER = "bot@example.com"
PASSWORD = "test-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


def _user(*names: str) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LookupError(f"none of the users {names} exists")


@dataclass
class Dovecot:
    """A running Dovecot: where it listens and how to log in."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    tls_port: int | None = None
    host: str = "127.0.0.1"
    user: str = USER
    password: str = PASSWORD

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    async def client(self) -> Any:
        imap = aioimaplib.IMAP4(self.host, self.port, timeout=10)
        await imap.wait_hello_from_server()
        response = await imap.login(self.user, self.password)
        assert response.result == "OK", response
        return imap

    async def create(self, mailbox: str) -> None:
        imap = await self.client()
        try:
            response = await imap.create(mailbox)
            assert response.result == "OK", response
        finally:
            await imap.logout()

    async def delete(self, mailbox: str) -> None:
        imap = await self.client()
        try:
            response = await imap.delete(mailbox)
            assert response.result == "OK", response
        finally:
            await imap.logout()

    async def append(self, raw: bytes, mailbox: str) -> int:
        """Deliver a mail as the receiving server would; its UID."""
        imap = await self.client()
        try:
            response = await imap.append(raw, mailbox=mailbox)
            assert response.result == "OK", response
        finally:
            await imap.logout()
        text = b" ".join(x for x in response.lines if isinstance(x, bytes)).decode()
        return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def start_dovecot(*, idle: bool = True, tls: tuple[Path, Path] | None = None) -> Dovecot:
    """Start Dovecot on a free loopback port (raises ``RuntimeError`` if it will not).

    With ``tls`` (certificate, key) it offers STARTTLS on its port and implicit TLS on
    ``tls_port``.
    """
    binary = dovecot_binary()
    if binary is None:
        raise FileNotFoundError("dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="opsloop-dovecot-"))
    root.chmod(0o755)  # the unprivileged login and mail processes must reach it
    mail = root / "mail"
    mail.mkdir()
    if os.geteuid() == 0:
        login, internal = _user("dovenull", "nobody"), _user("dovecot", "nobody")
        owner = _user("nobody")
        os.chown(mail, owner.pw_uid, owner.pw_gid)
    else:
        login = internal = owner = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(internal.pw_gid).gr_name
    users = (
        f"default_login_user = {login.pw_name}\n"
        f"default_internal_user = {internal.pw_name}\n"
        f"default_internal_group = {group}\n"
    )
    uid, gid = owner.pw_uid, owner.pw_gid
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::{mail}/bot\n")
    port, tls_port = free_port(), free_port()
    capability = "" if idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n"
    if tls is None:
        ssl_lines = "ssl = no\n"
    else:
        for path in tls:
            path.chmod(0o644)
        ssl_lines = f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}\n"
    (root / "dovecot.conf").write_text(
        f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = opsloop-test-{port}
{users}{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
log_path = {root}/dovecot.log
{capability}service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port if tls else 0}
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid={uid} gid={gid} home={mail}/%u
}}
"""
    )
    with (root / "stderr").open("wb") as stderr:  # the child keeps its own copy
        process = subprocess.Popen(
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Dovecot(port=port, root=root, process=process, tls_port=tls_port if tls else None)
    atexit.register(server.stop)  # should a fixture teardown not run
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.05)  # waiting for the listener: it is not up yet
    err = (root / "stderr").read_text(errors="replace")
    log = server.log()
    server.stop()
    raise RuntimeError(f"dovecot did not start: {err.strip()} {log.strip()}".strip())


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that keeps every mail it is given."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    refuse: str | None = None
    """An SMTP reply to give instead of accepting, e.g. ``451 4.3.0 try later``."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse is not None:
            return self.refuse
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        async with self.changed:
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            self.changed.notify_all()
        return "250 OK"

    async def wait_for(self, predicate: Callable[[list[EmailMessage]], bool]) -> None:
        async with asyncio.timeout(20), self.changed:
            await self.changed.wait_for(lambda: predicate(self.messages))


@dataclass
class SmtpServer:
    port: int
    recorder: SmtpRecorder
    server: asyncio.Server
    host: str = "127.0.0.1"

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_smtp(tls: ssl.SSLContext | None = None) -> SmtpServer:
    """aiosmtpd on a free loopback port, in the running event loop.

    With ``tls`` it requires STARTTLS before accepting mail.
    """
    recorder = SmtpRecorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            recorder,
            hostname="smtp.test",
            ident="opsloop test SMTP",
            tls_context=tls,
            require_starttls=tls is not None,
        ),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    return SmtpServer(port=port, recorder=recorder, server=server)


def dovecot_or_reason(
    idle: bool = True, tls: tuple[Path, Path] | None = None
) -> Iterator[Dovecot | str]:
    try:
        server = start_dovecot(idle=idle, tls=tls)
    except (FileNotFoundError, LookupError, RuntimeError, subprocess.CalledProcessError) as exc:
        yield str(exc)
        return
    try:
        yield server
    finally:
        server.stop()
