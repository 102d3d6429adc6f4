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
    return settings_from_document(document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40},
                                  require_upstreams=False)


def test_the_held_cap_defaults_to_twice_the_pending_cap(tmp_path: Path) -> None:
    assert settings(tmp_path).approvals.max_held_per_agent == 40
    assert settings(tmp_path, approvals={"max_pending_per_agent": 5}).approvals.max_held_per_agent == 10
    assert settings(tmp_path, approvals={"max_held_per_agent": 3}).approvals.max_held_per_agent == 3


@pytest.mark.parametrize(("document", "expected"), [
    ({"approvals": {"max_held_per_agent": 0}}, "approvals.max_held_per_agent must be a positive number"),
    ({"approvals": {"max_held_per_agent": 2.5}}, "approvals.max_held_per_agent must be a positive number"),
])
def test_a_bad_cap_or_retention_is_one_sentence(tmp_path: Path, document: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        settings(tmp_path, **document)
