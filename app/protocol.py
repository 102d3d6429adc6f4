"""The MCP protocol facts Airlock relies on: the two eras, and the constants the `mcp` package defines.

Airlock speaks both eras of Streamable HTTP: the handshake era (`initialize`, `Mcp-Session-Id`,
versions up to 2025-11-25) and the 2026-07-28 era (no handshake; each request carries its version).
Constants come from `mcp` where it defines them, so the next protocol revision cannot drift from
the SDK silently; `tests/test_protocol.py` pins the values Airlock depends on, so an SDK upgrade
that changes one fails there first. Other modules import these names from here rather than
redeclare them; `gateway/modern.py` also calls the SDK's validation ladder (`mcp.shared.inbound`)
directly, with that module's own status table. Pure module: no I/O.

Importing this adds nothing to the server's startup: `import mcp` already loads the SDK's server
modules, and the gateway imports it anyway (`gateway/modern.py`). It does load the SDK for a CLI
command that reaches `jsonrpc.py` (`airlock policy check --upstream`, for one), a fixed cost paid
once per command.

The JSON-RPC error codes keep the SDK's names (`PARSE_ERROR`, `INVALID_REQUEST`,
`METHOD_NOT_FOUND`, `INVALID_PARAMS`, `INTERNAL_ERROR`, and 2026-07-28's `HEADER_MISMATCH` for a
routing header that disagrees with the body); headers and versions get Airlock's shorter names.

Deliberate departures from the SDK (DO NOT "fix" without reading why):

- Header names are lowercase, as ASGI delivers them and as Airlock compares them, so
  `PARAM_HEADER_PREFIX` is the SDK's `Mcp-Param-` lowercased (the SDK does the same internally).
- `HANDSHAKE_VERSIONS` is exactly the SDK's handshake set today. Airlock routes on it (a request
  with any other `MCP-Protocol-Version` goes to the 2026-07-28 path), so if an SDK release drops
  or adds a revision, `tests/test_protocol.py` fails rather than Airlock silently re-routing
  clients; decide then whether Airlock follows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from mcp.server.streamable_http import LAST_EVENT_ID_HEADER, MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PARAM_HEADER_PREFIX, MCP_PROTOCOL_VERSION_HEADER
from mcp.types import (
    DEFAULT_NEGOTIATED_VERSION,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
)
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

__all__ = [
    "DEFAULT_VERSION",
    "HANDSHAKE_VERSIONS",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LAST_EVENT_ID",
    "MCP_METHOD",
    "MCP_NAME",
    "MCP_PROTOCOL_VERSION",
    "MCP_SESSION_ID",
    "METHOD_NOT_FOUND",
    "PARAM_HEADER_PREFIX",
    "PARSE_ERROR",
    "PROTOCOL_VERSION_META",
    "Era",
]


class Era(StrEnum):
    """Which protocol era a request, held call or session belongs to.

    The values are what the database stores in `approvals.era`; do not change them.
    """

    HANDSHAKE = "handshake"
    MODERN = "modern"

    @property
    def is_modern(self) -> bool:
        return self is Era.MODERN


# Header names, lowercase.
MCP_PROTOCOL_VERSION: Final[str] = MCP_PROTOCOL_VERSION_HEADER
MCP_SESSION_ID: Final[str] = MCP_SESSION_ID_HEADER
"""Handshake era only: the session `initialize` opened."""
LAST_EVENT_ID: Final[str] = LAST_EVENT_ID_HEADER
MCP_METHOD: Final[str] = MCP_METHOD_HEADER
"""2026-07-28: the request's method, for intermediaries that route without reading the body."""
MCP_NAME: Final[str] = MCP_NAME_HEADER
"""2026-07-28: the tool, prompt or resource a request names."""
PARAM_HEADER_PREFIX: Final[str] = MCP_PARAM_HEADER_PREFIX.lower()
"""2026-07-28: `Mcp-Param-<name>` headers mirror arguments the tool's schema marks for headers."""

# Versions.
HANDSHAKE_VERSIONS: Final[frozenset[str]] = frozenset(HANDSHAKE_PROTOCOL_VERSIONS)
"""The revisions served by the handshake era; any other `MCP-Protocol-Version` is 2026-07-28's."""
DEFAULT_VERSION: Final[str] = DEFAULT_NEGOTIATED_VERSION
"""What the spec says to assume when a handshake-era request carries no `MCP-Protocol-Version`."""
PROTOCOL_VERSION_META: Final[str] = PROTOCOL_VERSION_META_KEY
"""The `params._meta` key of the 2026-07-28 per-request envelope that names the version."""
