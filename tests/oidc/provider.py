"""A real OpenID Provider for the tests: ``provider.mjs`` (the ``oidc-provider`` package).

``running_provider`` installs it with ``npm ci`` when ``node_modules`` is missing, starts it on
a free loopback port, waits for its discovery document, and stops it afterwards. Without Node
or npm the test is skipped, with the reason (failed under ``CI=true``).

Its issuer is ``http://localhost:PORT`` while the console under test is on ``127.0.0.1``: two
different sites to a browser, as a real provider and a real console are, so cookie rules
(``SameSite``) act in the tests as they do in production.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

from tests.conftest import need_service

HERE = Path(__file__).parent
CLIENT_ID = "opsloop"
CLIENT_SECRET = "opsloop-test-secret"
PASSWORDS = {
    "dev-1": "dev-1-password",
    "oncall-1": "oncall-1-password",
    "no-email": "no-email-password",
}
"""The provider's people (see provider.mjs): dev-1 in group developers, oncall-1 in sre-oncall."""

_REAL_SEND = httpx2.HTTPTransport.handle_request
_REAL_ASEND = httpx2.AsyncHTTPTransport.handle_async_request
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Provider:
    """A running provider."""

    issuer: str
    client_id: str
    client_secret: str
    log: Path

    def settings(self, scopes: str = "openid email profile groups") -> dict[str, str]:
        """The console's settings for this provider."""
        return {
            "OPSLOOP_OIDC_ISSUER": self.issuer,
            "OPSLOOP_OIDC_CLIENT_ID": self.client_id,
            "OPSLOOP_OIDC_CLIENT_SECRET": self.client_secret,
            "OPSLOOP_OIDC_SCOPES": scopes,
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        need_service("Node.js", "node and npm are needed for the test OpenID Provider")
    assert node is not None and npm is not None
    return node, npm


def install() -> str:
    """``npm ci`` in tests/oidc unless it was done; the path of ``node``."""
    node, npm = _tools()
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            need_service("oidc-provider", f"npm ci failed in {HERE}: {done.stderr.strip()[-500:]}")
    return node


def _discovery(issuer: str) -> dict[str, object] | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(f"{issuer}/.well-known/openid-configuration", timeout=2) as response:
            found: dict[str, object] = json.loads(response.read())
            return found
    except (urllib.error.URLError, OSError, ValueError):
        return None


@contextmanager
def running_provider(
    log: Path, *, redirect_uris: Sequence[str], post_logout_redirect_uris: Sequence[str] = ()
) -> Iterator[Provider]:
    """Start ``provider.mjs``; yield it once its discovery document answers; stop it."""
    node = install()
    port = free_port()
    issuer = f"http://localhost:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_POST_LOGOUT_REDIRECT_URIS": ",".join(post_logout_redirect_uris),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [node, str(HERE / "provider.mjs"), str(port)],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,  # it stops when this closes, even if we are killed
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while (found := _discovery(issuer)) is None or found.get("issuer") != issuer:
                if process.poll() is not None:
                    pytest.fail(f"the test OpenID Provider exited:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the test OpenID Provider did not answer:\n{log.read_text()}")
                time.sleep(0.1)  # polling a process we do not control; nothing to wait on
            yield Provider(issuer, CLIENT_ID, CLIENT_SECRET, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            finally:
                assert process.stdin is not None
                process.stdin.close()


def allow_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``httpx2`` reach loopback addresses for real (the provider), and only those.

    ``tests.model_guard`` replaces httpx2's real transports so that no test reaches a paid
    API; the console's OpenID client sends through httpx2 too. Anything not on loopback is
    still handed to the guard, which refuses it.
    """
    guarded_send = httpx2.HTTPTransport.handle_request
    guarded_asend = httpx2.AsyncHTTPTransport.handle_async_request

    def send(self: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        if urlsplit(str(request.url)).hostname in LOOPBACK_HOSTS:
            return _REAL_SEND(self, request)
        return guarded_send(self, request)

    async def asend(self: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> httpx2.Response:
        if urlsplit(str(request.url)).hostname in LOOPBACK_HOSTS:
            return await _REAL_ASEND(self, request)
        return await guarded_asend(self, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", send)
    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", asend)
