"""The composition root: what it builds, in which order, and from which settings.

Provenance: Airlock-defined (issue 11, items 4 and 10: one composition root; reviewer channels
plug in through one interface; the CLI builds its parts the way `serve` does).
"""

from __future__ import annotations

from pathlib import Path

from app.approvals.model import Approval
from app.runtime import Runtime, build_core
from tests.harness import settings_for_test


class Recording:
    name = "recording"

    async def parked(self, approval: Approval) -> None:
        return None

    async def changed(self, approval: Approval) -> None:
        return None


async def test_every_reviewer_channel_plugs_in_as_an_extension_log_first_then_given_channels_then_features(
    tmp_path: Path,
) -> None:
    settings = settings_for_test(tmp_path, "http://127.0.0.1:9/mcp", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    runtime = Runtime(settings, channels=[Recording()])
    try:
        assert [extension.name for extension in runtime.extensions] == ["log", "recording", "inbox"]
        assert [channel.name for channel in runtime.channels.channels] == ["log", "recording"]
        assert runtime.ledger.channels is runtime.channels, "the ledger tells the extensions' channels"
    finally:
        await runtime.db.dispose()


async def test_the_core_every_entry_point_shares_follows_audit_store_arguments(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    for store_arguments in (False, True):
        settings = settings_for_test(
            tmp_path, "http://127.0.0.1:9/mcp", url, audit={"store_arguments": store_arguments}
        )
        core = build_core(settings)
        try:
            stored = core.audit.describe_arguments({"task_id": "t-1"})["arguments"]
            assert (stored is not None) is store_arguments
            assert core.ledger.audit is core.audit and core.ledger.notifier is core.notifier
        finally:
            await core.db.dispose()
