"""The console in a real browser (Debian's Chromium) against a real ``opsloop run``.

The whole stack runs as a user would start it: the API, a Celery worker and beat on the
embedded defaults (SQLite, file-system queue, offline model) in a temporary home. The test
signs in as a developer through the link ``opsloop run`` prints, and as an approver in a
second browser through ``opsloop login --as``; it waits only on what the page shows.

Screenshots go to ``$OPSLOOP_SCREENSHOTS`` if set, else to the test's temporary directory.
The test fails under ``CI=true`` if Chromium is missing, and skips locally.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.channels.web.browser import (
    Watched,
    ask,
    console_page,
    need_chromium,
    screenshots,
    sign_in_with_link,
)


@dataclass
class Running:
    url: str
    login_link: str
    log: Path
    env: dict[str, str]
    home: Path

    def login_link_for(self, person: str) -> str:
        """``opsloop login --as PERSON`` next to the running opsloop (same home)."""
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "login", "--as", person],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result
        found = re.search(r"http://\S+/login\?code=\S+", result.stdout)
        assert found, result.stdout
        return found[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(home: Path, port: int, token: str) -> dict[str, str]:
    """This environment minus anything that would point opsloop elsewhere (a real model…)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSLOOP_", "ANTHROPIC_", "OPENAI_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    return {
        **inherited,
        "OPSLOOP_HOME": str(home),
        "OPSLOOP_API_TOKEN": token,
        "OPSLOOP_BIND": f"127.0.0.1:{port}",
    }


