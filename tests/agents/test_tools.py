"""The chat-ops tools over the demo inventory, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from agents.tools import deploy, list_services, recent_deploys, restart, rollback, service_status
from bot.errors import ToolError
from bot.events import Identity
from bot.inventory import INVENTORY, SqlInventory
from bot.store._tables import DeployRow
from bot.tools import Tool, ToolContext

DEV = Identity(channel="cli", user_id="dev-1")


@pytest.fixture
async def inventory(database):
    inventory = SqlInventory(database)
    await inventory.prepare()
    return inventory


def context(inventory, key="t1:3", *, approved_by=None, requested_by=DEV) -> ToolContext:
    return ToolContext(
        thread_id="t1",
        idempotency_key=key,
        requested_by=requested_by,
        approved_by=approved_by,
        resources={INVENTORY: inventory},
    )


async def run(tool: Tool, inventory, arguments, **ctx):
    return await tool.run(context(inventory, **ctx), tool.validate(arguments))


async def version_of(inventory, service, environment):
    status = await run(service_status, inventory, {"service": service, "environment": environment})
    return status["version"]


async def rows_with_key(database, key) -> int:
    async with database.session() as session:
        return await session.scalar(
            select(func.count()).select_from(DeployRow).where(DeployRow.idempotency_key == key)
        )


# ---------------------------------------------------------------- reads


async def test_list_services_filters_by_environment(inventory):
    staging = await run(list_services, inventory, {"environment": "staging"})

    assert [s["service"] for s in staging] == ["checkout", "notifications", "payments", "search"]
    assert {s["environment"] for s in staging} == {"staging"}
    search = next(s for s in staging if s["service"] == "search")
    assert (search["version"], search["health"], search["replicas"]) == ("0.18.0", "degraded", 1)


async def test_list_services_without_environment_lists_all(inventory):
    everything = await run(list_services, inventory, {})

    assert len(everything) == 8
    assert {s["environment"] for s in everything} == {"staging", "production"}


async def test_list_services_in_an_unknown_environment_is_empty(inventory):
    assert await run(list_services, inventory, {"environment": "qa"}) == []


async def test_prepare_seeds_only_once(database, inventory):
    await SqlInventory(database).prepare()

    assert len(await run(list_services, inventory, {})) == 8
    assert len(await run(recent_deploys, inventory, {"limit": 50})) == 8


async def test_service_status(inventory):
    status = await run(
        service_status, inventory, {"service": "checkout", "environment": "production"}
    )

    assert status["service"] == "checkout"
    assert status["environment"] == "production"
    assert status["version"] == "1.4.1"
    assert status["health"] == "healthy"
    assert status["replicas"] == 6


async def test_service_status_of_an_unknown_service_lists_the_known_ones(inventory):
    with pytest.raises(ToolError) as caught:
        await run(service_status, inventory, {"service": "billing", "environment": "production"})

    assert str(caught.value) == (
        "no service 'billing' in 'production'; "
        "services: checkout, notifications, payments, search; "
        "environments: production, staging"
    )


async def test_recent_deploys_newest_first_filtered_and_limited(inventory):
    await run(
        deploy,
        inventory,
        {"service": "checkout", "version": "1.4.3", "environment": "staging"},
    )

    history = await run(recent_deploys, inventory, {"service": "checkout", "limit": 2})

    assert [(h["version"], h["environment"]) for h in history] == [
        ("1.4.3", "staging"),
        ("1.4.1", "production"),
    ]
    only_prod = await run(recent_deploys, inventory, {"environment": "production", "limit": 50})
    assert len(only_prod) == 4
    assert {h["environment"] for h in only_prod} == {"production"}


# ---------------------------------------------------------------- changes


async def test_deploy_changes_the_version_and_records_who(database, inventory):
    record = await run(
        deploy,
        inventory,
        {"service": "checkout", "version": "1.4.2", "environment": "production"},
        key="t1:7",
        approved_by="cli:oncall-1",
    )

    assert record["action"] == "deploy"
    assert (record["previous_version"], record["version"]) == ("1.4.1", "1.4.2")
    assert record["requested_by"] == "cli:dev-1"
    assert record["approved_by"] == "cli:oncall-1"
    assert await version_of(inventory, "checkout", "production") == "1.4.2"
    assert await version_of(inventory, "checkout", "staging") == "1.4.2"
    [latest] = await run(recent_deploys, inventory, {"service": "checkout", "limit": 1})
    assert latest == record
    assert await rows_with_key(database, "t1:7") == 1


async def test_deploy_heals_a_degraded_service(inventory):
    await run(
        deploy, inventory, {"service": "search", "version": "0.18.1", "environment": "staging"}
    )

    status = await run(service_status, inventory, {"service": "search", "environment": "staging"})
    assert (status["version"], status["health"]) == ("0.18.1", "healthy")


async def test_change_without_a_requester_or_approver(inventory):
    record = await run(
        restart,
        inventory,
        {"service": "search", "environment": "staging"},
        requested_by=None,
    )

    assert record["requested_by"] is None
    assert record["approved_by"] is None


async def test_same_idempotency_key_deploys_once(database, inventory):
    first = await run(
        deploy,
        inventory,
        {"service": "checkout", "version": "1.4.2", "environment": "production"},
        key="t1:9",
    )
    # A retry under the same key, even with different arguments, repeats nothing.
    again = await run(
        deploy,
        inventory,
        {"service": "checkout", "version": "9.9.9", "environment": "production"},
        key="t1:9",
    )

    assert again == first
    assert await version_of(inventory, "checkout", "production") == "1.4.2"
    assert await rows_with_key(database, "t1:9") == 1
    history = await run(
        recent_deploys, inventory, {"service": "checkout", "environment": "production"}
    )
    assert [h["version"] for h in history] == ["1.4.2", "1.4.1"]


async def test_different_keys_deploy_twice(database, inventory):
    args = {"service": "checkout", "version": "1.4.2", "environment": "production"}

    first = await run(deploy, inventory, args, key="t1:3")
    second = await run(deploy, inventory, args, key="t1:5")

    assert first["id"] != second["id"]
    assert second["previous_version"] == "1.4.2"


async def test_rollback_returns_to_the_previous_version(inventory):
    await run(
        deploy,
        inventory,
        {"service": "payments", "version": "2.9.0", "environment": "production"},
        key="t1:3",
    )

    record = await run(
        rollback, inventory, {"service": "payments", "environment": "production"}, key="t1:5"
    )

    assert record["action"] == "rollback"
    assert (record["previous_version"], record["version"]) == ("2.9.0", "2.8.3")
    assert await version_of(inventory, "payments", "production") == "2.8.3"


async def test_rollback_of_the_seeded_version(inventory):
    record = await run(rollback, inventory, {"service": "search", "environment": "production"})

    assert (record["previous_version"], record["version"]) == ("0.17.4", "0.17.3")
    assert await version_of(inventory, "search", "production") == "0.17.3"


async def test_rollback_with_no_earlier_version_fails(database, inventory):
    # Rolled back once to the seed's previous version, there is no deploy of it to undo.
    await run(rollback, inventory, {"service": "search", "environment": "staging"}, key="k1")

    with pytest.raises(ToolError, match="search in staging has no earlier version"):
        await run(rollback, inventory, {"service": "search", "environment": "staging"}, key="k2")

    assert await version_of(inventory, "search", "staging") == "0.17.4"
    assert await rows_with_key(database, "k2") == 0


async def test_restart_keeps_the_version(inventory):
    record = await run(restart, inventory, {"service": "search", "environment": "staging"})

    assert record["action"] == "restart"
    assert record["version"] == record["previous_version"] == "0.18.0"
    status = await run(service_status, inventory, {"service": "search", "environment": "staging"})
    assert (status["version"], status["health"]) == ("0.18.0", "healthy")


async def test_change_to_an_unknown_service_fails_and_records_nothing(database, inventory):
    with pytest.raises(ToolError, match="no service 'billing' in 'staging'"):
        await run(
            deploy,
            inventory,
            {"service": "billing", "version": "1.0.0", "environment": "staging"},
            key="t1:11",
        )

    assert await rows_with_key(database, "t1:11") == 0


async def test_tools_need_the_inventory_resource():
    ctx = ToolContext(thread_id="t1", idempotency_key="t1:1", requested_by=None, approved_by=None)

    with pytest.raises(LookupError, match="'inventory' is not configured"):
        await list_services.run(ctx, list_services.validate({}))


# ---------------------------------------------------------------- argument validation


def test_risk_tiers():
    assert {t.name: t.tier for t in (list_services, service_status, recent_deploys)} == {
        "list_services": "read",
        "service_status": "read",
        "recent_deploys": "read",
    }
    assert {t.tier for t in (deploy, restart, rollback)} == {"write"}


def test_arguments_are_stripped():
    args = deploy.validate({"service": " checkout ", "version": "1.4.2 ", "environment": "qa"})

    assert args.model_dump() == {"service": "checkout", "version": "1.4.2", "environment": "qa"}


GOOD = {"service": "checkout", "version": "1.4.2", "environment": "production"}


@pytest.mark.parametrize(
    ("changes", "field", "error_type"),
    [
        ({"service": "Checkout"}, "service", "string_pattern_mismatch"),
        ({"service": "check out"}, "service", "string_pattern_mismatch"),
        ({"service": "-checkout"}, "service", "string_pattern_mismatch"),
        ({"service": ""}, "service", "string_pattern_mismatch"),
        ({"service": "a" * 65}, "service", "string_pattern_mismatch"),
        ({"environment": "prod;drop"}, "environment", "string_pattern_mismatch"),
        ({"version": "1.4.2; rm -rf /"}, "version", "string_pattern_mismatch"),
        ({"version": "latest!"}, "version", "string_pattern_mismatch"),
        ({"version": "1" * 33}, "version", "string_pattern_mismatch"),
        ({"version": 142}, "version", "string_type"),
        ({"force": True}, "force", "extra_forbidden"),
    ],
)
def test_deploy_rejects_bad_arguments(changes, field, error_type):
    with pytest.raises(ValidationError) as caught:
        deploy.validate(GOOD | changes)

    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] == error_type


def test_deploy_needs_a_version():
    with pytest.raises(ValidationError) as caught:
        deploy.validate({"service": "checkout", "environment": "production"})

    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("version",), "missing")]


@pytest.mark.parametrize("tool", [restart, rollback, service_status])
def test_service_tools_reject_extra_fields(tool):
    with pytest.raises(ValidationError) as caught:
        tool.validate({"service": "checkout", "environment": "production", "version": "1.4.2"})

    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("limit", [0, 51, "many"])
def test_recent_deploys_limit_is_bounded(limit):
    with pytest.raises(ValidationError):
        recent_deploys.validate({"limit": limit})


def test_recent_deploys_defaults():
    assert recent_deploys.validate({}).model_dump() == {
        "service": None,
        "environment": None,
        "limit": 5,
    }


def test_list_services_rejects_a_bad_environment():
    with pytest.raises(ValidationError):
        list_services.validate({"environment": "PRODUCTION"})
