"""`[escalation.<name>]` targets: parsed by name, and a target that would tell nobody refused in one sentence.

Provenance: Airlock-defined (issue 18 item 3; docs/policy.md, "Escalation"; STYLE habit 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import EscalationTarget, Settings, settings_from_document
from app.errors import ConfigError

SLACK_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cret",
    "SLACK_APP_ID": "A1",
    "SLACK_TEAM_IDS": "T1",
    "SLACK_DEFAULT_CHANNEL": "C1",
}
WEBHOOK = {"url": "https://hooks.example/a"}
WEBHOOK_ENV = {"AIRLOCK_WEBHOOK_SECRET": "w" * 32}


def load(tmp_path: Path, document: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    return settings_from_document(
        document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40, **(env or {})}, require_upstreams=False
    )


def test_targets_are_read_by_name(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {
            "webhook": WEBHOOK,
            "escalation": {"sre-oncall": {"slack_channel": "#sre-oncall", "webhook": True}, "pager": {"webhook": True}},
        },
        {**SLACK_ENV, **WEBHOOK_ENV},
    )
    assert settings.escalation == {
        "sre-oncall": EscalationTarget("sre-oncall", slack_channel="#sre-oncall", webhook=True),
        "pager": EscalationTarget("pager", webhook=True),
    }


def test_no_escalation_section_means_no_targets(tmp_path: Path) -> None:
    assert load(tmp_path, {}).escalation == {}


@pytest.mark.parametrize(
    ("document", "env", "sentence"),
    [
        ({"escalation": "sre"}, {}, "[escalation] must be a table of targets ([escalation.<name>])"),
        ({"escalation": {"sre": {}}}, {}, "[escalation.sre] tells nobody: set slack_channel, webhook = true, or both"),
        ({"escalation": {"sre": {"channel": "#x"}}}, {}, "[escalation.sre] has an unknown setting 'channel'"),
        ({"escalation": {"sre": {"webhook": "yes"}}}, {}, "setting 'webhook' must be true or false, not 'yes'"),
        (
            {"escalation": {"sre": {"slack_channel": "#sre"}}},
            {},
            "[escalation.sre] names a Slack channel, but Slack is not configured",
        ),
        (
            {"escalation": {"sre": {"webhook": True}}},
            SLACK_ENV,
            "[escalation.sre] sets webhook = true, but [webhook] is not configured",
        ),
    ],
)
def test_a_target_that_would_tell_nobody_is_refused_in_one_sentence(
    tmp_path: Path, document: dict[str, Any], env: dict[str, str], sentence: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, document, env)
    assert str(refused.value) == sentence


def test_the_example_config_shows_every_target_setting() -> None:
    example = (Path(__file__).resolve().parents[1] / "airlock.example.toml").read_text(encoding="utf-8")
    assert "# [escalation.sre-oncall]" in example
    assert all(f"{key} = " in example for key in ("slack_channel", "webhook"))
