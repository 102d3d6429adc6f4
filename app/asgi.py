"""`create_app(settings)`: the Starlette application, its routes and its lifespan.

Routes:

- `/mcp/{upstream}`: the MCP endpoint agents use (Streamable HTTP, both protocol eras);
- `/api/approvals…`: the reviewers' JSON API (see `app/approvals/api.py`);
- routes of the extensions (`/slack/interactions`, `/inbox`), see `app/extension.py`;
- `/livez`, `/readyz`: liveness, and readiness with named checks (see `app/health.py`);
- `/metrics`: Prometheus metrics, unless `[metrics] enabled = false` or `listen` moves them to a
  listener of their own (see `app/metrics.py`);
- `/healthz`: liveness plus what this process serves (policy versions), for load balancers and tests;
- `/schemas/policy.json`: the policy document's JSON Schema;
- `/.well-known/oauth-protected-resource…`: OAuth metadata, with `[oauth]` (see `app/oauth/metadata.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app import __version__, access_log, tracing
from app.approvals import api as approvals_api
from app.approvals.channels import ReviewChannel
from app.config import Settings
from app.failclosed import FailClosed
from app.gateway.endpoint import McpEndpoint
from app.health import Health
from app.limits import RequestTimeout
from app.oauth import metadata as resource_metadata
from app.policy import api as policy_api
from app.policy.document import POLICY_SCHEMA
from app.runtime import Runtime
from app.types import ASGIApp, Receive, Scope, Send


def create_app(settings: Settings, *, channels: Sequence[ReviewChannel] = ()) -> McpFirst:
    runtime = Runtime(settings, channels=channels)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with runtime.run():
            yield

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "policies": {name: runtime.policies.current(name).version for name in runtime.upstreams},
            }
        )

    async def policy_schema(_request: Request) -> JSONResponse:
        return JSONResponse(POLICY_SCHEMA, media_type="application/schema+json")

    checks = Health(runtime.db, runtime.policies, {u.name: u.url for u in settings.upstreams})
    routes: list[BaseRoute] = [
        Route("/healthz", health),
        Route("/livez", checks.livez),
        Route("/readyz", checks.readyz),
        Route("/schemas/policy.json", policy_schema),
        *(
            [Route("/metrics", runtime.metrics.route(runtime.db))]
            if runtime.metrics is not None and settings.metrics.listen is None
            else []
        ),
        *approvals_api.routes(
            credentials=runtime.credentials,
            approvals=runtime.approvals,
            public_url=settings.public_url,
            oidc=settings.inbox_oidc,
        ),
        *policy_api.routes(runtime.credentials, runtime.policies, runtime.upstreams),
        *(route for extension in runtime.extensions for route in extension.routes()),
        *resource_metadata.routes(settings.oauth, settings.public_url, [u.name for u in settings.upstreams]),
    ]
    request_timeout = settings.server.request_timeout_seconds
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            *access_log.middleware(settings),
            Middleware(RequestTimeout, seconds=request_timeout),
            Middleware(FailClosed),
        ],
    )
    app.state.runtime = runtime
    app.state.traces = traces = runtime.traces
    endpoint = McpEndpoint(runtime.gateway, runtime.credentials, runtime.upstreams, oauth=runtime.oauth)
    mcp = access_log.wrap(tracing.wrap(RequestTimeout(FailClosed(endpoint), request_timeout), traces), settings)
    return McpFirst(mcp, app)


class McpFirst:
    """Send `/mcp/{upstream}` straight to the MCP endpoint; everything else to the Starlette app.

    The MCP endpoint is on every tool call's path, and Starlette's router and middleware stack
    wrap every `send` of a response three times over (measured: about a tenth of the gateway's
    CPU per call). The endpoint needs none of it: it does its own checks and fails closed itself.
    """

    def __init__(self, mcp: ASGIApp, app: Starlette) -> None:
        self._mcp = mcp
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp/"):
            upstream = scope["path"][len("/mcp/") :]
            if upstream and "/" not in upstream:
                scope["path_params"] = {"upstream": upstream}
                await self._mcp(scope, receive, send)
                return
        await self.app(scope, receive, send)
