"""`[[endpoints]]` settings and the naming scheme: names say where they come from, and read back one way only.

Provenance: Airlock-defined (issue 14, item 2); the name rules are the MCP spec's for tool names
(2025-11-25: 1 to 128 characters of `A-Z a-z 0-9 _ . -`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import settings_from_document
from app.endpoints import EndpointSettings, Naming, Routed, endpoints_from
from app.errors import ConfigError

UPSTREAMS = ["market", "files", "git"]


def endpoint(**overrides: Any) -> dict[str, Any]:
    return {"name": "team", "upstreams": ["market", "files"], **overrides}


def test_an_endpoint_from_the_configuration_file(tmp_path: Path) -> None:
    document = {
        "upstreams": [
            {"name": name, "url": f"http://127.0.0.1:9100/{name}", "policy": f"{name}.json"} for name in UPSTREAMS
        ],
        "endpoints": [endpoint(prefixes={"market": "m"}, separator=".")],
    }
    settings = settings_from_document(document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 42})
    assert settings.endpoints == (EndpointSettings("team", ("market", "files"), ".", {"market": "m"}),)


@pytest.mark.parametrize(
    ("table", "sentence"),
    [
        (endpoint(upstreams=["market", "nope"]), "endpoint 'team' names 'nope', which is not a configured upstream"),
        (endpoint(name="market"), "endpoint 'market' has the name of an upstream"),
        (endpoint(upstreams=[]), "endpoint 'team' needs upstreams"),
        (endpoint(upstreams=["market", "market"]), "endpoint 'team' lists upstream 'market' twice"),
        (endpoint(separator="/"), "endpoint 'team' separator must be"),
        (endpoint(prefixes={"git": "g"}), "endpoint 'team' has a prefix for 'git', which it does not serve"),
        (endpoint(prefixes={"files": "a b"}), "endpoint 'team' prefix for 'files' must be"),
        (endpoint(prefixes={"files": "market"}), "names of 'market' (market__…) and 'files' (market__…) could collide"),
        (
            endpoint(prefixes={"files": "market_"}),
            "names of 'market' (market__…) and 'files' (market___…) could collide",
        ),
        (endpoint(colour="red"), "endpoints[0] has an unknown setting 'colour'"),
    ],
)
def test_a_bad_endpoint_is_refused_at_load_in_one_sentence(table: dict[str, Any], sentence: str) -> None:
    with pytest.raises(ConfigError) as refused:
        endpoints_from([table], UPSTREAMS)
    assert sentence in str(refused.value)


def test_two_endpoints_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="endpoint name 'team' is used twice"):
        endpoints_from([endpoint(), endpoint()], UPSTREAMS)


NAMING = Naming(EndpointSettings("team", ("market", "files"), "__", {"market": "m"}))


@pytest.mark.parametrize(
    ("merged", "routed"),
    [
        ("m__em_get_task", Routed("market", "em_get_task")),
        ("files__read_file", Routed("files", "read_file")),
        ("files__m__em_get_task", Routed("files", "m__em_get_task")),  # the files server's own (odd) name
        ("market__em_get_task", None),  # the upstream's name is not its prefix here
        ("em_get_task", None),
        ("m__", None),
        ("m_em_get_task", None),
        ("m__em get task", None),
        ("m__" + "x" * 126, None),  # 129 characters
    ],
)
def test_a_merged_name_reads_back_to_one_upstream_or_none(merged: str, routed: Routed | None) -> None:
    assert NAMING.route_name(merged) == routed


def test_names_that_would_break_the_spec_rules_get_no_merged_name() -> None:
    assert NAMING.name("files", "read_file") == "files__read_file"
    assert NAMING.name("files", "read file") is None
    assert NAMING.name("files", "x" * 122) is None  # 7 + 122 = 129 characters
    assert NAMING.name("files", "x" * 121) == "files__" + "x" * 121


def test_resource_uris_carry_the_prefix_as_a_uri_and_read_back() -> None:
    merged = NAMING.uri("files", "file:///tmp/a b?x=1#top")
    assert merged == "airlock:files/file:///tmp/a b?x=1#top"
    assert NAMING.route_uri(merged) == Routed("files", "file:///tmp/a b?x=1#top")
    assert NAMING.route_uri("file:///tmp/a") is None
    assert NAMING.route_uri("airlock:files/") is None


def test_the_example_config_shows_every_endpoint_setting() -> None:
    from app.endpoints import ENDPOINT_KEYS
    from tests.test_config import example_with_every_setting_uncommented

    [table] = example_with_every_setting_uncommented()["endpoints"]
    assert set(table) == ENDPOINT_KEYS
