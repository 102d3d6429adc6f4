"""`[[endpoints]]`: one agent-facing endpoint in front of several upstreams, and how names say where they come from.

An endpoint `team` with `upstreams = ["market", "files"]` serves `/mcp/team`. Its merged lists
name every tool, prompt and resource after the upstream that serves it:

- tools and prompts: `<prefix><separator><name>`, e.g. `market__em_get_task`. The prefix is the
  upstream's name unless `prefixes` gives a shorter one; the separator is `"__"` unless set.
  Merged names keep to the MCP spec's tool-name rules (1 to 128 of `A-Z a-z 0-9 _ . -`); an
  upstream's tool whose merged name would break them is left out of the list, with a log line.
- resources: `airlock:<prefix>/<the upstream's own URI>`, e.g. `airlock:files/file:///notes.txt`
  (a valid URI whatever the upstream's scheme; a URI template is prefixed the same way, so the
  URI a client expands from it routes back to the upstream).

Routing reverses the mapping: the one upstream whose `<prefix><separator>` begins the name gets
the rest of it. Config load refuses any endpoint where one `<prefix><separator>` begins another,
so every merged name has exactly one reading and two upstreams' names can never collide.

Pure module: settings and names in, names out; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from app.errors import ConfigError

DEFAULT_SEPARATOR: Final = "__"
RESOURCE_SCHEME: Final = "airlock:"
MAX_NAME_LENGTH: Final = 128
"""The MCP spec's limit on a tool name (2025-11-25, "Tool names")."""
_NAME_CHARS: Final = re.compile(r"^[A-Za-z0-9_.-]+$")
ENDPOINT_KEYS: Final = frozenset({"name", "upstreams", "separator", "prefixes"})


@dataclass(frozen=True)
class EndpointSettings:
    """One `[[endpoints]]` table: `/mcp/{name}` in front of `upstreams`, in that order."""

    name: str
    upstreams: tuple[str, ...]
    separator: str = DEFAULT_SEPARATOR
    prefixes: Mapping[str, str] = field(default_factory=dict)
    """Upstream name → the prefix its tools, prompts and resources carry (default: the name)."""

    def prefix(self, upstream: str) -> str:
        return self.prefixes.get(upstream, upstream)


@dataclass(frozen=True, slots=True)
class Routed:
    """A merged name read back: which upstream, and the name that upstream knows."""

    upstream: str
    name: str


class Naming:
    """The endpoint's naming scheme, both ways."""

    def __init__(self, settings: EndpointSettings) -> None:
        self._separator = settings.separator
        self._heads = {upstream: settings.prefix(upstream) + settings.separator for upstream in settings.upstreams}
        self._resource_heads = {
            upstream: f"{RESOURCE_SCHEME}{settings.prefix(upstream)}/" for upstream in settings.upstreams
        }

    def name(self, upstream: str, name: str) -> str | None:
        """The merged name of an upstream's tool or prompt; None when it would break the spec's rules."""
        merged = self._heads[upstream] + name
        if len(merged) > MAX_NAME_LENGTH or not _NAME_CHARS.match(merged):
            return None
        return merged

    def route_name(self, merged: str) -> Routed | None:
        """The upstream and own name behind a merged tool or prompt name.

        None when no upstream's prefix begins it, or when it breaks the name rules: such a name was
        never listed, so it is unknown rather than passed on for an upstream to read its own way.
        """
        if len(merged) > MAX_NAME_LENGTH or not _NAME_CHARS.match(merged):
            return None
        return _route(self._heads, merged)

    def uri(self, upstream: str, uri: str) -> str:
        return self._resource_heads[upstream] + uri

    def route_uri(self, merged: str) -> Routed | None:
        return _route(self._resource_heads, merged)


def _route(heads: Mapping[str, str], merged: str) -> Routed | None:
    for upstream, head in heads.items():
        if merged.startswith(head) and len(merged) > len(head):
            return Routed(upstream, merged[len(head) :])
    return None


def endpoints_from(tables: Any, upstream_names: Sequence[str]) -> tuple[EndpointSettings, ...]:
    """Parse the `[[endpoints]]` tables of the configuration.

    Raises:
        ConfigError: a table is malformed, names an unknown upstream, shares a name with an
            upstream or another endpoint, or has prefixes that would let two names collide.
    """
    if not isinstance(tables, list):
        raise ConfigError("endpoints must be an array of tables ([[endpoints]])")
    endpoints = tuple(_endpoint(index, table, upstream_names) for index, table in enumerate(tables))
    names = [endpoint.name for endpoint in endpoints]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"endpoint name {duplicate!r} is used twice")
    return endpoints


def _endpoint(index: int, table: Any, upstream_names: Sequence[str]) -> EndpointSettings:
    where = f"endpoints[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - ENDPOINT_KEYS)
    if unknown:
        raise ConfigError(f"{where} has an unknown setting {unknown[0]!r}")
    name = table.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", name):
        raise ConfigError(f"{where}.name must be a short name of letters, digits, '.', '_' or '-'")
    if name in upstream_names:
        raise ConfigError(f"endpoint {name!r} has the name of an upstream; /mcp/{name} can serve only one of them")
    members = _members(name, table.get("upstreams"), upstream_names)
    separator = table.get("separator", DEFAULT_SEPARATOR)
    if not isinstance(separator, str) or not separator or not _NAME_CHARS.match(separator):
        raise ConfigError(f"endpoint {name!r} separator must be one or more of letters, digits, '.', '_' or '-'")
    endpoint = EndpointSettings(name, members, separator, _prefixes(name, table.get("prefixes", {}), members))
    _refuse_ambiguous_prefixes(endpoint)
    return endpoint


def _members(name: str, value: Any, upstream_names: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'endpoint {name!r} needs upstreams = ["name", …], a list of configured upstreams')
    unknown = next((v for v in value if v not in upstream_names), None)
    if unknown is not None:
        raise ConfigError(f"endpoint {name!r} names {unknown!r}, which is not a configured upstream")
    repeated = next((v for v in value if value.count(v) > 1), None)
    if repeated is not None:
        raise ConfigError(f"endpoint {name!r} lists upstream {repeated!r} twice")
    return tuple(value)


def _prefixes(name: str, value: Any, members: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'endpoint {name!r} prefixes must be a table of upstream = "prefix"')
    for upstream, prefix in value.items():
        if upstream not in members:
            raise ConfigError(f"endpoint {name!r} has a prefix for {upstream!r}, which it does not serve")
        if not isinstance(prefix, str) or not prefix or not _NAME_CHARS.match(prefix):
            raise ConfigError(
                f"endpoint {name!r} prefix for {upstream!r} must be one or more of letters, digits, '.', '_' or '-'"
            )
    return dict(value)


def _refuse_ambiguous_prefixes(endpoint: EndpointSettings) -> None:
    heads = [(upstream, endpoint.prefix(upstream) + endpoint.separator) for upstream in endpoint.upstreams]
    for upstream, head in heads:
        for other, other_head in heads:
            if other != upstream and other_head.startswith(head):
                raise ConfigError(
                    f"endpoint {endpoint.name!r}: names of {upstream!r} ({head}…) and {other!r} ({other_head}…) "
                    "could collide; give one of them another prefix ([endpoints.prefixes])"
                )
