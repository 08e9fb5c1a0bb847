"""The console's thread list: a page at a time, each paused thread's pending request named."""

from __future__ import annotations

import html
import re

from tests.channels.web.test_console import (  # noqa: F401 (fixtures)
    MakeConsole,
    console_settings,
    make_console,
)


def rows(page: str) -> list[tuple[str, str]]:
    """(thread id, status label) of each row of the threads table."""
    found = re.findall(
        r'data-status="[a-z]+" title="[^"]*">([^<]+)</span>.*?<code>(th_[0-9a-f]+)</code>',
        page,
        re.S,
    )
    return [(thread, label) for label, thread in found]


def older(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">Older threads</a>', page)
    return html.unescape(found[1]) if found else None


async def test_the_thread_list_pages_and_names_what_paused_threads_wait_for(
    make_console: MakeConsole,  # noqa: F811 (the fixture imported above)
) -> None:
    console = await make_console()
    await console.login()
    deploy = await console.say("deploy checkout 1.4.2 to production")
    await console.say("what is running in staging?")
    restart = await console.say("restart search in production")

    first = (await console.client.get("/threads", params={"limit": 2})).text
    link = older(first)
    assert link is not None and "limit=2" in link
    second = (await console.client.get(link)).text
    assert older(second) is None
    listed = rows(first) + rows(second)
    assert len(listed) == 3 and len({t for t, _ in listed}) == 3
    labels = dict(listed)
    assert labels[deploy] == labels[restart] == "waiting for approval"
    assert "answered" in labels.values()

    paused = (await console.client.get("/threads", params={"status": "paused", "limit": 1})).text
    link = older(paused)
    assert link is not None and "status=paused" in link
    assert {t for t, _ in rows(paused) + rows((await console.client.get(link)).text)} == {
        deploy,
        restart,
    }


async def test_a_bad_cursor_starts_the_list_again(
    make_console: MakeConsole,  # noqa: F811 (the fixture imported above)
) -> None:
    console = await make_console()
    await console.login()
    response = await console.client.get("/threads", params={"cursor": "nonsense"})
    assert response.status_code == 303
    assert response.headers["location"] == "/threads"
