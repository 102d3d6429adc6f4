"""`airlock demo`: the demo upstream and Airlock in one process, ready for an agent in a minute.

It reads the configuration like `airlock serve` (./airlock.toml by default, which ships set up
for the demo), starts the Execution Market-like upstream on the port its `[[upstreams]]` URL
names, issues a fresh agent token and a reviewer token, prints how to use them, and writes the
printed agent snippet to `<data_dir>/demo_agent.py` so it can be run as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from app.asgi import create_app
from app.auth import Credentials
from app.config import Settings, load_settings
from app.demo.upstream import DemoMarket, build_app
from app.errors import ConfigError
from app.limits import uvicorn_limits
from app.store.db import Database
from app.store.migrate import upgrade

DEMO_AGENT = "demo-agent"
DEMO_REVIEWER = "demo-reviewer"

SNIPPET = '''\
import asyncio

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL = "{url}"
TOKEN = "{token}"


async def main() -> None:
    headers = {{"Authorization": f"Bearer {{TOKEN}}"}}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(URL, http_client=http)) as client:
            tools = await client.list_tools()
            print("tools:", [tool.name for tool in tools.tools])
            listing = await client.call_tool("em_list_tasks", {{"status": "published"}})
            if not listing.structured_content["tasks"]:
                print("no published task left to cancel; restart the demo")
                return
            task_id = listing.structured_content["tasks"][0]["id"]
            print("first published task:", task_id)
            print("cancelling it: a human must approve (see the other terminal)...")
            result = await client.call_tool("em_cancel_task", {{"task_id": task_id, "reason": "demo"}})
            print("error:" if result.is_error else "result:", result.content[0].text)


asyncio.run(main())
'''


def run_demo(*, config_path: Path | None = None, port: int | None = None) -> None:
    settings = load_settings(config_path)
    if port is not None:
        settings = dataclasses.replace(settings, port=port, public_url=f"http://{settings.host}:{port}")
    upstream = settings.upstreams[0]
    upstream_port = _demo_upstream_port(upstream.url)
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one line for the user
        raise ConfigError(f"cannot prepare the database: {exc}") from None
    agent_token, reviewer_token = asyncio.run(_issue_tokens(settings))
    endpoint = f"{settings.public_url}/mcp/{upstream.name}"
    snippet = SNIPPET.format(url=endpoint, token=agent_token)
    snippet_file = settings.data_dir / "demo_agent.py"
    snippet_file.parent.mkdir(parents=True, exist_ok=True)
    snippet_file.write_text(snippet, encoding="utf-8")
    _check_free(settings.host, settings.port)
    _check_free("127.0.0.1", upstream_port)
    banner = _banner(settings, endpoint, upstream.url, agent_token, reviewer_token, snippet, snippet_file)
    asyncio.run(_serve(settings, upstream_port, banner))


def _demo_upstream_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        raise ConfigError(f"the demo runs its own upstream on loopback; the first upstream's url is {url}")
    return parts.port


def _check_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        # SO_REUSEADDR as uvicorn sets it: connections of a demo just stopped linger in TIME_WAIT
        # and would make a plain bind fail although the server can listen.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigError(f"port {port} on {host} is in use (another demo running?); stop it or pass --port") from None


async def _issue_tokens(settings: Settings) -> tuple[str, str]:
    db = Database(settings.database_url)
    try:
        credentials = Credentials(db, cache_seconds=0)
        agent = await credentials.issue_agent_token(DEMO_AGENT, label="airlock demo")
        reviewer = await credentials.rotate_reviewer_token(DEMO_REVIEWER)
        if reviewer is None:
            reviewer = await credentials.add_reviewer(DEMO_REVIEWER)
        return agent.token, reviewer.token
    finally:
        await db.dispose()


async def _serve(settings: Settings, upstream_port: int, banner: str) -> None:
    upstream_server = _Server(uvicorn.Config(build_app(DemoMarket()), host="127.0.0.1", port=upstream_port,
                                             log_level="warning", lifespan="on", ws="none"))
    airlock_server = _Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                                            log_level="warning", lifespan="on", access_log=False, ws="none",
                                            timeout_graceful_shutdown=3, **uvicorn_limits(settings.server)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(upstream_server.serve()), asyncio.create_task(airlock_server.serve())]
    while not (upstream_server.started and airlock_server.started):
        if any(task.done() for task in tasks):
            await asyncio.gather(*tasks)
            raise ConfigError("the demo could not start (see the log above)")
        await asyncio.sleep(0.05)
    print(banner, flush=True)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in (airlock_server, upstream_server):
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()


class _Server(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the demo: with two servers in one process,
    each would otherwise replace the other's handlers, and Ctrl+C would stop only one of them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _banner(settings: Settings, endpoint: str, upstream_url: str, agent_token: str, reviewer_token: str,
            snippet: str, snippet_file: Path) -> str:
    python = Path(sys.executable)
    airlock = python.with_name("airlock")
    config = "" if settings.config_path == (Path.cwd() / "airlock.toml").resolve() else f" --config {settings.config_path}"
    rule = "-" * 78
    return f"""
{rule}
Airlock demo is running.

  MCP endpoint for agents : {endpoint}
  demo upstream (direct)  : {upstream_url}
  web inbox for reviewers : {settings.public_url}/inbox
  agent token ({DEMO_AGENT}) : {agent_token}
  reviewer token ({DEMO_REVIEWER}): {reviewer_token}
  policy                  : {settings.upstreams[0].policy}  (edit it: changes load without a restart)

Try it: in another terminal run the agent below (also saved as {snippet_file}):

  {python} {snippet_file}

It lists the tools, then tries em_cancel_task, which the policy holds for a human. Approve it from
a third terminal (the id is in the log line "approval needed", or list them first):

  {airlock} approvals list{config}
  {airlock} approvals approve <ID>{config}        # or: reject <ID> --reason "..."

{rule}
{snippet}{rule}
Press Ctrl+C to stop.
"""

