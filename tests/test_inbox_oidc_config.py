"""The `[inbox.oidc]` section of `airlock.toml` (`app/config.py`, `InboxOidcSettings`).

Provenance: Airlock-defined (issue 15, Configuration: `issuer`, `client_id`, the client secret
from the environment, `reviewer_claim`, `groups_claim`, `allowed_groups`; without the section
nothing changes). Single sign-on fails closed: no allowed groups is a configuration error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import InboxOidcSettings
from tests.test_config import config_error, document, settings

SECRET = {"AIRLOCK_INBOX_OIDC_CLIENT_SECRET": "s3cret"}
MINIMAL = {"issuer": "https://idp.example", "client_id": "airlock-inbox", "allowed_groups": ["sre"]}


def test_without_an_inbox_oidc_section_reviewers_sign_in_with_tokens_only(tmp_path: Path) -> None:
    assert settings(tmp_path).inbox_oidc is None


def test_issuer_client_and_groups_turn_single_sign_on_on_with_the_defaults(tmp_path: Path) -> None:
    loaded = settings(tmp_path, document(inbox={"oidc": MINIMAL}), **SECRET)
    assert loaded.inbox_oidc == InboxOidcSettings(
        issuer="https://idp.example",
        client_id="airlock-inbox",
        client_secret="s3cret",
        scopes=("openid", "email", "profile"),
        reviewer_claim="email",
        groups_claim="groups",
        allowed_groups=frozenset({"sre"}),
        token_sign_in=True,
    )


@pytest.mark.parametrize(
    ("oidc", "env", "expected"),
    [
        (MINIMAL, {}, "AIRLOCK_INBOX_OIDC_CLIENT_SECRET in the environment"),
        ({**MINIMAL, "client_secret": "x"}, SECRET, "set AIRLOCK_INBOX_OIDC_CLIENT_SECRET instead"),
        ({**MINIMAL, "allowed_groups": []}, SECRET, "must list the groups whose members may review"),
        ({**MINIMAL, "reviewer_claim": "name"}, SECRET, "must be one of email, preferred_username, sub"),
        ({**MINIMAL, "scopes": ["email"]}, SECRET, 'must include "openid"'),
        ({**MINIMAL, "issuer": "http://idp.example"}, SECRET, "must be an https URL"),
        ({**MINIMAL, "token_sign_in": "no"}, SECRET, "token_sign_in"),
    ],
)
def test_a_wrong_inbox_oidc_section_is_refused_in_one_sentence(
    tmp_path: Path, oidc: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    assert expected in config_error(tmp_path, document(inbox={"oidc": oidc}), **env)