def _wait_for_link(process: subprocess.Popen[bytes], url: str, log: Path) -> str:
    """The login link ``opsloop run`` printed, once the API answers /healthz."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"opsloop run exited with {process.returncode}:\n{log.read_text()}")
        found = re.search(r"http://\S+/login\?code=\S+", log.read_text(errors="replace"))
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200 and found:
                    return found[0]
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)  # polling a process we do not control; nothing to wait on instead
    pytest.fail(f"opsloop run did not come up within 90 s:\n{log.read_text()}")


@pytest.fixture
def opsloop_run(tmp_path: Path) -> Iterator[Running]:
    need_chromium()
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "opsloop-run.log"
    env = _clean_env(home, port, secrets.token_urlsafe(18))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to clean up if it hangs
        )
        try:
            link = _wait_for_link(process, url, log_path)
            yield Running(url=url, login_link=link, log=log_path, env=env, home=home)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
                pytest.fail(f"opsloop run did not stop on SIGINT:\n{log_path.read_text()}")
    assert process.returncode == 0, log_path.read_text()


def test_a_person_chats_approves_rejects_and_audits_in_a_browser(
    opsloop_run: Running, tmp_path: Path
) -> None:
    printed = opsloop_run.log.read_text()
    assert "Open the console as web:dev-1" in printed
    assert "A link for an approver: opsloop login --as oncall-1" in printed
    with console_page(opsloop_run.url) as watched:
        shots = screenshots(tmp_path)
        run_the_story(watched, opsloop_run, shots)


def run_the_story(watched: Watched, running: Running, shots: Path) -> None:
    page, url = watched.page, running.url
    # Sign in as dev-1 through the printed one-time link; the code leaves the address bar.
    sign_in_with_link(page, url, running.login_link, "web:dev-1")
    expect(page.locator("#my-roles")).to_have_text("developer")
    expect(page.locator(".whoami-name")).to_have_text("dev-1")
    expect(page.locator("#acting-user")).to_have_count(0)  # nobody else to be
    expect(page.locator("#dev-banner")).to_have_count(0)

    # A question: answered at once, and the thread survives a reload.
    ask(page, "what is running in staging?")
    expect(page).to_have_url(re.compile(r"/\?thread=th_\w+$"))
    inspector = page.locator("#messages .msg").filter(has_text="agent · inspector")
    expect(inspector).to_contain_text("checkout 1.4.2 in staging: healthy")
    expect(page.locator("#messages .line.tool")).to_contain_text("list_services")
    page.reload()
    expect(inspector).to_contain_text("checkout 1.4.2 in staging: healthy")

    # Markup in a message is shown as text, never run.
    hostile = '<img src=x onerror="window.owned=1"><script>window.owned=2</script>'
    ask(page, hostile)
    expect(inspector).to_have_count(2)
    expect(page.locator("#messages .msg-text").filter(has_text=hostile)).to_have_count(1)
    assert page.evaluate("window.owned") is None
    page.screenshot(path=shots / "1-chat-answer.png")

    # A risky change: an approval card with the exact call, who may approve, the expiry.
    page.get_by_role("button", name="New thread").click()
    expect(page).to_have_url(f"{url}/")
    expect(page.locator("#messages .msg")).to_have_count(0)
    ask(page, "deploy checkout 1.4.2 to production")
    card = page.locator(".card.approval")
    expect(card).to_contain_text("Approval needed", ignore_case=True)
    expect(card.locator(".card-tool")).to_contain_text("deploy")
    expect(card.locator(".args")).to_contain_text("production")
    expect(card.locator(".card-facts")).to_contain_text("role:oncall")
    expect(card.locator(".card-facts")).to_contain_text("Expires")
    expect(page.locator("#thread-status")).to_have_text("waiting for approval")
    page.screenshot(path=shots / "2-approval-card.png")

    # dev-1 asked and is no approver: refused, and told so on the card.
    card.get_by_role("button", name="Approve", exact=True).click()
    expect(card.locator(".refusals li")).to_contain_text("web:dev-1 may not decide")
    feedback = card.locator(".card-feedback")
    expect(feedback).to_have_text("web:dev-1's approval was refused (see above).")
    expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    page.screenshot(path=shots / "3-refused.png")

    # On-call signs in in another browser, with a link of their own, and approves.
    thread_url = page.url
    oncall = watched.another_browser()
    sign_in_with_link(oncall, url, running.login_link_for("oncall-1"), "web:oncall-1")
    expect(oncall.locator("#my-roles")).to_have_text("oncall")
    oncall.goto(thread_url)
    theirs = oncall.locator(".card.approval")
    expect(theirs.locator(".refusals li")).to_contain_text("Refused for web:dev-1")  # the record
    expect(theirs.locator(".card-feedback")).not_to_contain_text("was refused")  # not theirs
    theirs.get_by_role("button", name="Approve", exact=True).click()
    expect(theirs.locator(".card-outcome")).to_contain_text("Approved by web:oncall-1")
    oncall.screenshot(path=shots / "4-approved-by-oncall.png")

    # dev-1's page follows: the card shows who and when, the buttons and the expiry go.
    expect(card.locator(".card-outcome")).to_contain_text("Approved by web:oncall-1")
    expect(card.get_by_role("button")).to_have_count(0)
    expect(card.locator(".card-facts")).not_to_contain_text("Expires")
    expect(card).not_to_contain_text("in 60 min")
    deployer = page.locator("#messages .msg").filter(has_text="agent · deployer")
    expect(deployer).to_contain_text("deploy checkout")
    expect(deployer).to_contain_text("approved by web:oncall-1")
    # The agent answered: "answered", not the API's "waiting" (which reads like "needs me").
    expect(page.locator("#thread-status")).to_have_text("answered")
    expect(page.locator("#thread-status")).to_have_attribute(
        "title", "the agent answered; waiting for the next message"
    )
    # A reply's lines stay lines, so "- item" lines read as a list.
    reply = deployer.last.locator(".msg-text")
    expect(reply).to_have_css("white-space", "pre-wrap")
    assert "\n" in reply.inner_text()
    page.screenshot(path=shots / "4-approved.png")

    # A second risky request, rejected by on-call with a reason the agent passes on.
    ask(page, "restart search in production")
    expect(page.locator(".card.approval").filter(has_text="restart")).to_be_visible()
    oncall.reload()
    second = oncall.locator(".card.approval").filter(has_text="restart")
    second.get_by_role("button", name="Reject").click()
    second.locator("form.reject-form").get_by_role("button", name="Reject").click()
    expect(second.locator(".card-feedback")).to_have_text("A rejection needs a reason.")
    second.get_by_placeholder("Why reject? (required)").fill("change freeze until Monday")
    second.locator("form.reject-form").get_by_role("button", name="Reject").click()
    expect(second.locator(".card-outcome")).to_contain_text("Rejected by web:oncall-1")
    expect(second.locator(".card-outcome")).to_contain_text("change freeze until Monday")
    expect(second.locator(".card-facts")).not_to_contain_text("Expires")
    expect(deployer.last).to_contain_text("rejected by web:oncall-1: change freeze until Monday")
    oncall.screenshot(path=shots / "5-rejected.png")

    # On-call's own sessions and tokens: a token is shown once and revoked with a form.
    oncall.get_by_role("link", name="Sessions").click()
    expect(oncall.locator("table.sessions tbody tr")).to_have_count(1)
    expect(oncall.locator("tr.current")).to_contain_text("this browser")
    expect(oncall.locator("tr.current")).to_contain_text("login-link")
    oncall.get_by_role("link", name="Tokens").click()
    oncall.get_by_placeholder("what it is for").fill("pager bot")
    oncall.get_by_role("button", name="Make a token").click()
    expect(oncall.locator("#new-token-secret")).to_have_text(re.compile(r"^opl_tk_\w+_"))
    expect(oncall.locator("#new-token")).to_contain_text("acts as web:oncall-1 with read, act")
    oncall.screenshot(path=shots / "5b-token-made.png")
    oncall.get_by_role("link", name="Tokens").click()
    expect(oncall.locator("#new-token")).to_have_count(0)  # shown once
    row = oncall.locator("table.tokens tbody tr").filter(has_text="pager bot")
    row.get_by_role("button", name="Revoke").click()
    expect(oncall.locator(".alert.info")).to_contain_text("revoked")
    expect(oncall.locator("table.tokens")).to_have_count(0)

    # The list of threads, and the timeline of the last one with what each call cost.
    page.get_by_role("link", name="Threads").click()
    rows = page.locator("table.threads tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("deploy checkout 1.4.2 to production")
    expect(rows.first.locator(".badge")).to_have_text("answered")
    expect(page.locator("table.threads thead")).to_be_visible()
    expect(rows.first.locator("td.ids")).to_be_visible()
    page.screenshot(path=shots / "6-threads.png")

    # On a phone each thread is a card: everything shows, nothing is cut off at the edge.
    page.set_viewport_size({"width": 390, "height": 844})
    for row in (rows.first, rows.last):
        for part in ("td.title", ".badge", "td.agent", "td.updated", "td.ids"):
            expect(row.locator(part)).to_be_in_viewport(ratio=1)
    expect(rows.first).to_contain_text("agent deployer", use_inner_text=True)
    expect(rows.first).to_contain_text(re.compile(r"events \d+"), use_inner_text=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=shots / "6-threads-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    rows.first.get_by_role("link", name="deploy checkout 1.4.2 to production").click()
    expect(page.locator(".event.kind-model_call")).to_have_count(4)
    expect(page.locator(".event.kind-model_call").first).to_contain_text("offline-patterns")
    expect(page.locator(".event.kind-decision_refused")).to_contain_text("web:dev-1")
    decisions = page.locator(".event.kind-human_response")
    expect(decisions.first).to_contain_text("approved by web:oncall-1")
    expect(decisions.last).to_contain_text("change freeze until Monday")
    expect(page.locator("#total-cost")).to_have_text(re.compile(r"^\$\d"))
    expect(page.locator(".summary .badge")).to_have_text("answered")
    expect(page.locator(".event.kind-status .badge").first).to_have_text("working")
    page.screenshot(path=shots / "7-timeline.png", full_page=True)
