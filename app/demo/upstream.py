"""The demo upstream: an in-memory imitation of Execution Market's MCP server.

Job: give Airlock something realistic to guard. Agents publish paid tasks for humans
(`em_publish_task`), follow them through `accepted` and `submitted`, rate the worker, and may
cancel a task for good (`em_cancel_task`, the destructive one). The server is the official SDK's
`MCPServer` served over Streamable HTTP at `/mcp`, so it speaks both protocol eras the way any
SDK-built upstream does. `GET /_demo/state` exposes what actually ran, for tests that run this
server in another process.

Boundary: no persistence, no payments, no authentication. The `agent_id` argument mirrors the
real tool's and is only recorded: Airlock takes the agent's identity from its bearer token and
never trusts an argument for it. This module knows nothing about Airlock.

What tests rely on (`DemoMarket`):
- `calls[tool]` counts executions. A call is counted when the tool body is entered, before the
  optional `delay`, including calls that end in a tool error. Calls the SDK rejects before the
  body runs (unknown tool, arguments that fail the input schema) are not counted: they never ran.
- `log` holds `(tool, arguments)` in execution order, with the arguments exactly as they
  arrived in `tools/call` (defaults not filled in).

How the eras differ, as the SDK (`mcp` 2.3) does it:
- Progress (`em_publish_task`) is sent only when the call carried a progress token; it rides
  the call's own SSE response stream in both eras.
- The one log message (`em_publish_task`) is always sent in the handshake era. In 2026-07-28 the
  SDK sends it only when the request opted in with `_meta` `io.modelcontextprotocol/logLevel`
  (the SDK `Client(log_level="info")` does that).
- Elicitation (`em_rate_worker`) uses the SDK's `Resolve`/`Elicit` resolver, which picks the
  transport per era. Handshake era: a server-to-client `elicitation/create` request on the call's
  SSE stream; the client answers with a separate POST. 2026-07-28: the first `tools/call` returns
  `InputRequiredResult` (`resultType: "input_required"`) *without running the tool body*, and the
  client repeats the call with `inputResponses` and the echoed `requestState`; the body runs on
  that second request. So one logical rating is two `tools/call` requests on the wire there, and
  `calls["em_rate_worker"]` still goes up by one. The `requestState` is sealed with a key the SDK
  generates at start-up, so it must go back untouched to the same running upstream. A client that
  did not declare form elicitation gets JSON-RPC error -32021 (HTTP 400 in 2026-07-28) and the
  tool body never runs.

Deliberate departures:
- Tool annotations are the marketplace's, not the in-memory toy's: `open_world_hint=True`
  everywhere, because the real tools reach human workers and an escrow, and a gateway policy
  should see what it would see in production. `idempotent_hint` follows the spec's definition
  (a repeat with the same arguments changes nothing more): true for the status transitions,
  whose repeat is refused, false for publishing and rating.
- Logging is deprecated as of 2026-07-28 (SEP-2577) and the SDK warns on every `ctx.info`; the
  demo keeps it because relaying log notifications is behaviour the gateway must have, and it
  silences that one warning at the call (see `_log_info`).
- This module has no `from __future__ import annotations`: the SDK resolves the
  `Resolve(...)` marker from the tool's annotations, and the resolver is a closure over the
  market, which a string annotation could not name.
"""

import argparse
import uuid
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import AcceptedElicitation, Context, DeclinedElicitation, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

SERVER_NAME: Final = "execution-market-demo"
MCP_PATH: Final = "/mcp"
STATE_PATH: Final = "/_demo/state"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9100

LOOPBACK_HOSTS: Final[tuple[str, ...]] = ("127.0.0.1:*", "localhost:*", "[::1]:*")
"""`Host` values accepted by the SDK's DNS-rebinding check (the SDK's own loopback default)."""

LOOPBACK_ORIGINS: Final[tuple[str, ...]] = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")

TaskStatus = Literal["published", "accepted", "submitted", "completed", "cancelled"]
CANCELLABLE: Final[frozenset[str]] = frozenset({"published", "accepted"})


