"""A held call whose tool name and arguments hide characters ("Trojan Source", CVE-2021-42574), for
the tests that check every reviewer channel shows them as escapes (issue 10, class 6)."""

from __future__ import annotations

from typing import Any, Final

from tests.harness import DEFAULT_POLICY

TOOL: Final = "em_cancel\u202e_task\u200b"
"""Reads as `em_cancel` + a reversed `_task`; the zero-width space makes it differ from a real tool."""
ARGUMENTS: Final[dict[str, Any]] = {"task_id": "t\u200b1", "note": "pay \u202eevil\u202c now"}
RAW: Final = ("\u202e", "\u200b")
"""What must never reach a reviewer as is."""
ESCAPED: Final = ("\\u202e", "\\u200b")
POLICY: Final[dict[str, Any]] = {
    **DEFAULT_POLICY,
    "rules": [{"id": "trojan", "tool": "em_cancel*", "action": "approve"}, *DEFAULT_POLICY["rules"]],
}
"""The test policy, plus a rule that holds the tricky tool for approval (the upstream never sees it)."""


def revealed(text: str) -> bool:
    """`text` has the escapes and none of the raw characters."""
    return not any(raw in text for raw in RAW) and all(escape in text for escape in ESCAPED)
