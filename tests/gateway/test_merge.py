"""Merged list pages: renamed items, honest cursors, and the 2026-07-28 cache fields.

Provenance: Airlock-defined (issue 14, item 2); cursors are opaque to clients (MCP spec,
"Pagination"), so a cursor Airlock did not make is invalid params.
"""

from __future__ import annotations

import pytest

from app.endpoints import EndpointSettings, Naming
from app.gateway.merge import LISTINGS, BadCursor, decode_cursor, encode_cursor, merge_pages
from app.types import JSONObject

NAMING = Naming(EndpointSettings("team", ("market", "files"), "__", {}))
MEMBERS = ("market", "files")


def test_each_upstreams_page_is_renamed_and_the_next_cursor_carries_each_upstreams_own() -> None:
    pages: list[tuple[str, JSONObject]] = [
        ("market", {"tools": [{"name": "em_get_task"}], "nextCursor": "m2"}),
        ("files", {"tools": [{"name": "read_file", "description": "kept"}]}),
    ]
    merged = merge_pages(LISTINGS["tools/list"], NAMING, pages, "team")
    assert merged["tools"] == [{"name": "market__em_get_task"}, {"name": "files__read_file", "description": "kept"}]
    assert decode_cursor(merged["nextCursor"], MEMBERS) == {"market": "m2"}


def test_the_last_page_has_no_next_cursor() -> None:
    merged = merge_pages(LISTINGS["prompts/list"], NAMING, [("files", {"prompts": [{"name": "p"}]})], "team")
    assert merged == {"prompts": [{"name": "files__p"}]}


def test_resources_and_templates_are_prefixed_as_uris() -> None:
    resources = merge_pages(LISTINGS["resources/list"], NAMING, [("files", {"resources": [{"uri": "file:///a"}]})], "t")
    templates = merge_pages(
        LISTINGS["resources/templates/list"],
        NAMING,
        [("files", {"resourceTemplates": [{"uriTemplate": "file:///{p}"}]})],
        "t",
    )
    assert resources["resources"] == [{"uri": "airlock:files/file:///a"}]
    assert templates["resourceTemplates"] == [{"uriTemplate": "airlock:files/file:///{p}"}]


def test_an_item_that_cannot_be_named_or_repeats_a_name_is_left_out() -> None:
    pages = [("files", {"tools": [{"name": "bad name"}, {"name": "ok"}, {"name": "ok"}, "junk", {"name": 7}]})]
    assert merge_pages(LISTINGS["tools/list"], NAMING, pages, "team")["tools"] == [{"name": "files__ok"}]


def test_the_merged_page_is_cached_as_briefly_and_privately_as_its_strictest_part() -> None:
    pages = [
        ("market", {"tools": [], "resultType": "complete", "ttlMs": 5000, "cacheScope": "public"}),
        ("files", {"tools": [], "resultType": "complete", "ttlMs": 100, "cacheScope": "private"}),
    ]
    merged = merge_pages(LISTINGS["tools/list"], NAMING, pages, "team")
    assert (merged["resultType"], merged["ttlMs"], merged["cacheScope"]) == ("complete", 100, "private")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        encode_cursor({"elsewhere": "c"}),  # an upstream this endpoint does not serve
        encode_cursor({}),
        "WyJtYXJrZXQiXQ==",  # ["market"]
        7,
        "A" * 20_000,
    ],
)
def test_a_cursor_the_endpoint_did_not_make_is_refused(cursor: object) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor, MEMBERS)
