"""A policy that escalates to a target airlock.toml does not define is refused at startup, and logged on reload.

Provenance: Airlock-defined (issue 18 item 3; docs/policy.md, "Escalation and expiry"): an
escalation that would tell nobody fails closed where it can (startup) and loudly where it cannot
(a reload already in force).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app.approvals.escalation import check_targets
from app.errors import ConfigError
from app.policy.reloader import PolicyReloader


def policy(path: Path, target: str) -> Path:
    rule: dict[str, Any] = {"tool": "t", "action": "approve", "escalate_after": 60, "escalate_to": target}
    path.write_text(json.dumps({"version": "1", "rules": [rule]}), encoding="utf-8")
    return path


def test_an_unknown_target_at_startup_is_one_sentence(tmp_path: Path) -> None:
    policies = PolicyReloader({"market": policy(tmp_path / "p.json", "pager")})
    with pytest.raises(ConfigError) as refused:
        check_targets(policies, ["market"], {"sre-oncall"})
    assert str(refused.value) == (
        "the policy for upstream 'market' escalates to 'pager', but airlock.toml has no [escalation.pager]"
    )


def test_a_reloaded_policy_naming_an_unknown_target_is_logged_as_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = policy(tmp_path / "p.json", "sre-oncall")
    policies = PolicyReloader({"market": path})
    check_targets(policies, ["market"], {"sre-oncall"})
    policy(path, "pager")
    with caplog.at_level(logging.ERROR, logger="airlock.approvals"):
        assert policies.check_now() == ["market"]
    assert "escalates to 'pager', but airlock.toml has no [escalation.pager]" in caplog.text
