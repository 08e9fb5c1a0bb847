"""The API's approve with changes: ``changes`` on ``POST /api/human-requests/{id}``."""

from __future__ import annotations

import pytest

from bot.errors import DecisionRefusedError
from bot.events import Reply
from bot.inventory import INVENTORY
from bot.model import ScriptedModel
from tests.bot.api.harness import DEPLOY, MakeApi, error_of


async def test_approve_with_changes_runs_the_edited_call(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([DEPLOY, Reply(text="deployed 1.4.3")]))
    thread_id, request_id = await api.paused_on_deploy()
    item = await api.decide(request_id, "approve", "oncall-1", changes={"version": "1.4.3"})
    await api.work(item)
    thread = await api.thread(thread_id)
    assert thread["status"] == "waiting"
    asked = next(e for e in thread["events"] if e["kind"] == "human_request")
    assert asked["arguments"] == DEPLOY.arguments
    response = next(e for e in thread["events"] if e["kind"] == "human_response")
    assert response["changes"] == {"version": "1.4.3"}
    [call] = [e for e in thread["events"] if e["kind"] == "tool_call"]
    assert call["arguments"] == {**DEPLOY.arguments, "version": "1.4.3"}
    status = await api.ops.runtime.resources[INVENTORY].service_status("checkout", "production")
    assert status["version"] == "1.4.3"


async def test_an_invalid_edit_is_refused_when_worked_on(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([DEPLOY]))
    thread_id, request_id = await api.paused_on_deploy()
    item = await api.decide(request_id, "approve", "oncall-1", changes={"version": "1.4 3"})
    with pytest.raises(DecisionRefusedError, match="not valid"):
        await api.work(item)
    view = (await api.client.get(f"/api/inbox/{item}")).json()
    assert view["status"] == "failed" and "version" in view["error"]
    thread = await api.thread(thread_id)
    assert thread["status"] == "paused"
    assert not any(e["kind"] == "tool_call" for e in thread["events"])


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "reject", "actor": "oncall-1", "comment": "no", "changes": {"version": "1"}},
        {"decision": "approve", "actor": "oncall-1", "changes": {}},
        {"decision": "approve", "actor": "oncall-1", "changes": ["version", "1.4.3"]},
    ],
)
async def test_changes_that_cannot_apply_get_422(make_api: MakeApi, body: dict) -> None:
    api = await make_api(ScriptedModel([DEPLOY]))
    _, request_id = await api.paused_on_deploy()
    response = await api.client.post(f"/api/human-requests/{request_id}", json=body)
    error_of(response, 422)
    assert api.dispatcher.of("process") == [1]  # only the launch was enqueued
