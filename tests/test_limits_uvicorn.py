"""`[server]` shutdown_grace_seconds and forwarded_allow_ips: validation and the uvicorn options.

Provenance: Airlock-defined (issue 16, items 5 and 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import settings_from_document
from app.errors import ConfigError
from app.limits import uvicorn_limits


def _server(tmp_path: Path, **table: Any) -> Any:
    document = {"server": table}
    return settings_from_document(
        document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40}, require_upstreams=False
    ).server


def test_forwarded_headers_are_ignored_unless_proxies_are_listed(tmp_path: Path) -> None:
    options = uvicorn_limits(_server(tmp_path))
    assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (False, None)
    options = uvicorn_limits(_server(tmp_path, forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8", "::1"]))
    assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (True, ["127.0.0.1", "10.0.0.0/8", "::1"])


def test_the_shutdown_grace_is_uvicorns_graceful_timeout(tmp_path: Path) -> None:
    assert uvicorn_limits(_server(tmp_path))["timeout_graceful_shutdown"] == 30.0
    assert uvicorn_limits(_server(tmp_path, shutdown_grace_seconds=2))["timeout_graceful_shutdown"] == 2.0


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"forwarded_allow_ips": ["proxy.internal"]}, "server.forwarded_allow_ips must list IP addresses"),
        ({"forwarded_allow_ips": "127.0.0.1"}, "setting 'forwarded_allow_ips' must be a list"),
        ({"shutdown_grace_seconds": -1}, "server.shutdown_grace_seconds cannot be negative"),
    ],
)
def test_bad_shutdown_or_proxy_settings_are_one_sentence(tmp_path: Path, table: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _server(tmp_path, **table)
    assert str(raised.value).startswith(expected)
