"""Single sign-on in a real browser: Chromium, a real ``opsloop run``, a real OpenID Provider.

A developer signs in through the provider's login form, asks for a production deploy and
is refused when approving it; an on-call engineer signs in in a second browser context and
approves. Roles come from the provider's groups only (``oidc-group:``). The provider runs on
``localhost`` and the console on ``127.0.0.1``: different sites, as in production, so the
browser applies its cross-site cookie rules to the sign-in.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from bot.policy import DEFAULT_POLICY_FILE
from tests.channels.web.browser import CHROMIUM, LAUNCH_ARGS, WAIT_MS, need_chromium, screenshots
from tests.channels.web.test_console_browser import _clean_env, _free_port, _wait_for_link
from tests.oidc.provider import PASSWORDS, Provider, running_provider

POLICY_ROLES = """
[roles]
oncall = ["oidc-group:sre-oncall"]
developer = ["oidc-group:developers"]
"""


def _policy(tmp_path: Path) -> Path:
    """The default policy with its roles given by the provider's groups instead of names."""
    text = DEFAULT_POLICY_FILE.read_text("utf-8")
    text = re.sub(r"\[roles\]\n(?:[^\[\n].*\n)+", POLICY_ROLES.lstrip(), text, count=1)
    assert "oidc-group:sre-oncall" in text
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    return path


@contextmanager
def _opsloop_run(tmp_path: Path, port: int, provider: Provider) -> Iterator[str]:
    home = tmp_path / "home"
    home.mkdir()
    url = f"http://127.0.0.1:{port}"
    env = {
        **_clean_env(home, port, secrets.token_urlsafe(18)),
        **provider.settings(),
        "OPSLOOP_PUBLIC_URL": url,
        "OPSLOOP_POLICY_FILE": str(_policy(tmp_path)),
    }
    log_path = tmp_path / "opsloop-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_link(process, url, log_path)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
                pytest.fail(f"opsloop run did not stop on SIGINT:\n{log_path.read_text()}")
    assert process.returncode == 0, log_path.read_text()


class Guarded:
    """Browser contexts that may talk only to the console and the provider."""

    def __init__(self, browser: Browser, allowed: tuple[str, ...]) -> None:
        self.browser = browser
        self.allowed = (*allowed, "data:")
        self.outside: list[str] = []
        self.problems: list[str] = []

    def page(self) -> Page:
        context: BrowserContext = self.browser.new_context(viewport={"width": 1280, "height": 900})

        def local_only(route: Route) -> None:
            if route.request.url.startswith(self.allowed):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        context.route("**/*", local_only)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        return page


def sign_in_with_sso(page: Page, url: str, user: str) -> None:
    """The sign-in page's SSO button, the provider's login form and consent, back signed in."""
    page.goto(f"{url}/login")
    page.get_by_role("link", name="Sign in with SSO").click()
    expect(page.get_by_role("heading", name="Sign in to the test provider")).to_be_visible()
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(f"{url}/")  # the "signed in" page moves on by itself
    expect(page.locator("#whoami .whoami-principal")).to_have_text(f"oidc:{user}@example.com")
    expect(page.locator("#whoami .whoami-auth")).to_have_text("oidc")


def test_a_developer_asks_and_on_call_approves_after_signing_in_with_sso(
    tmp_path: Path,
) -> None:
    need_chromium()
    port = _free_port()
    console = f"http://127.0.0.1:{port}"
    shots = screenshots(tmp_path)
    with (
        running_provider(
            tmp_path / "provider.log",
            redirect_uris=[f"{console}/login/oidc/callback"],
            post_logout_redirect_uris=[f"{console}/logout"],
        ) as provider,
        _opsloop_run(tmp_path, port, provider) as url,
        sync_playwright() as playwright,
    ):
        expect.set_options(timeout=WAIT_MS)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        guarded = Guarded(browser, (url, provider.issuer))
        try:
            developer = guarded.page()
            sign_in_with_sso(developer, url, "dev-1")
            developer.fill("#message-text", "deploy checkout 1.4.2 to production")
            developer.get_by_role("button", name="Send").click()
            card = developer.locator(".card.approval")
            expect(card.locator(".card-facts")).to_contain_text("role:oncall")
            expect(developer).to_have_url(re.compile(r"/\?thread=th_\w+$"))
            thread_url = developer.url

            # The developer may not approve their own production deploy.
            card.get_by_role("button", name="Approve", exact=True).click()
            expect(card.locator(".refusals li")).to_contain_text(
                "oidc:dev-1@example.com may not decide"
            )
            expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
            developer.screenshot(path=shots / "sso-1-refused.png")

            # On-call signs in in another browser context, through the provider, and approves.
            oncall = guarded.page()
            sign_in_with_sso(oncall, url, "oncall-1")
            oncall.goto(thread_url)
            their_card = oncall.locator(".card.approval")
            their_card.get_by_role("button", name="Approve", exact=True).click()
            expect(their_card.locator(".card-outcome")).to_contain_text(
                "Approved by oidc:oncall-1@example.com"
            )
            deployer = oncall.locator("#messages .msg").filter(has_text="agent · deployer")
            expect(deployer.last).to_contain_text("approved by oidc:oncall-1@example.com")
            oncall.screenshot(path=shots / "sso-2-approved.png")

            # Signing out goes through the provider's sign-out and back.
            oncall.get_by_role("link", name="Sign out").click()
            oncall.get_by_role("button", name="Yes, sign out").click()
            expect(oncall).to_have_url(re.compile(re.escape(f"{url}/logout")))
            expect(oncall.get_by_text("You are signed out")).to_be_visible()
        finally:
            browser.close()
    assert guarded.outside == [], "a page fetched something from outside the test's servers"
    assert guarded.problems == []
