"""Protected Resource Metadata routes and challenges (`app/oauth/metadata.py`).

Provenance: spec (RFC 9728 §3.1 path-inserted well-known URL, §3.3 `resource` identical to the
URL it was inserted into; RFC 8707 canonical resource form; MCP: clients try the path-inserted
URL, then the root); Airlock-defined (the issuer is published exactly as configured; a
`public_url` with a path is served with and without it).
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from app.config import OAuthSettings
from app.oauth import metadata as resource_metadata
from app.oauth.metadata import canonical_url, challenge, metadata_url, resource_url

OAUTH = OAuthSettings(
    issuer="http://127.0.0.1:9471", required_scopes=("mcp:tools",), upstream_scopes={"admin": ("mcp:admin",)}
)


def client(public_url: str, upstreams: list[str], oauth: OAuthSettings | None = OAUTH) -> httpx.AsyncClient:
    app = Starlette(routes=resource_metadata.routes(oauth, public_url, upstreams))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://airlock.test")


@pytest.mark.parametrize(
    ("url", "canonical"),
    [("HTTPS://Airlock.Example.COM/", "https://airlock.example.com"), ("https://a.example/x/", "https://a.example/x")],
)
def test_resource_urls_are_canonical(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical
    assert resource_url(url, "github") == f"{canonical}/mcp/github"


def test_the_metadata_url_inserts_the_well_known_part_after_the_host() -> None:
    assert metadata_url("https://a.example/x/mcp/github") == (
        "https://a.example/.well-known/oauth-protected-resource/x/mcp/github"
    )


def test_a_challenge_lists_error_metadata_and_scopes_in_order() -> None:
    assert challenge("https://a.example/mcp/g", ("a", "b"), error="insufficient_scope", description="why") == (
        'Bearer error="insufficient_scope", error_description="why", '
        'resource_metadata="https://a.example/.well-known/oauth-protected-resource/mcp/g", scope="a b"'
    )
    assert challenge("https://a.example/mcp/g", ()) == (
        'Bearer resource_metadata="https://a.example/.well-known/oauth-protected-resource/mcp/g"'
    )


async def test_each_endpoint_has_its_own_document_naming_the_issuer_exactly() -> None:
    async with client("https://airlock.example", ["market", "admin"]) as http:
        market = (await http.get("/.well-known/oauth-protected-resource/mcp/market")).json()
        admin = (await http.get("/.well-known/oauth-protected-resource/mcp/admin")).json()
        root = (await http.get("/.well-known/oauth-protected-resource")).json()
        missing = await http.get("/.well-known/oauth-protected-resource/mcp/nope")
    assert market["resource"] == "https://airlock.example/mcp/market"
    assert market["authorization_servers"] == ["http://127.0.0.1:9471"]  # no trailing slash added
    assert (market["scopes_supported"], admin["scopes_supported"]) == (["mcp:tools"], ["mcp:admin"])
    assert root["resource"] == "https://airlock.example"
    assert missing.status_code == 404


async def test_with_a_path_in_public_url_the_documents_are_served_with_and_without_it() -> None:
    async with client("https://gw.example/airlock", ["market"]) as http:
        inserted = await http.get("/.well-known/oauth-protected-resource/airlock/mcp/market")
        stripped = await http.get("/.well-known/oauth-protected-resource/mcp/market")
    assert inserted.json() == stripped.json()
    assert inserted.json()["resource"] == "https://gw.example/airlock/mcp/market"


async def test_browsers_may_read_the_documents_cross_origin() -> None:
    async with client("https://airlock.example", ["market"]) as http:
        preflight = await http.options("/.well-known/oauth-protected-resource/mcp/market")
        answer = await http.get("/.well-known/oauth-protected-resource/mcp/market")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == answer.headers["access-control-allow-origin"] == "*"


def test_without_oauth_there_are_no_routes() -> None:
    assert resource_metadata.routes(None, "https://airlock.example", ["market"]) == []
