"""Slack settings come from the environment (secrets only there) and the `[slack]` table.

Provenance: Airlock-defined configuration (issue: Slack approvals, "Configuration from the
environment"; STYLE: one-sentence ConfigErrors, environment before file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import SlackSettings, settings_from_document
from app.errors import ConfigError
from tests.conftest import StartAirlock

FULL_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cret",
    "SLACK_APP_ID": "A1",
    "SLACK_TEAM_IDS": "T1, E1",
    "SLACK_DEFAULT_CHANNEL": "C1",
}


def slack_settings(env: dict[str, str], table: dict[str, Any] | None = None) -> SlackSettings:
    document = {} if table is None else {"slack": table}
    return settings_from_document(
        document, base_dir=Path("/nonexistent"), require_upstreams=False, env={"AIRLOCK_SECRET_KEY": "k" * 40, **env}
    ).slack


def test_slack_is_configured_from_the_environment() -> None:
    settings = slack_settings(
        {**FULL_ENV, "SLACK_API_URL": "http://127.0.0.1:9/api/", "SLACK_REVIEWERS": "U1=alice, U2=bob"}
    )
    assert settings.enabled
    assert (settings.bot_token, settings.signing_secret, settings.app_id) == ("xoxb-1", "s3cret", "A1")
    assert settings.team_ids == ("T1", "E1") and settings.default_channel == "C1"
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert settings.reviewer_users == {"U1": "alice", "U2": "bob"}


def test_the_environment_wins_over_the_file_and_the_file_supplies_the_rest() -> None:
    table = {
        "app_id": "A-file",
        "team_ids": ["T-file"],
        "default_channel": "C-file",
        "reviewers": {"U9": "zed"},
        "retry_max_seconds": 30,
    }
    settings = slack_settings(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_APP_ID": "A-env"}, table
    )
    assert (settings.app_id, settings.team_ids, settings.default_channel) == ("A-env", ("T-file",), "C-file")
    assert settings.reviewer_users == {"U9": "zed"} and settings.retry_max_seconds == 30


def test_without_slack_secrets_slack_is_off() -> None:
    assert not slack_settings({}).enabled
    assert not slack_settings({}, {"default_channel": "C1", "app_id": "A1", "team_ids": ["T1"]}).enabled


@pytest.mark.parametrize("missing", ["SLACK_SIGNING_SECRET", "SLACK_APP_ID", "SLACK_TEAM_IDS", "SLACK_DEFAULT_CHANNEL"])
def test_half_configured_slack_is_refused_naming_what_is_missing(missing: str) -> None:
    env = {key: value for key, value in FULL_ENV.items() if key != missing}
    with pytest.raises(ConfigError, match=missing):
        slack_settings(env)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"bot_token": "xoxb"}, "unknown setting 'bot_token'"),
        ({"poll_seconds": 0}, "slack.poll_seconds must be a positive"),
        ({"api_timeout_seconds": 30, "lease_seconds": 20}, "lease_seconds must be longer"),
        ({"api_url": "ftp://slack"}, "api_url must be an http"),
        ({"team_ids": ["T1", 2]}, "team_ids must be a list of workspace ids"),
    ],
)
def test_bad_slack_settings_are_one_sentence_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        slack_settings({}, table)


def test_a_malformed_reviewer_map_in_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="SLACK_REVIEWERS"):
        slack_settings({**FULL_ENV, "SLACK_REVIEWERS": "U1:alice"})


async def test_without_slack_configured_there_is_no_interactions_endpoint(start_airlock: StartAirlock) -> None:
    airlock = await start_airlock()
    assert all(extension.name != "slack" for extension in airlock.runtime.extensions)
    async with httpx.AsyncClient(base_url=airlock.url) as http:
        assert (await http.post("/slack/interactions", content=b"payload={}")).status_code == 404


# --------------------------------------------------------------------------- socket mode (issue 18, item 1)

SOCKET_ENV = {key: value for key, value in FULL_ENV.items() if key != "SLACK_SIGNING_SECRET"} | {
    "SLACK_MODE": "socket",
    "AIRLOCK_SLACK_APP_TOKEN": "xapp-1-A1-1-secret",
}


def test_socket_mode_is_on_with_the_app_token_and_needs_no_signing_secret() -> None:
    settings = slack_settings(SOCKET_ENV)
    assert settings.enabled and settings.mode == "socket"
    assert settings.app_token == "xapp-1-A1-1-secret" and settings.signing_secret is None
    assert "xapp-1-A1-1-secret" not in repr(settings)


def test_the_file_names_the_app_token_by_reference_and_the_environment_supplies_it() -> None:
    env = {k: v for k, v in SOCKET_ENV.items() if k != "AIRLOCK_SLACK_APP_TOKEN"} | {"MY_XAPP": "xapp-from-ref"}
    settings = slack_settings(env, {"mode": "socket", "app_token": "${MY_XAPP}", "socket_connections": 3})
    assert (settings.app_token, settings.socket_connections) == ("xapp-from-ref", 3)


def test_http_mode_ignores_an_app_token_and_still_needs_the_signing_secret() -> None:
    env = {k: v for k, v in SOCKET_ENV.items() if k != "SLACK_MODE"}
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        slack_settings(env)
    assert slack_settings({}, {"app_token": "${NOT_SET_IN_HTTP_MODE}"}).app_token is None


@pytest.mark.parametrize(
    "env, table, message",
    [
        (
            {**SOCKET_ENV, "AIRLOCK_SLACK_APP_TOKEN": ""},
            {},
            "socket mode needs an app-level token: set AIRLOCK_SLACK_APP",
        ),
        ({**SOCKET_ENV, "AIRLOCK_SLACK_APP_TOKEN": "xoxb-oops"}, {}, r"must be an app-level token \(xapp-…\)"),
        ({}, {"mode": "sockets"}, 'slack.mode must be "http" or "socket"'),
        ({}, {"app_token": "xapp-1-literal"}, "app_token must be a reference"),
        ({}, {"mode": "socket", "app_token": "${UNSET_XAPP}"}, r"refers to \$\{UNSET_XAPP\}, which is not set"),
        ({}, {"socket_connections": 11}, "socket_connections must be a whole number from 1 to 10"),
        ({}, {"socket_ping_seconds": 0}, "socket_ping_seconds must be a positive"),
    ],
)
def test_bad_socket_mode_settings_are_one_sentence_errors(
    env: dict[str, str], table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        slack_settings(env, table)
    assert "xoxb-oops" not in str(raised.value)