class Task(BaseModel):
    """One task on the market, as the tools return it."""

    id: str
    title: str
    description: str
    bounty_usd: float
    deadline_hours: int
    status: TaskStatus = "published"
    agent_id: str | None = None
    worker_id: str | None = None
    submission: str | None = None
    rating: int | None = None
    rating_comment: str | None = None
    cancel_reason: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class TaskList(BaseModel):
    """The result of `em_list_tasks`."""

    tasks: list[Task]
    count: int


class WorkerRating(BaseModel):
    """Your rating of the worker's submitted work."""

    # The docstring is user-facing: the handshake-era elicitation form carries it as its description.

    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")
    comment: str | None = Field(default=None, description="Optional feedback for the worker")


class RatingOutcome(BaseModel):
    """The result of `em_rate_worker`: what the user answered, and the task afterwards."""

    action: Literal["accept", "decline", "cancel"]
    task: Task


@dataclass
class DemoMarket:
    """The market's in-memory state, shared by the tools and inspected by tests.

    Args:
        delay: Seconds every tool call waits after it is counted, to imitate a slow upstream.
        examples: Seed two example tasks so `em_list_tasks` shows something in the demo.

    Raises:
        ValueError: If `delay` is negative.
    """

    delay: float = 0.0
    examples: InitVar[bool] = True
    tasks: dict[str, Task] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self, examples: bool) -> None:
        if self.delay < 0:
            raise ValueError("delay must be zero or a positive number of seconds")
        if examples:
            for task in _example_tasks():
                self.tasks[task.id] = task

    def record(self, tool: str, arguments: dict[str, Any]) -> None:
        """Note that `tool` ran with `arguments`."""
        self.calls[tool] += 1
        self.log.append((tool, arguments))

    def get(self, task_id: str) -> Task:
        """The task with this id.

        Raises:
            ToolError: If there is no such task (the caller sees `isError`).
        """
        task = self.tasks.get(task_id)
        if task is None:
            raise ToolError(f"Task {task_id!r} not found")
        return task

    def snapshot(self) -> dict[str, Any]:
        """The JSON body of `GET /_demo/state`."""
        return {
            "calls": dict(self.calls),
            "log": [[tool, arguments] for tool, arguments in self.log],
            "tasks": [task.model_dump(mode="json") for task in self.tasks.values()],
        }


def _example_tasks() -> list[Task]:
    return [
        Task(
            id="7f1c2a9e-0b5d-4c61-9e2f-5a8d3b6c4e10",
            title="Check whether the corner bakery on Calle 10 is open",
            description="Walk by, take a photo of the door and the opening-hours sign.",
            bounty_usd=3.5,
            deadline_hours=6,
            agent_id="demo-agent",
        ),
        Task(
            id="c3e8b5d2-6a4f-4f07-8b1e-2d9c7a5e3f21",
            title="Scan pages 12-15 of 'Cien años de soledad' (first edition)",
            description="Library copy is fine. Upload four legible photos, one per page.",
            bounty_usd=8.0,
            deadline_hours=48,
            agent_id="demo-agent",
        ),
    ]


