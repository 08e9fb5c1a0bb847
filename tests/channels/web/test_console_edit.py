"""The console's "Approve with changes": the form's logic (run in Node) and the timeline.

The card itself is DOM code; what it sends is decided by ``static/edit-form.js``, tested
here as the browser would load it (an ES module), and the API round trip is tested
through the console's own session below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from channels.web._render import STATIC_DIR
from tests.channels.web.test_console import (  # noqa: F401 (fixtures)
    MakeConsole,
    console_settings,
    make_console,
)
from tests.conftest import need_service

NODE = shutil.which("node")


def run_module(script: str) -> object:
    """Run ``script`` (an ES module body) in Node with ``edit-form.js`` imported as ``form``."""
    if NODE is None:
        need_service("Node.js", "node is not on PATH")
    url = (STATIC_DIR / "edit-form.js").as_uri()
    body = f"const form = await import({json.dumps(url)});\n{script}"
    done = subprocess.run(
        [str(NODE), "--input-type=module", "-e", body],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        # The static files carry no package.json: let Node see the module syntax.
        env={"NODE_OPTIONS": "--experimental-detect-module", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


RECORDED = {"service": "checkout", "environment": "production", "version": "1.4.2", "n": 3}


@pytest.mark.parametrize(
    ("texts", "changes"),
    [
        # Unchanged inputs are not sent at all.
        ({"service": "checkout", "version": "1.4.2", "n": "3"}, {}),
        # Text stays text, even when it would parse as a number.
        (
            {"version": "1.5", "environment": "staging"},
            {"version": "1.5", "environment": "staging"},
        ),
        # Other arguments are read as JSON when they parse, else sent as typed.
        ({"n": "5"}, {"n": 5}),
        ({"n": "five"}, {"n": "five"}),
    ],
)
def test_only_changed_arguments_are_sent(texts: dict, changes: dict) -> None:
    script = (
        f"const recorded = {json.dumps(RECORDED)};\n"
        f"console.log(JSON.stringify(form.changedArguments(recorded, {json.dumps(texts)})));"
    )
    assert run_module(script) == changes


def test_inputs_are_prefilled_with_the_recorded_values() -> None:
    script = (
        'console.log(JSON.stringify([form.shown("1.4.2"), form.shown(3), form.shown(null),'
        ' form.shown(["a"]), form.changesText({version: "1.4.3", n: 5})]));'
    )
    assert run_module(script) == ["1.4.2", "3", "", '["a"]', "version → 1.4.3, n → 5"]


def test_the_card_offers_the_form_and_sends_changes() -> None:
    view = (STATIC_DIR / "chat-view.js").read_text(encoding="utf-8")
    chat = (STATIC_DIR / "chat.js").read_text(encoding="utf-8")
    assert 'from "./edit-form.js"' in view
    assert "Approve with changes…" in view
    assert 'this.onDecide(this, "approve", null, changes)' in view
    assert "if (changes) body.changes = changes;" in chat
    for name in ("chat-view.js", "chat.js", "edit-form.js"):
        if NODE is not None:  # the modules at least parse
            check = subprocess.run(
                [NODE, "--experimental-detect-module", "--check", str(Path(STATIC_DIR, name))],
                capture_output=True,
                text=True,
                check=False,
            )
            assert check.returncode == 0, check.stderr


async def test_an_edited_approval_through_the_console_shows_in_the_timeline(
    make_console: MakeConsole,  # noqa: F811 (the fixture imported above)
) -> None:
    console = await make_console()
    await console.login("dev-1")
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    [request] = (await console.thread(thread_id))["pending_requests"]
    oncall = console.browser()
    await oncall.login("oncall-1")
    await oncall.decide(request["request_id"], "approve", changes={"version": "1.4.3"})
    thread = await console.thread(thread_id)
    assert thread["status"] == "waiting"
    [call] = [e for e in thread["events"] if e["kind"] == "tool_call"]
    assert call["arguments"]["version"] == "1.4.3"
    timeline = (await console.client.get(f"/threads/{thread_id}")).text
    assert "with changes: version → 1.4.3" in timeline
    assert "deploy checkout 1.4.2 to production" in timeline  # the original request stays
