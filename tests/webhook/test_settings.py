"""`[webhook]` settings: off when absent, and a half or unsafe configuration refused in one sentence.

Provenance: Airlock-defined (docs/webhook.md, "Configure"; STYLE habit 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import WEBHOOK_EVENTS, settings_from_document
from app.errors import ConfigError

SECRET = "w" * 32


def webhook(tmp_path: Path, table: dict[str, Any] | None, env: dict[str, str] | None = None) -> Any:
    document = {} if table is None else {"webhook": table}
    settings = settings_from_document(
        document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40, **(env or {})}, require_upstreams=False
    )
    return settings.webhook


def test_a_webhook_setting_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[webhook\] must be a table$"):
        webhook(tmp_path, "https://h.example/")  # type: ignore[arg-type]


def test_the_webhook_is_off_without_a_url(tmp_path: Path) -> None:
    assert webhook(tmp_path, None) is None
    assert webhook(tmp_path, {}) is None


def test_a_url_and_a_secret_from_the_environment_turn_it_on_with_every_event(tmp_path: Path) -> None:
    loaded = webhook(tmp_path, {"url": "https://hooks.example/a"}, {"AIRLOCK_WEBHOOK_SECRET": SECRET})
    assert (loaded.url, loaded.secret, loaded.decision_secret) == ("https://hooks.example/a", SECRET, None)
    assert loaded.events == frozenset(WEBHOOK_EVENTS)
    assert SECRET not in repr(loaded)


def test_secrets_may_be_named_as_variables_in_the_file(tmp_path: Path) -> None:
    table = {"url": "http://127.0.0.1:9/h", "secret": "${HOOK}", "decision_secret": "${DECIDE}"}
    loaded = webhook(tmp_path, table, {"HOOK": SECRET, "DECIDE": "d" * 32})
    assert (loaded.secret, loaded.decision_secret) == (SECRET, "d" * 32)


@pytest.mark.parametrize(
    "table,env,message",
    [
        ({"url": "https://h.example/"}, {}, "[webhook] needs a secret: set AIRLOCK_WEBHOOK_SECRET"),
        ({"url": "http://h.example/"}, {"AIRLOCK_WEBHOOK_SECRET": SECRET}, "webhook.url must be an https URL"),
        ({"url": "https://h.example/", "secret": SECRET}, {}, "must name an environment variable"),
        ({"url": "https://h.example/", "secret": "${NOPE}"}, {}, "refers to ${NOPE}, which is not set"),
        ({"url": "https://h.example/"}, {"AIRLOCK_WEBHOOK_SECRET": "short"}, "at least 32 random characters"),
        ({"url": "https://h.example/", "events": ["parked", "x"]}, {"AIRLOCK_WEBHOOK_SECRET": SECRET}, "events"),
        ({"url": "https://h.example/", "events": []}, {"AIRLOCK_WEBHOOK_SECRET": SECRET}, "events"),
        ({"url": "https://h.example/", "events": [{}]}, {"AIRLOCK_WEBHOOK_SECRET": SECRET}, "events"),
        ({"url": "https://h.example/", "colour": 1}, {"AIRLOCK_WEBHOOK_SECRET": SECRET}, "unknown setting 'colour'"),
        (
            {"url": "https://h.example/", "timeout_seconds": 60, "lease_seconds": 60},
            {"AIRLOCK_WEBHOOK_SECRET": SECRET},
            "lease_seconds must be longer",
        ),
    ],
)
def test_a_half_or_unsafe_webhook_configuration_is_refused_in_one_sentence(
    tmp_path: Path, table: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        webhook(tmp_path, table, env)
    assert message in str(raised.value)