def _annotations(title: str, *, read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


def _wire_arguments(ctx: Context) -> dict[str, Any]:
    """The `arguments` of this `tools/call`, as the client sent them."""
    params = ctx.request_context.params or {}
    return dict(params.get("arguments") or {})


async def _enter(market: DemoMarket, tool: str, ctx: Context) -> None:
    """Count the call, then imitate a slow upstream if asked to."""
    market.record(tool, _wire_arguments(ctx))
    if market.delay:
        await anyio.sleep(market.delay)


async def _log_info(ctx: Context, message: str) -> None:
    """Send one `notifications/message` at level info through the SDK's own path.

    The SDK marks logging deprecated (SEP-2577) and warns on every call, which would turn into a
    tool error wherever warnings are errors (our test suite). The warnings are all raised
    synchronously before the first suspension point, so the filter is in force for them; a
    concurrent call that exits its own `catch_warnings` first can at worst leave this ignore
    filter installed, which only silences this same warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await ctx.info(message)


def _add_publish_task(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_publish_task",
        title="Publish Task",
        annotations=_annotations("Publish Task", read_only=False, destructive=False, idempotent=False),
    )
    async def publish(
        title: Annotated[str, Field(min_length=1, description="Short task name shown to workers")],
        description: Annotated[str, Field(description="What the worker must do and what evidence to submit")],
        bounty_usd: Annotated[float, Field(gt=0, description="Reward in USD, held in escrow until approval")],
        ctx: Context,
        deadline_hours: Annotated[int, Field(ge=1, le=720, description="Hours until the task expires")] = 24,
        agent_id: Annotated[str | None, Field(description="Your agent ID (recorded only)")] = None,
    ) -> Task:
        """Publish a new task for human execution, with a bounty in USD.

        Returns the task, status 'published'. Reports progress when asked to.
        """
        await _enter(market, "em_publish_task", ctx)
        await ctx.report_progress(1, 3, "validating")
        task = Task(
            id=str(uuid.uuid4()),
            title=title,
            description=description,
            bounty_usd=bounty_usd,
            deadline_hours=deadline_hours,
            agent_id=agent_id,
        )
        await ctx.report_progress(2, 3, "publishing")
        market.tasks[task.id] = task
        await _log_info(ctx, f"Published task {task.id} with a ${bounty_usd:.2f} bounty")
        await ctx.report_progress(3, 3, "published")
        return task


def _add_list_tasks(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_list_tasks",
        title="List Tasks",
        annotations=_annotations("List Tasks", read_only=True, destructive=False, idempotent=True),
    )
    async def list_tasks(
        ctx: Context,
        status: Annotated[TaskStatus | None, Field(description="Only tasks in this status")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many tasks")] = 20,
    ) -> TaskList:
        """List tasks on the market, oldest first, optionally filtered by status."""
        await _enter(market, "em_list_tasks", ctx)
        tasks = [task for task in market.tasks.values() if status is None or task.status == status][:limit]
        return TaskList(tasks=tasks, count=len(tasks))


def _add_get_task(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_get_task",
        title="Get Task",
        annotations=_annotations("Get Task", read_only=True, destructive=False, idempotent=True),
    )
    async def get_task(task_id: Annotated[str, Field(description="UUID of the task")], ctx: Context) -> Task:
        """Get the details of one task. An unknown id is an error."""
        await _enter(market, "em_get_task", ctx)
        return market.get(task_id)


def _add_accept_task(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_accept_task",
        title="Accept Task",
        annotations=_annotations("Accept Task", read_only=False, destructive=False, idempotent=True),
    )
    async def accept_task(
        task_id: Annotated[str, Field(description="UUID of a task in 'published' status")],
        ctx: Context,
        worker_id: Annotated[str, Field(description="The worker taking the task")] = "worker-1",
    ) -> Task:
        """Accept a published task on behalf of a worker (published -> accepted)."""
        await _enter(market, "em_accept_task", ctx)
        task = market.get(task_id)
        _require_status(task, "published")
        task.status, task.worker_id = "accepted", worker_id
        return task


def _add_submit_work(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_submit_work",
        title="Submit Work",
        annotations=_annotations("Submit Work", read_only=False, destructive=False, idempotent=True),
    )
    async def submit_work(
        task_id: Annotated[str, Field(description="UUID of a task in 'accepted' status")],
        submission: Annotated[str, Field(description="The evidence: text, links to photos, notes")],
        ctx: Context,
    ) -> Task:
        """Submit the worker's evidence for an accepted task (accepted -> submitted)."""
        await _enter(market, "em_submit_work", ctx)
        task = market.get(task_id)
        _require_status(task, "accepted")
        task.status, task.submission = "submitted", submission
        return task


def _add_rate_worker(server: MCPServer, market: DemoMarket) -> None:
    async def ask_for_rating(task_id: str) -> Elicit[WorkerRating] | None:
        # Asking about a task that cannot be rated would be noise: the tool body refuses it.
        task = market.tasks.get(task_id)
        if task is None or task.status != "submitted":
            return None
        return Elicit(f"Rate {task.worker_id}'s work on {task.title!r} (1-5).", WorkerRating)

    @server.tool(
        name="em_rate_worker",
        title="Rate Worker",
        annotations=_annotations("Rate Worker", read_only=False, destructive=False, idempotent=False),
    )
    async def rate_worker(
        task_id: Annotated[str, Field(description="UUID of a task in 'submitted' status")],
        ctx: Context,
        answer: Annotated[ElicitationResult[WorkerRating], Resolve(ask_for_rating)],
    ) -> RatingOutcome:
        """Ask your user to rate the worker of a submitted task (1-5), then record it.

        Accepting completes the task (submitted -> completed); declining changes nothing.
        """
        await _enter(market, "em_rate_worker", ctx)
        task = market.get(task_id)
        _require_status(task, "submitted")
        if isinstance(answer, AcceptedElicitation):
            # None when the task was not ratable while the question was being decided.
            if answer.data is None:
                raise ToolError(f"Task {task_id!r} was not awaiting a rating")
            task.status, task.rating, task.rating_comment = "completed", answer.data.rating, answer.data.comment
            return RatingOutcome(action="accept", task=task)
        return RatingOutcome(action="decline" if isinstance(answer, DeclinedElicitation) else "cancel", task=task)


def _add_cancel_task(server: MCPServer, market: DemoMarket) -> None:
    @server.tool(
        name="em_cancel_task",
        title="Cancel Published Task",
        annotations=_annotations("Cancel Published Task", read_only=False, destructive=True, idempotent=True),
    )
    async def cancel_task(
        task_id: Annotated[str, Field(description="UUID of the task to cancel")],
        reason: Annotated[str, Field(description="Reason for cancellation")],
        ctx: Context,
        agent_id: Annotated[str | None, Field(description="Your agent ID (for authorization)")] = None,
    ) -> Task:
        """Cancel a task you published (only if still in 'published' or 'accepted' status).

        Use this if you no longer need the task completed. Cancellation is permanent: the task
        cannot be reopened, the escrowed bounty is refunded and an assigned worker loses it.
        """
        await _enter(market, "em_cancel_task", ctx)
        task = market.get(task_id)
        if task.status not in CANCELLABLE:
            raise ToolError(f"Task {task_id!r} is {task.status}; only published or accepted tasks can be cancelled")
        task.status, task.cancel_reason = "cancelled", reason
        return task


def _require_status(task: Task, expected: TaskStatus) -> None:
    if task.status != expected:
        raise ToolError(f"Task {task.id!r} is {task.status}, not {expected}")


def build_server(market: DemoMarket) -> MCPServer:
    """The MCP server "execution-market-demo", its tools acting on `market`."""
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="Execution Market (demo)",
        instructions="Publish paid tasks for humans, follow them, rate workers, cancel what you no longer need.",
        version="0.1.0",
    )
    for add in (
        _add_publish_task,
        _add_list_tasks,
        _add_get_task,
        _add_accept_task,
        _add_submit_work,
        _add_rate_worker,
        _add_cancel_task,
    ):
        add(server, market)
    return server


