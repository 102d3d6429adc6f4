"""Who may review, from an identity provider's claims: the reviewer's name and groups, or why not.

`admit(claims, settings)` reads the configured `reviewer_claim` (the reviewer's name, as is, as
every channel and the self-approval check use it) and `groups_claim` (a list of group names, or
one name), and admits the person only when they are in one of `allowed_groups`.

The groups kept on the session are bounded (`MAX_GROUPS` names of at most `MAX_GROUP_LENGTH`
characters, the allowed ones first) because they ride in the session cookie, which browsers cap
at about 4 KB; providers that send hundreds of groups (directory sync) would otherwise make the
cookie too large to be stored, and the reviewer would silently stay signed out.

Pure module: no I/O. Every sentence a refused person reads is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from app.config import InboxOidcSettings
from app.reveal import reveal

MAX_NAME_LENGTH: Final = 64
"""The reviewers table's limit on a name."""
MAX_GROUPS: Final = 32
MAX_GROUP_LENGTH: Final = 64

NO_NAME: Final = (
    "The identity provider did not say who you are in its {claim} claim (or the value is longer than "
    "{limit} characters), so you cannot review here. An administrator can choose another reviewer_claim."
)
NOT_ALLOWED: Final = (
    "You signed in as {name}, but the identity provider lists you in none of the groups allowed to "
    "review here ({groups}). Ask an administrator to add you to one of them."
)


@dataclass(frozen=True, slots=True)
class Admitted:
    name: str
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class Refused:
    message: str
    name: str | None
    """The person's reviewer name, when the claims gave one (their reviewer is then disabled)."""


def admit(claims: dict[str, Any], settings: InboxOidcSettings) -> Admitted | Refused:
    """The reviewer these claims name, if one of their groups may review; else why not."""
    name = claims.get(settings.reviewer_claim)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        return Refused(NO_NAME.format(claim=settings.reviewer_claim, limit=MAX_NAME_LENGTH), None)
    groups = group_names(claims.get(settings.groups_claim))
    allowed = groups & settings.allowed_groups
    if not allowed:
        listed = ", ".join(sorted(settings.allowed_groups))
        return Refused(NOT_ALLOWED.format(name=reveal(name, line=True), groups=listed), name)
    return Admitted(name, _bounded(allowed, groups))


def group_names(value: object) -> frozenset[str]:
    """A groups claim as a set of names: a list of strings, or one string (Entra ID and Keycloak send lists)."""
    if isinstance(value, str):
        return frozenset({value}) if value else frozenset()
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str) and item)
    return frozenset()


def _bounded(allowed: frozenset[str], groups: frozenset[str]) -> frozenset[str]:
    fitting = [g for g in sorted(allowed) + sorted(groups - allowed) if len(g) <= MAX_GROUP_LENGTH]
    return frozenset(fitting[:MAX_GROUPS])
