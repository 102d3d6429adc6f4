"""Settings for issue 10's caps and retention: defaults, derivation and one-sentence errors.

Provenance: Airlock-defined (issue 10, "One agent cannot take what others need").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import settings_from_document
from app.errors import ConfigError


def settings(tmp_path: Path, **document: Any) -> Any:
    return settings_from_document(
        document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40}, require_upstreams=False
    )


def test_the_held_cap_defaults_to_twice_the_pending_cap(tmp_path: Path) -> None:
    assert settings(tmp_path).approvals.max_held_per_agent == 40
    assert settings(tmp_path, approvals={"max_pending_per_agent": 5}).approvals.max_held_per_agent == 10
    assert settings(tmp_path, approvals={"max_held_per_agent": 3}).approvals.max_held_per_agent == 3


def test_sessions_are_bounded_and_retention_is_a_day_by_default(tmp_path: Path) -> None:
    defaults = settings(tmp_path)
    assert (defaults.sessions.max_per_agent, defaults.sessions.idle_seconds) == (64, 3600.0)
    assert defaults.sessions.retention_seconds == defaults.approvals.stream_retention_seconds == 86400.0
    chosen = settings(
        tmp_path,
        sessions={"max_per_agent": 8, "idle_seconds": 60, "retention_seconds": 600},
        approvals={"stream_retention_seconds": 120},
    )
    assert (chosen.sessions.max_per_agent, chosen.sessions.idle_seconds, chosen.sessions.retention_seconds) == (
        8,
        60.0,
        600.0,
    )
    assert chosen.approvals.stream_retention_seconds == 120.0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"approvals": {"max_held_per_agent": 0}}, "approvals.max_held_per_agent must be a positive number"),
        ({"approvals": {"max_held_per_agent": 2.5}}, "approvals.max_held_per_agent must be a positive number"),
        ({"approvals": {"stream_retention_seconds": 0}}, "approvals.stream_retention_seconds must be a positive"),
        ({"sessions": {"max_per_agent": 0}}, "sessions.max_per_agent must be a positive number"),
        ({"sessions": {"idle_seconds": -1}}, "sessions.idle_seconds must be a positive number of seconds"),
        ({"sessions": {"retention_seconds": "long"}}, "sessions.retention_seconds must be a number of seconds"),
        ({"sessions": {"max_sessions": 3}}, r"\[sessions\] has an unknown setting 'max_sessions'"),
        ({"sessions": 5}, r"\[sessions\] must be a table"),
    ],
)
def test_a_bad_cap_or_retention_is_one_sentence(tmp_path: Path, document: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        settings(tmp_path, **document)
