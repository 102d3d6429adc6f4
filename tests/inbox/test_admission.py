"""Who may review, from an identity provider's claims (`app/inbox/admission.py`).

Provenance: Airlock-defined (issue 15: a configured claim names the reviewer, an allowed group
admits them, and the groups claim gives reviewer groups).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.config import InboxOidcSettings
from app.inbox.admission import MAX_GROUP_LENGTH, MAX_GROUPS, Admitted, Refused, admit

SETTINGS = InboxOidcSettings(
    issuer="https://idp.example", client_id="c", client_secret="s", allowed_groups=frozenset({"sre", "security"})
)


def test_a_person_in_an_allowed_group_is_admitted_under_the_reviewer_claim_with_their_groups() -> None:
    decision = admit({"email": "alice@example.com", "groups": ["sre", "staff"]}, SETTINGS)
    assert decision == Admitted("alice@example.com", frozenset({"sre", "staff"}))


def test_a_single_group_as_a_string_counts() -> None:
    assert admit({"email": "a@example.com", "groups": "security"}, SETTINGS) == Admitted(
        "a@example.com", frozenset({"security"})
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "m@example.com", "groups": ["staff"]},
        {"email": "m@example.com"},
        {"email": "m@example.com", "groups": [{"name": "sre"}]},
        {"email": "m@example.com", "groups": ["SRE"]},
    ],
)
def test_a_person_in_no_allowed_group_is_refused_and_named(claims: dict[str, Any]) -> None:
    decision = admit(claims, SETTINGS)
    assert isinstance(decision, Refused) and decision.name == "m@example.com"
    assert "none of the groups allowed to review here (security, sre)" in decision.message


@pytest.mark.parametrize("name", [None, "", "   ", 7, "x" * 65, "line\nbreak"])
def test_claims_that_name_nobody_are_refused_without_a_name(name: object) -> None:
    decision = admit({"email": name, "groups": ["sre"]}, SETTINGS)
    assert isinstance(decision, Refused) and decision.name is None
    assert "did not say who you are in its email claim" in decision.message


def test_the_groups_kept_are_bounded_with_the_allowed_ones_first() -> None:
    many = [f"team-{i:03}" for i in range(200)] + ["sre", "g" * (MAX_GROUP_LENGTH + 1)]
    decision = admit({"email": "a@example.com", "groups": many}, SETTINGS)
    assert isinstance(decision, Admitted) and len(decision.groups) == MAX_GROUPS
    assert "sre" in decision.groups and "g" * (MAX_GROUP_LENGTH + 1) not in decision.groups
