"""``GET /api/tools``: the tools in force and the rules that decide them, for read tokens."""

from __future__ import annotations

from bot.policy import Policy
from tests.bot.api.harness import MakeApi


async def test_a_reader_lists_the_tools_as_tools_list_does(make_api: MakeApi) -> None:
    api = await make_api()
    reader = api.client_with(await api.mint("dev-1", scopes=["read"]))

    response = await reader.get("/api/tools")

    assert response.status_code == 200, response.text
    tools = response.json()
    assert [t["name"] for t in tools] == [
        "deploy",
        "list_services",
        "recent_deploys",
        "restart",
        "rollback",
        "service_status",
    ]
    deploy = tools[0]
    assert deploy["tier"] == "write" and deploy["agents"] == ["deployer"]
    assert deploy["declares"] == ["environment", "service"]
    assert [r["rule"] for r in deploy["rules"]] == [
        "production changes need on-call approval",
        "changes outside production run at once",
    ]
    assert deploy["warnings"] == []


async def test_a_gap_in_the_policy_shows_in_the_listing(make_api: MakeApi) -> None:
    only_prod = Policy.model_validate(
        {
            "version": 1,
            "rules": [
                {"tiers": ["write"], "environments": ["production"], "approval": "required"},
                {"tiers": ["write"], "approval": "none"},
            ],
        }
    )
    api = await make_api(policy=only_prod)

    tools = (await api.client.get("/api/tools")).json()

    restart = next(t for t in tools if t["name"] == "restart")
    assert restart["skipped_rules"] == ["rule #2"]
    assert restart["rules"][-1]["rule"] == "default: unmatched changes need approval"
    assert "no rule covers its calls other than environment=production" in restart["warnings"][0]


async def test_listing_tools_needs_a_token(make_api: MakeApi) -> None:
    api = await make_api(auth=False)

    assert (await api.client.get("/api/tools")).status_code == 401
