"""`POST /api/policy/explain`: what an upstream's policy would do with a call, for reviewers.

    POST /api/policy/explain  {"upstream": "...", "agent": "...", "tool": "...", "arguments": {...},
                               "fetch": true}

Answers with `explanation_json` (the form `airlock policy explain --json` prints) plus `catalog`:
"known" when the gateway has already seen the upstream's `tools/list`, "fetched" when it was asked
for one now, or why it is unknown. Nothing is forwarded and nothing is counted: it reads the policy
in force (`PolicyReloader.current`) and the tools the gateway knows.

Reviewers authenticate as for `/api/approvals` (`Authorization: Bearer <reviewer token>`); agent
tokens are refused (403), since an explanation shows the policy's rules and an agent could use it
to search for a call that slips through. Thin: parse, authenticate, then `explain.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.auth import WWW_AUTHENTICATE, Credentials, bearer_token
from app.jsonrpc import MessageError, parse_json
from app.policy.explain import ToolFacts, explain, explanation_json
from app.policy.probe import CatalogUnavailable, fetch_tools, tool_facts
from app.policy.reloader import PolicyReloader
from app.upstream import Upstream

MAX_BODY: Final = 1024 * 1024
FETCH_TIMEOUT: Final = 10.0


def routes(credentials: Credentials, policies: PolicyReloader, upstreams: Mapping[str, Upstream]) -> list[BaseRoute]:
    """The route, given who may ask (`credentials`), the policies in force and the upstreams by name."""
    return [Route("/api/policy/explain", PolicyApi(credentials, policies, upstreams).explain, methods=["POST"])]


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class PolicyApi:
    def __init__(self, credentials: Credentials, policies: PolicyReloader, upstreams: Mapping[str, Upstream]) -> None:
        self._credentials = credentials
        self._policies = policies
        self._upstreams = upstreams

    async def _refusal(self, request: Request) -> JSONResponse | None:
        """None for a reviewer; otherwise the 401 or 403 to answer (as `/api/approvals` does)."""
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return _error(401, "send a reviewer token as 'Authorization: Bearer <token>'")
        if await self._credentials.reviewer_for(token) is not None:
            return None
        if await self._credentials.agent_for(token) is not None:
            return _error(403, "agent tokens cannot ask for policy explanations")
        return _error(401, "unknown or disabled reviewer token")

    async def explain(self, request: Request) -> JSONResponse:
        refusal = await self._refusal(request)
        if refusal is not None:
            return refusal
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        name = body["upstream"]
        upstream = self._upstreams.get(name)
        if upstream is None:
            return _error(404, f"no upstream named {name!r}")
        catalog, note = await _catalog(upstream, fetch=body.get("fetch", True) is not False)
        result = explain(
            self._policies.current(name),
            body["tool"],
            body["arguments"],
            body["agent"],
            catalog=catalog,
            strict_arguments=upstream.settings.strict_arguments,
        )
        return JSONResponse({**explanation_json(result, upstream=name), "catalog": note})


async def _catalog(upstream: Any, *, fetch: bool) -> tuple[dict[str, ToolFacts] | None, str]:
    if upstream.catalog.listed:
        return tool_facts(upstream.catalog), "known"
    if not fetch:
        return None, "not fetched (fetch: false)"
    try:
        return tool_facts(await fetch_tools(upstream.settings, timeout=FETCH_TIMEOUT)), "fetched"
    except CatalogUnavailable as exc:
        return None, f"could not be fetched: {exc}"


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _error(413, f"the body must be at most {MAX_BODY} bytes")
    try:
        body = parse_json(raw)
    except MessageError:
        return _error(400, 'the body must be JSON: {"upstream": ..., "agent": ..., "tool": ..., "arguments": {...}}')
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    for key in ("upstream", "agent", "tool"):
        if not isinstance(body.get(key), str) or not body[key]:
            return _error(400, f"{key} must be a non-empty string")
    body.setdefault("arguments", {})
    if not isinstance(body["arguments"], dict):
        return _error(400, "arguments must be a JSON object")
    return body
