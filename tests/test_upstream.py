"""What the tool catalog learns from `tools/list` (app/upstream.py `ToolCatalog`).

Provenance: Airlock-defined (issue 12): the gateway skips the SDK's `Mcp-Param-*` validator only
for tools whose schema cannot declare a header, so that set must never hold a tool that can.
"""

from __future__ import annotations

from typing import Any

from app.upstream import ToolCatalog

PLAIN: dict[str, Any] = {"type": "object", "properties": {"task_id": {"type": "string"}}}
DECLARING: dict[str, Any] = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
}
NESTED: dict[str, Any] = {"type": "object", "anyOf": [{"properties": {"a": {"x-mcp-header": "A"}}}]}


def test_a_tool_whose_schema_has_no_x_mcp_header_anywhere_is_header_free() -> None:
    catalog = ToolCatalog()
    catalog.learn([{"name": "plain", "inputSchema": PLAIN}, {"name": "none"}])
    assert catalog.header_free == {"plain", "none"}


def test_a_tool_that_mentions_x_mcp_header_at_any_depth_is_always_validated() -> None:
    catalog = ToolCatalog()
    catalog.learn([{"name": "declaring", "inputSchema": DECLARING}, {"name": "nested", "inputSchema": NESTED}])
    assert catalog.header_free == set()


def test_a_tool_that_starts_declaring_a_header_leaves_the_header_free_set() -> None:
    catalog = ToolCatalog()
    catalog.learn([{"name": "t", "inputSchema": PLAIN}])
    catalog.learn([{"name": "t", "inputSchema": DECLARING}])
    assert "t" not in catalog.header_free
