"""Merged lists of an endpoint (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`).

Each upstream's page is renamed by the endpoint's naming scheme (`app/endpoints.py`) and the pages
are concatenated in the endpoint's order. Pagination stays honest: a merged page holds one page of
every upstream still to be read, and its `nextCursor` is Airlock's own opaque cursor carrying each
upstream's cursor (base64url JSON `{"upstream": "cursor", …}`), so the client's next request reads
the next page of exactly those upstreams. A cursor Airlock did not make is refused as invalid
params (the spec's answer to an unknown cursor), never passed on.

Pure module: pages in, a page out; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.endpoints import Naming
from app.types import JSONObject

logger = logging.getLogger("airlock.gateway")

MAX_CURSOR_CHARS: Final = 16_384


@dataclass(frozen=True, slots=True)
class Listing:
    """How one list method names its items: the result key, and which member of an item is renamed."""

    key: str
    member: str
    kind: str
    """What the log calls an item ("tool", "prompt", …)."""


LISTINGS: Final[Mapping[str, Listing]] = {
    "tools/list": Listing("tools", "name", "tool"),
    "prompts/list": Listing("prompts", "name", "prompt"),
    "resources/list": Listing("resources", "uri", "resource"),
    "resources/templates/list": Listing("resourceTemplates", "uriTemplate", "resource template"),
}


class BadCursor(ValueError):
    """A cursor Airlock did not hand out (or one for another endpoint's upstreams)."""


def encode_cursor(cursors: Mapping[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(cursors), separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: object, members: Sequence[str]) -> dict[str, str]:
    """Each upstream's cursor inside an endpoint's cursor.

    Raises:
        BadCursor: not a cursor this endpoint makes.
    """
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor("the cursor is not one this endpoint returned")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise BadCursor("the cursor is not one this endpoint returned") from None
    if (
        not isinstance(value, dict)
        or not value
        or not all(k in members and isinstance(v, str) for k, v in value.items())
    ):
        raise BadCursor("the cursor is not one this endpoint returned")
    return value


def merge_pages(listing: Listing, naming: Naming, pages: Sequence[tuple[str, JSONObject]], endpoint: str) -> JSONObject:
    """One merged result from each upstream's result page, in order; items that cannot be named are left out."""
    items: list[Any] = []
    seen: set[str] = set()
    cursors: dict[str, str] = {}
    for upstream, page in pages:
        raw = page.get(listing.key)
        for item in raw if isinstance(raw, list) else []:
            renamed = _renamed(listing, naming, upstream, item)
            if renamed is None or renamed[listing.member] in seen:
                logger.warning(
                    "endpoint %s: %s %r of %s left out of %s (%s)",
                    endpoint,
                    listing.kind,
                    item.get(listing.member) if isinstance(item, dict) else item,
                    upstream,
                    listing.key,
                    "its name would break the MCP name rules"
                    if renamed is None
                    else "another item already has its merged name",
                )
                continue
            seen.add(renamed[listing.member])
            items.append(renamed)
        next_cursor = page.get("nextCursor")
        if isinstance(next_cursor, str):
            cursors[upstream] = next_cursor
    result: JSONObject = {listing.key: items, **_cache_fields([page for _, page in pages])}
    if cursors:
        result["nextCursor"] = encode_cursor(cursors)
    return result


def _cache_fields(pages: Sequence[JSONObject]) -> JSONObject:
    """2026-07-28's `resultType`, `ttlMs` and `cacheScope`, when the pages carry them: the merged
    page may be cached as briefly, and as privately, as its most restrictive part."""
    fields: JSONObject = {}
    if any("resultType" in page for page in pages):
        fields["resultType"] = "complete"
    ttls = [page["ttlMs"] for page in pages if isinstance(page.get("ttlMs"), int)]
    if ttls:
        fields["ttlMs"] = min(ttls)
    if any("cacheScope" in page for page in pages):
        public = all(page.get("cacheScope") == "public" for page in pages)
        fields["cacheScope"] = "public" if public else "private"
    return fields


def _renamed(listing: Listing, naming: Naming, upstream: str, item: object) -> JSONObject | None:
    if not isinstance(item, dict) or not isinstance(item.get(listing.member), str):
        return None
    rename: Callable[[str, str], str | None] = naming.uri if listing.member != "name" else naming.name
    merged = rename(upstream, item[listing.member])
    return None if merged is None else {**item, listing.member: merged}
