"""Protected Resource Metadata (RFC 9728) for each MCP endpoint, and the challenges that point to it.

With `[oauth]` on, every `/mcp/<name>` is an OAuth protected resource whose identifier (the
audience its tokens must name, RFC 8707) is `<public_url>/mcp/<name>`. Its metadata is served at
the path-inserted well-known URL, `/.well-known/oauth-protected-resource/mcp/<name>` (RFC 9728
§3.1, the one MCP clients try first and the one `WWW-Authenticate` names), and Airlock as a whole
at the root form, `/.well-known/oauth-protected-resource` (resource = `public_url`; a token for
that audience is not accepted at an endpoint: each endpoint is its own audience).

This module builds URLs, documents and header values; it validates no token (`app/oauth/resource_server.py` does).

Deliberate departures:

- Not `mcp.server.auth.routes.create_protected_resource_routes`: its pydantic `AnyHttpUrl` turns
  an issuer such as `http://idp.example:9471` into `http://idp.example:9471/`, and clients compare
  `authorization_servers` entries with the metadata's `issuer` as strings (RFC 8414 §3.3). Here the
  configured issuer is published exactly as written.
- URLs come from `public_url`, never from the request's `Host` (a client must not be able to
  choose the audience it is told to ask for). When `public_url` has a path (a proxy that strips
  a prefix), the metadata is served both with and without that prefix after the well-known part.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.config import OAuthSettings

WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"
_CORS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "mcp-protocol-version",
}
"""The documents are public; browser-based clients (the Inspector) fetch them cross-origin."""


def canonical_url(url: str) -> str:
    """A resource identifier in RFC 8707's canonical form: lowercase scheme and host, no trailing slash."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def resource_url(public_url: str, upstream: str) -> str:
    """The endpoint's resource identifier: the audience its tokens must name.

    The name is percent-encoded: a configured name never changes, but the gateway also challenges
    requests to names it does not serve, and those must not put `"` or line breaks in a header.
    """
    return f"{canonical_url(public_url)}/mcp/{quote(upstream, safe='')}"


def metadata_url(resource: str) -> str:
    """Where `resource`'s metadata is: the well-known suffix inserted after the host (RFC 9728 §3.1)."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


def challenge(
    resource: str, scopes: tuple[str, ...], *, error: str | None = None, description: str | None = None
) -> str:
    """A `WWW-Authenticate` value (RFC 6750 §3, RFC 9728 §5.1) naming the endpoint's metadata.

    `description` must hold no `"` or `\\` (callers pass fixed sentences).
    """
    params = [] if error is None else [f'error="{error}"']
    if description is not None:
        params.append(f'error_description="{description}"')
    params.append(f'resource_metadata="{metadata_url(resource)}"')
    if scopes:
        params.append(f'scope="{" ".join(scopes)}"')
    return "Bearer " + ", ".join(params)


def document(resource: str, oauth: OAuthSettings, scopes: tuple[str, ...], name: str) -> dict[str, object]:
    body: dict[str, object] = {
        "resource": resource,
        "authorization_servers": [oauth.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": name,
    }
    if scopes:
        body["scopes_supported"] = list(scopes)
    return body


def documents(oauth: OAuthSettings, public_url: str, upstreams: list[str]) -> dict[str, dict[str, object]]:
    """Metadata documents by the request path they are served at."""
    root = canonical_url(public_url)
    prefix = urlsplit(root).path
    served: dict[str, dict[str, object]] = {
        WELL_KNOWN: document(root, oauth, oauth.required_scopes, "Airlock"),
    }
    for upstream in upstreams:
        body = document(resource_url(public_url, upstream), oauth, oauth.scopes_for(upstream), f"Airlock ({upstream})")
        served[f"{WELL_KNOWN}{prefix}/mcp/{upstream}"] = body
        served[f"{WELL_KNOWN}/mcp/{upstream}"] = body
    if prefix:
        served[f"{WELL_KNOWN}{prefix}"] = served[WELL_KNOWN]
    return served


def routes(oauth: OAuthSettings | None, public_url: str, upstreams: list[str]) -> list[BaseRoute]:
    """The metadata routes, or none without `[oauth]`."""
    if oauth is None:
        return []
    served = documents(oauth, public_url, upstreams)
    return [Route(path, _endpoint(body), methods=["GET", "OPTIONS"]) for path, body in served.items()]


def _endpoint(body: Mapping[str, object]) -> Callable[[Request], Awaitable[Response]]:
    async def metadata(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS)
        return JSONResponse(dict(body), headers={**_CORS, "Cache-Control": "public, max-age=3600"})

    return metadata
