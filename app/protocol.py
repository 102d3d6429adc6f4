"""The MCP protocol facts Airlock relies on: the two eras, and the constants the `mcp` package defines.

Airlock speaks both eras of Streamable HTTP: the handshake era (`initialize`, `Mcp-Session-Id`,
versions up to 2025-11-25) and the 2026-07-28 era (no handshake; each request carries its version).
Constants come from `mcp` where it defines them, so the next protocol revision cannot drift from
the SDK silently. Pure module: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class Era(StrEnum):
    """Which protocol era a request, held call or session belongs to.

    The values are what the database stores in `approvals.era`; do not change them.
    """

    HANDSHAKE = "handshake"
    MODERN = "modern"

    @property
    def is_modern(self) -> bool:
        return self is Era.MODERN
