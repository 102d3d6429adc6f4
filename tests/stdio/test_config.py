"""`[[upstreams]]` with `command`: exactly one of url and command, validated at load with one sentence.

Provenance: Airlock-defined (issue 14, item 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import settings_from_document
from app.errors import ConfigError

ENV = {"AIRLOCK_SECRET_KEY": "k" * 40, "FS_TOKEN": "t0ken"}


def load(tmp_path: Path, **upstream: Any) -> Any:
    table = {"name": "files", "policy": "files.json", **upstream}
    return settings_from_document({"upstreams": [table]}, base_dir=tmp_path, env=ENV).upstreams[0]


def test_a_command_makes_a_stdio_upstream_with_env_expanded_and_cwd_resolved(tmp_path: Path) -> None:
    upstream = load(tmp_path, command=["npx", "server", "/srv"], env={"TOKEN": "Bearer ${FS_TOKEN}"}, cwd="work")
    assert upstream.url == ""
    assert upstream.stdio.command == ("npx", "server", "/srv")
    assert upstream.stdio.env == {"TOKEN": "Bearer t0ken"}
    assert upstream.stdio.cwd == tmp_path / "work"
    assert (upstream.stdio.max_processes, upstream.stdio.idle_seconds) == (10, 900.0)


def test_an_http_upstream_has_no_stdio_settings(tmp_path: Path) -> None:
    assert load(tmp_path, url="http://127.0.0.1:9000/mcp").stdio is None


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        (
            {},
            'upstream \'files\' needs exactly one of url = "http://…" (Streamable HTTP) or command = ["prog", …] (stdio)',
        ),
        (
            {"url": "http://127.0.0.1/mcp", "command": ["x"]},
            'upstream \'files\' needs exactly one of url = "http://…" (Streamable HTTP) or command = ["prog", …] (stdio)',
        ),
        ({"command": []}, 'upstream \'files\' command must be a non-empty list of strings, such as ["npx", "server"]'),
        (
            {"command": "npx server"},
            'upstream \'files\' command must be a non-empty list of strings, such as ["npx", "server"]',
        ),
        ({"command": ["x"], "env": {"A": 1}}, "upstream 'files' env must be a table of strings"),
        (
            {"command": ["x"], "env": {"A": "${UNSET}"}},
            "upstream 'files' env 'A' refers to ${UNSET}, which is not set in the environment",
        ),
        ({"command": ["x"], "headers": {"A": "b"}}, "upstream 'files' runs a command, so it takes env, not headers"),
        ({"url": "http://127.0.0.1/mcp", "cwd": "/srv"}, "upstream 'files' has a url, so 'cwd' does not apply"),
        (
            {"command": ["x"], "max_processes": 0},
            "upstream 'files' max_processes must be a positive number with no fraction, not 0",
        ),
        ({"command": ["x"], "idle_seconds": -1}, "upstream 'files' idle_seconds must be a positive number of seconds"),
    ],
)
def test_a_bad_stdio_upstream_is_refused_with_one_sentence(
    tmp_path: Path, upstream: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, **upstream)
    assert str(refused.value) == message
