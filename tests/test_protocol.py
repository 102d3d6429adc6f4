"""The protocol constants Airlock takes from the `mcp` SDK, pinned, and the two eras.

Provenance: the MCP specification (header names, error codes, revisions) as the SDK encodes it;
the pins are Airlock-defined, so that an SDK upgrade that changes a value Airlock depends on fails
here instead of changing what Airlock sends or how it routes.
"""

from __future__ import annotations

import pytest
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from app import protocol
from app.jsonrpc import tool_error_result
from app.policy.probe import PROTOCOL_VERSION as PROBE_VERSION
from app.protocol import Era


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PARSE_ERROR", -32700),
        ("INVALID_REQUEST", -32600),
        ("METHOD_NOT_FOUND", -32601),
        ("INVALID_PARAMS", -32602),
        ("INTERNAL_ERROR", -32603),
        ("HEADER_MISMATCH", -32020),
        ("MCP_PROTOCOL_VERSION", "mcp-protocol-version"),
        ("MCP_SESSION_ID", "mcp-session-id"),
        ("LAST_EVENT_ID", "last-event-id"),
        ("MCP_METHOD", "mcp-method"),
        ("MCP_NAME", "mcp-name"),
        ("PARAM_HEADER_PREFIX", "mcp-param-"),
        ("DEFAULT_VERSION", "2025-03-26"),
        ("PROTOCOL_VERSION_META", "io.modelcontextprotocol/protocolVersion"),
    ],
)
def test_a_constant_airlock_takes_from_the_sdk_keeps_its_value(name: str, value: object) -> None:
    assert getattr(protocol, name) == value


def test_header_names_are_lowercase_as_asgi_delivers_them() -> None:
    headers = [
        protocol.MCP_PROTOCOL_VERSION,
        protocol.MCP_SESSION_ID,
        protocol.LAST_EVENT_ID,
        protocol.MCP_METHOD,
        protocol.MCP_NAME,
        protocol.PARAM_HEADER_PREFIX,
    ]
    assert [name.lower() for name in headers] == headers


def test_the_handshake_era_serves_exactly_the_sdks_handshake_revisions() -> None:
    # Airlock departs from the SDK's set in neither direction (see app/protocol.py).
    assert frozenset(HANDSHAKE_PROTOCOL_VERSIONS) == protocol.HANDSHAKE_VERSIONS
    assert {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"} == protocol.HANDSHAKE_VERSIONS


def test_no_revision_is_routed_to_both_eras() -> None:
    assert protocol.HANDSHAKE_VERSIONS.isdisjoint(MODERN_PROTOCOL_VERSIONS)
    assert "2026-07-28" in MODERN_PROTOCOL_VERSIONS


def test_the_default_version_is_a_handshake_revision() -> None:
    assert protocol.DEFAULT_VERSION in protocol.HANDSHAKE_VERSIONS


def test_the_catalog_probe_speaks_a_handshake_revision() -> None:
    assert PROBE_VERSION in protocol.HANDSHAKE_VERSIONS


def test_era_values_are_what_the_database_stores() -> None:
    assert [era.value for era in Era] == ["handshake", "modern"]
    assert Era("modern") is Era.MODERN
    assert Era.MODERN.is_modern and not Era.HANDSHAKE.is_modern


@pytest.mark.parametrize(("era", "result_type"), [(Era.HANDSHAKE, None), (Era.MODERN, "complete")])
def test_a_tool_error_result_carries_result_type_only_in_2026_07_28(era: Era, result_type: str | None) -> None:
    assert tool_error_result("no", era=era).get("resultType") == result_type


def test_tool_error_result_still_reads_the_former_modern_flag() -> None:
    assert tool_error_result("no", modern=True) == tool_error_result("no", era=Era.MODERN)
    assert tool_error_result("no", modern=False) == tool_error_result("no", era=Era.HANDSHAKE)
