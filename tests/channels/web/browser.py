"""What the browser tests share: Debian's Chromium, launched offline, and a network guard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import need_service

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000
"""How long to wait for the page to show something: a worker step takes well under this."""


def need_chromium() -> None:
    """Skip (locally) or fail (under CI=true) when Debian's Chromium is not installed."""
    if not CHROMIUM.exists():
        need_service("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")


def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$OPSLOOP_SCREENSHOTS``, else the test's temporary directory."""
    where = Path(os.environ.get("OPSLOOP_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@dataclass
class Watched:
    """A page, and what went wrong on it: requests off the server, script errors."""

    page: Page
    browser: Browser
    base_url: str
    outside: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def guard(self, page: Page) -> Page:
        """Keep ``page`` on the server and record its script errors."""

        def local_only(route: Route) -> None:
            if route.request.url.startswith((self.base_url, "data:")):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        page.set_default_timeout(WAIT_MS)
        page.route("**/*", local_only)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        return page

    def another_browser(self) -> Page:
        """A page in a fresh browser context: its own cookies, as another person's browser."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        return self.guard(context.new_page())


@contextmanager
def console_page(base_url: str) -> Iterator[Watched]:
    """A fresh browser page that may only talk to ``base_url``; checked on the way out."""
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watched = Watched(page, browser, base_url)
            watched.guard(page)
            yield watched
        finally:
            browser.close()
    assert watched.outside == [], "the console fetched something from outside the server"
    assert watched.problems == []


def sign_in_with_token(page: Page, base_url: str, token: str) -> None:
    """Sign in through the form, the API token pasted in (it never goes in an address)."""
    page.goto(f"{base_url}/login")
    page.get_by_placeholder("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/")


def sign_in_with_link(page: Page, base_url: str, link: str, principal: str) -> None:
    """Open a one-time login link; the header then says who signed in, and how."""
    page.goto(link)
    expect(page).to_have_url(f"{base_url}/")
    expect(page.locator(".whoami-name")).to_have_attribute("title", principal)
    expect(page.locator(".whoami-auth")).to_have_text("login-link")


def ask(page: Page, text: str) -> None:
    """Send a message and wait until the thread shows it."""
    page.fill("#message-text", text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages .msg").filter(has_text=text).last).to_be_visible()
