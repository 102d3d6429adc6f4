"""The log formats and their settings.

Provenance: Airlock-defined (issue 16, item 4).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app.config import settings_from_document
from app.errors import ConfigError
from app.logs import JsonFormatter, bind, request_fields

ENV = {"AIRLOCK_SECRET_KEY": "k" * 40}


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("airlock.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_json_line_carries_the_fields_bound_during_its_request_and_only_then() -> None:
    formatter = JsonFormatter()
    with request_fields(request_id="r1", upstream="market"):
        bind(agent="bot", approval_id=None)
        inside = json.loads(formatter.format(_record("hello %s", "world")))
    bind(agent="ignored outside a request")
    outside = json.loads(formatter.format(_record("bye")))
    assert inside | {"time": ""} == {
        "time": "",
        "level": "WARNING",
        "logger": "airlock.test",
        "message": "hello world",
        "request_id": "r1",
        "upstream": "market",
        "agent": "bot",
    }
    assert inside["time"].endswith("Z") and "T" in inside["time"]
    assert set(outside) == {"time", "level", "logger", "message"}


def test_a_json_line_holds_the_traceback_in_one_field_on_one_line() -> None:
    line = JsonFormatter().format(_record("failed", exc=True))
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


@pytest.mark.parametrize(
    ("table", "env", "expected"),
    [
        ({}, {}, ("text", False)),
        ({"format": "json", "access_log": True}, {}, ("json", True)),
        ({"format": "json"}, {"AIRLOCK_LOG_FORMAT": "text", "AIRLOCK_ACCESS_LOG": "true"}, ("text", True)),
        ({"access_log": True}, {"AIRLOCK_ACCESS_LOG": "0"}, ("text", False)),
    ],
)
def test_logging_settings_come_from_the_environment_then_the_file(
    tmp_path: Path, table: dict[str, object], env: dict[str, str], expected: tuple[str, bool]
) -> None:
    settings = settings_from_document(
        {"logging": table}, base_dir=tmp_path, env={**ENV, **env}, require_upstreams=False
    )
    assert (settings.logging.format, settings.logging.access_log) == expected


@pytest.mark.parametrize(
    ("table", "env", "message"),
    [
        ({"format": "yaml"}, {}, 'logging format must be "text" or "json", not \'yaml\''),
        ({"colour": True}, {}, "[logging] accepts only"),
        ({"access_log": "yes"}, {}, "logging.access_log must be true or false"),
        ({}, {"AIRLOCK_ACCESS_LOG": "maybe"}, "AIRLOCK_ACCESS_LOG must be true or false"),
    ],
)
def test_bad_logging_settings_are_one_sentence(
    tmp_path: Path, table: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_document({"logging": table}, base_dir=tmp_path, env={**ENV, **env}, require_upstreams=False)
    assert str(raised.value).startswith(message)
