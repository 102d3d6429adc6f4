"""The log channel, which operators read to find new approvals, shows hidden characters as escapes.

Provenance: Airlock-defined (issue 10, class 6: every place a reviewer reads a call).
"""

from __future__ import annotations

import logging

import pytest

from app.demo.upstream import DemoMarket
from tests import trojan
from tests.harness import AirlockUnderTest
from tests.inbox.conftest import held_call
from tests.net import wait_for


async def test_the_approval_needed_log_line_shows_a_tricky_tool_name_as_escapes(
    airlock: AirlockUnderTest, market: DemoMarket, caplog: pytest.LogCaptureFixture
) -> None:
    airlock.set_policy(trojan.POLICY)
    lines: list[str] = []

    def logged() -> bool:
        lines[:] = [
            record.getMessage()
            for record in caplog.records
            if record.name == "airlock.approvals" and approval["id"] in record.getMessage()
        ]
        return any(line.startswith("approval needed") for line in lines)

    with caplog.at_level(logging.INFO, logger="airlock.approvals"):
        async with held_call(airlock, market, tool=trojan.TOOL, arguments=trojan.ARGUMENTS) as (_call, approval):
            # Channels hear of a new approval after its transaction commits, not before the API shows it.
            await wait_for(logged, timeout=10)
    assert all(trojan.revealed(line) for line in lines), lines
