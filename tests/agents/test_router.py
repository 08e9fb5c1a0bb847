"""The keyword router: changes go to the deployer, questions to the inspector."""

from __future__ import annotations

import pytest

from agents import DEPLOYER, INSPECTOR, registry
from agents.router import keyword_router


@pytest.mark.parametrize(
    "text",
    [
        "deploy checkout 1.4.2 to production",
        "Please DEPLOY search v0.18.1 to staging",
        "restart search in staging",
        "roll back payments in production",
        "rollback payments in production",
        "revert the last release of checkout",
        "ship notifications 3.1.0",
        # Mentions a status word once but asks for two changes.
        "check the status, then restart search and roll back payments",
    ],
)
def test_changes_go_to_the_deployer(text):
    assert registry.route(text) is DEPLOYER


@pytest.mark.parametrize(
    "text",
    [
        "what is running in staging?",
        "status of checkout in production",
        "list services",
        "is search healthy?",
        "show the version of payments",
        "recent deploys of checkout",
    ],
)
def test_questions_go_to_the_inspector(text):
    assert registry.route(text) is INSPECTOR


def test_deploys_plural_is_not_the_deploy_keyword():
    # "recent deploys of checkout" names no agent: a new thread goes to the default one.
    assert keyword_router("recent deploys of checkout", [DEPLOYER, INSPECTOR]) is None
    assert registry.route("recent deploys of checkout") is INSPECTOR


@pytest.mark.parametrize("agents", [(INSPECTOR, DEPLOYER), (DEPLOYER, INSPECTOR)])
def test_no_keyword_names_no_agent(agents):
    assert keyword_router("good morning, opsloop", agents) is None


def test_a_message_naming_no_agent_stays_with_the_current_one():
    assert registry.route("thanks, and the other one?", current="deployer") is DEPLOYER
    assert registry.route("thanks, and the other one?") is INSPECTOR
    assert registry.route("now deploy it", current="inspector") is DEPLOYER


@pytest.mark.parametrize("agents", [(INSPECTOR, DEPLOYER), (DEPLOYER, INSPECTOR)])
def test_a_tie_picks_the_first_agent(agents):
    assert keyword_router("deploy status", agents) is agents[0]


def test_the_most_mentioned_agent_wins():
    text = "show status and health, then deploy"

    assert keyword_router(text, [DEPLOYER, INSPECTOR]) is INSPECTOR


def test_keywords_match_whole_words_only():
    # "deployment" and "restarted" contain keywords but are not them.
    assert keyword_router("deployment restarted", [INSPECTOR, DEPLOYER]) is None
    assert keyword_router("deployment restarted", [DEPLOYER, INSPECTOR]) is None
