"""The `[oauth]` section of `airlock.toml` (`app/config.py`, `OAuthSettings`).

Provenance: Airlock-defined (issue 15, Configuration: `issuer`, `identity_claim` default `sub`,
`required_scopes`, `leeway_seconds`, optional `jwks_url` and per-upstream `required_scopes`;
without the section nothing changes). OAuth 2.1 requires TLS except on loopback.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from app import config
from app.config import OAuthSettings, Settings
from tests.test_config import ROOT, config_error, document, example_with_every_setting_uncommented, settings


def test_without_an_oauth_section_agents_use_static_tokens_only(tmp_path: Path) -> None:
    assert settings(tmp_path).oauth is None


def test_an_issuer_alone_turns_oauth_on_with_the_defaults(tmp_path: Path) -> None:
    loaded = settings(tmp_path, document(oauth={"issuer": "https://idp.example"}))
    assert loaded.oauth == OAuthSettings(issuer="https://idp.example")
    assert (loaded.oauth.identity_claim, loaded.oauth.leeway_seconds, loaded.oauth.required_scopes) == ("sub", 30.0, ())


def test_the_environment_can_name_the_issuer(tmp_path: Path) -> None:
    loaded = settings(tmp_path, AIRLOCK_OAUTH_ISSUER="https://env-idp.example")
    assert loaded.oauth == OAuthSettings(issuer="https://env-idp.example")


def test_an_upstreams_required_scopes_replace_the_global_ones_for_its_endpoint(tmp_path: Path) -> None:
    oauth = {
        "issuer": "https://idp.example",
        "required_scopes": ["mcp:tools"],
        "upstreams": {"market": {"required_scopes": ["market:write"]}},
    }
    loaded = settings(tmp_path, document(oauth=oauth)).oauth
    assert loaded is not None
    assert (loaded.scopes_for("market"), loaded.scopes_for("other")) == (("market:write",), ("mcp:tools",))


@pytest.mark.parametrize(
    ("oauth", "message"),
    [
        ({}, "[oauth] needs the issuer"),
        ({"issuer": "http://idp.example"}, "oauth.issuer must be an https URL (http only on a loopback host)"),
        ({"issuer": "https://idp.example", "jwks_url": "ftp://x"}, "oauth.jwks_url must be an https URL"),
        ({"issuer": "https://idp.example", "leeway_seconds": 61}, "oauth.leeway_seconds must be at most 60 seconds"),
        ({"issuer": "https://idp.example", "leeway_seconds": -1}, "oauth.leeway_seconds cannot be negative"),
        ({"issuer": "https://idp.example", "identity_claim": ""}, "oauth.identity_claim must name a claim"),
        ({"issuer": "https://idp.example", "identity_claim": 'a"b'}, "oauth.identity_claim must name a claim"),
        ({"issuer": "https://idp.example", "required_scopes": "mcp:tools"}, "oauth.required_scopes must be a list"),
        ({"issuer": "https://idp.example", "required_scopes": ["a b"]}, "oauth.required_scopes must be a list"),
        ({"issuer": "https://idp.example", "audience": "x"}, "[oauth] has an unknown setting 'audience'"),
        (
            {"issuer": "https://idp.example", "upstreams": {"nope": {"required_scopes": []}}},
            "[oauth.upstreams.nope] names no configured upstream",
        ),
        (
            {"issuer": "https://idp.example", "upstreams": {"market": {"scopes": []}}},
            "[oauth.upstreams.NAME] accepts only required_scopes",
        ),
    ],
)
def test_invalid_oauth_settings_are_refused_in_one_sentence(
    tmp_path: Path, oauth: dict[str, Any], message: str
) -> None:
    assert config_error(tmp_path, document(oauth=oauth)).startswith(message)


def test_http_issuers_are_allowed_on_loopback(tmp_path: Path) -> None:
    loaded = settings(tmp_path, document(oauth={"issuer": "http://127.0.0.1:9471"}))
    assert loaded.oauth is not None and loaded.oauth.issuer == "http://127.0.0.1:9471"


def test_the_example_config_shows_every_oauth_setting_with_its_default(tmp_path: Path) -> None:
    example = example_with_every_setting_uncommented()["oauth"]
    assert set(example) == config._OAUTH_KEYS
    loaded = config.settings_from_document(
        example_with_every_setting_uncommented(),
        base_dir=tmp_path,
        env={
            "AIRLOCK_SECRET_KEY": "k" * 40,
            "EM_API_TOKEN": "t",
            "GITHUB_TOKEN": "g",
            "AIRLOCK_WEBHOOK_SECRET": "w" * 32,
            "AIRLOCK_WEBHOOK_DECISION_SECRET": "d" * 32,
            "AIRLOCK_INBOX_OIDC_CLIENT_SECRET": "i",
            "AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET": "s",
        },
    ).oauth
    assert loaded is not None
    assert (loaded.identity_claim, loaded.leeway_seconds) == ("sub", OAuthSettings(issuer="x").leeway_seconds)
    assert set(loaded.upstream_scopes) == {"execution-market"}
    assert Settings().oauth is None and "oauth" in {f.name for f in dataclasses.fields(Settings)}
    assert (ROOT / "airlock.example.toml").is_file()


def test_an_introspection_endpoint_takes_a_client_id_and_its_secret_from_the_environment(tmp_path: Path) -> None:
    oauth = {
        "issuer": "https://idp.example",
        "introspection_endpoint": "https://idp.example/token/introspection",
        "introspection_client_id": "airlock",
    }
    loaded = settings(tmp_path, document(oauth=oauth), AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET="s")
    assert loaded.oauth is not None
    assert (loaded.oauth.introspection_endpoint, loaded.oauth.introspection_client_id) == (
        "https://idp.example/token/introspection",
        "airlock",
    )
    assert loaded.oauth.introspection_client_secret == "s"
    assert "AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET in the environment" in config_error(
        tmp_path, document(oauth=oauth)
    )
    plain = {**oauth, "introspection_endpoint": "http://idp.example/introspect"}
    assert "must be an https URL" in config_error(
        tmp_path, document(oauth=plain), AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET="s"
    )
