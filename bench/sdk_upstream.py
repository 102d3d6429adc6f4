"""`python -m bench.sdk_upstream --port P`: the official SDK's server, as users deploy it, for the benchmark.

Job: the upstream that "direct", the floor proxy and Airlock are measured against (issue 12). It
is the `mcp` SDK's `MCPServer` with one read-only tool shaped like the demo's `em_get_task` (the
same argument, a result of the same size), served over Streamable HTTP by the SDK's own app under
uvicorn with the SDK's defaults: the stateful session manager, SSE answers to POSTs in the
handshake era, DNS-rebinding protection for a loopback host.

Boundary: no state, no other tools, nothing Airlock-specific but the demo's `Task` model. `GET /healthz` answers 200 so the
harness can tell it has started.

Deliberate departures from `MCPServer.run("streamable-http")`: uvicorn logs at WARNING with no
access log (as every process in the benchmark runs), so a log line per call is not measured as
the upstream's cost; and no `from __future__ import annotations`, because the SDK reads the
tool's annotations at registration.
"""

import argparse
from typing import Annotated, Final

import uvicorn
from mcp.server import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.demo.upstream import Task  # the demo's own model: results of the same size either way

TOOL: Final = "em_get_task"
TASK_ID: Final = "7f1c2a9e-0b5d-4c61-9e2f-5a8d3b6c4e10"
HEALTH_PATH: Final = "/healthz"
MCP_PATH: Final = "/mcp"


def _task(task_id: str) -> Task:
    return Task(
        id=task_id,
        title="Photograph the storefront at 12 Rue de la Paix",
        description="A clear daytime photo of the shop front, showing the opening hours sign.",
        bounty_usd=12.5,
        deadline_hours=48,
        agent_id="bench-agent",
        created_at="2026-11-29T00:00:00+00:00",
    )


def build_server() -> MCPServer:
    """An `MCPServer` with the one allowed tool."""
    server: MCPServer = MCPServer("bench-sdk-upstream", version="2.3", log_level="WARNING")

    @server.tool(
        name=TOOL,
        title="Get Task",
        annotations=ToolAnnotations(
            title="Get Task", read_only_hint=True, destructive_hint=False, idempotent_hint=True
        ),
    )
    async def get_task(task_id: Annotated[str, Field(description="UUID of the task")]) -> Task:
        """Get the details of one task."""
        return _task(task_id)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    # Registered by call, not as a decorator: the SDK leaves `custom_route` untyped.
    server.custom_route(HEALTH_PATH, methods=["GET"])(health)
    return server


def build_app() -> Starlette:
    """The SDK's Streamable HTTP app at `/mcp` (both eras), plus `/healthz`."""
    return build_server().streamable_http_app(streamable_http_path=MCP_PATH)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_upstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