def build_app(market: DemoMarket, *, allowed_hosts: Sequence[str] = LOOPBACK_HOSTS) -> Starlette:
    """The ASGI app: the MCP endpoint at `/mcp` (both eras) and `GET /_demo/state`.

    The handshake era uses the SDK's stateful session manager (SSE responses, `Mcp-Session-Id`,
    no event store). The app's lifespan runs that manager, so serve it with lifespan on; the
    manager runs once, so build a new app for every server.

    Args:
        market: The state the tools act on.
        allowed_hosts: `Host` header values the SDK's DNS-rebinding check lets through
            (`name:*` matches any port). The default accepts loopback names only.
    """
    server = build_server(market)

    async def state(_: Request) -> JSONResponse:
        return JSONResponse(market.snapshot())

    # Registered by call, not as a decorator: the SDK leaves `custom_route` untyped.
    server.custom_route(STATE_PATH, methods=["GET"])(state)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(allowed_hosts),
        allowed_origins=list(LOOPBACK_ORIGINS),
    )
    return server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.demo.upstream",
        description=(
            "Serve the demo Execution Market MCP server (in memory) for Airlock. "
            f"MCP endpoint: http://HOST:PORT{MCP_PATH}; what ran: GET http://HOST:PORT{STATE_PATH}."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds every tool call waits, to imitate a slow upstream"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host header name, any port (repeatable; loopback names are always accepted)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """`python -m app.demo.upstream [--host H] [--port P] [--delay S] [--allow-host NAME]`."""
    args = _parse_args(argv)
    allowed = [*LOOPBACK_HOSTS, *(f"{name}:*" for name in args.allow_host)]
    app = build_app(DemoMarket(delay=args.delay), allowed_hosts=allowed)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
