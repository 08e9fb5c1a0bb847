"""The OpenID Connect settings: off unless an issuer is set, checked at start-up."""

from __future__ import annotations

import pytest

from bot.config import load_settings
from tests.bot.test_config import clean_env, problem

__all__ = ["clean_env"]  # its autouse fixture keeps the developer's shell out of these tests

ISSUER = "https://idp.example.com/realms/ops"


def test_single_sign_on_is_off_by_default(tmp_path):
    settings = load_settings()
    assert settings.oidc_issuer is None
    assert settings.oidc_client_id is None
    assert settings.oidc_scopes == "openid email profile"
    assert settings.oidc_user_claim == "email"
    assert settings.oidc_groups_claim == "groups"
    assert settings.oidc_session_hours == 12


def test_a_full_configuration_is_read(monkeypatch):
    monkeypatch.setenv("OPSLOOP_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("OPSLOOP_OIDC_CLIENT_ID", "opsloop")
    monkeypatch.setenv("OPSLOOP_OIDC_CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("OPSLOOP_OIDC_SCOPES", "  openid   email groups ")
    monkeypatch.setenv("OPSLOOP_OIDC_USER_CLAIM", "preferred_username")
    monkeypatch.setenv("OPSLOOP_OIDC_SESSION_HOURS", "8")
    settings = load_settings()
    assert settings.oidc_issuer == ISSUER
    assert settings.oidc_client_id == "opsloop"
    assert settings.oidc_client_secret is not None
    assert "s3cret-value" not in repr(settings)
    assert settings.oidc_scopes == "openid email groups"
    assert settings.oidc_user_claim == "preferred_username"
    assert settings.oidc_session_hours == 8


@pytest.mark.parametrize(
    "issuer", ["http://localhost:8080/realms/ops", "http://127.0.0.1:9000", "http://[::1]:9000"]
)
def test_plain_http_is_allowed_on_loopback_only(issuer):
    assert load_settings(OPSLOOP_OIDC_ISSUER=issuer, OPSLOOP_OIDC_CLIENT_ID="c").oidc_issuer


@pytest.mark.parametrize(
    ("env", "variable", "said"),
    [
        ({"OPSLOOP_OIDC_ISSUER": ISSUER}, "OPSLOOP_OIDC_CLIENT_ID", "is needed"),
        ({"OPSLOOP_OIDC_CLIENT_ID": "opsloop"}, "OPSLOOP_OIDC_CLIENT_ID", "ISSUER is not"),
        (
            {"OPSLOOP_OIDC_ISSUER": "http://idp.example.com", "OPSLOOP_OIDC_CLIENT_ID": "c"},
            "OPSLOOP_OIDC_ISSUER",
            "https://",
        ),
        (
            {"OPSLOOP_OIDC_ISSUER": "idp.example.com", "OPSLOOP_OIDC_CLIENT_ID": "c"},
            "OPSLOOP_OIDC_ISSUER",
            "issuer's URL",
        ),
        (
            {"OPSLOOP_OIDC_ISSUER": ISSUER + "?x=1", "OPSLOOP_OIDC_CLIENT_ID": "c"},
            "OPSLOOP_OIDC_ISSUER",
            "without a query",
        ),
        (
            {
                "OPSLOOP_OIDC_ISSUER": ISSUER,
                "OPSLOOP_OIDC_CLIENT_ID": "c",
                "OPSLOOP_OIDC_SCOPES": "email",
            },
            "OPSLOOP_OIDC_SCOPES",
            "openid",
        ),
        (
            {
                "OPSLOOP_OIDC_ISSUER": ISSUER,
                "OPSLOOP_OIDC_CLIENT_ID": "c",
                "OPSLOOP_OIDC_SESSION_HOURS": "0",
            },
            "OPSLOOP_OIDC_SESSION_HOURS",
            "greater than 0",
        ),
    ],
)
def test_a_bad_configuration_stops_start_up_naming_the_variable(env, variable, said):
    lines = problem(**env).splitlines()[1:]
    assert len(lines) == 1, lines
    name, _, message = lines[0].strip().partition(": ")
    assert name == variable
    assert said in message
