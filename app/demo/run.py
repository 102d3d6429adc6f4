"""`airlock demo`: the demo upstream and Airlock in one process, ready for an agent in a minute.

It reads the configuration like `airlock serve` (./airlock.toml by default, which ships set up
for the demo), starts the Execution Market-like upstream on the port its `[[upstreams]]` URL
names (or `--upstream-port`), issues a fresh agent token and a reviewer token, prints how to use
them, and writes the demo agent (`app/demo/agent.py` with this demo's URL and token) to
`<data_dir>/demo_agent.py` so it can be run as is.

Everything that could stop the demo is checked before anything changes: the data directory's
demo lock (a demo already running there, on any ports) and both ports. A second `airlock demo`
therefore says where the first one runs and leaves its tokens and files alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import socket
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import uvicorn

from app.asgi import create_app
from app.auth import Credentials
from app.config import Settings, load_settings
from app.demo.fake_slack import BOT_TOKEN, FakeSlack, Workspace
from app.demo.fake_socket_mode import APP_TOKEN
from app.demo.lock import DemoAddress, demo_lock
from app.demo.upstream import DemoMarket, build_app
from app.errors import ConfigError
from app.limits import uvicorn_limits
from app.store.db import Database
from app.store.migrate import upgrade

FakeSlackMode = Literal["http", "socket"]
"""How the fake Slack's clicks reach Airlock: signed HTTP to /slack/interactions, or Socket Mode."""
DEMO_AGENT = "demo-agent"
DEMO_REVIEWER = "demo-reviewer"
AGENT_PLACEHOLDERS = ('URL = "http://127.0.0.1:8080/mcp/execution-market"', 'TOKEN = "alk_agent_..."')


def run_demo(
    *,
    config_path: Path | None = None,
    port: int | None = None,
    upstream_port: int | None = None,
    fake_slack: FakeSlackMode | None = None,
) -> None:
    """Run the demo until SIGINT/SIGTERM; with `fake_slack`, approvals also go to a local fake Slack
    whose clicks reach Airlock over signed HTTP (`"http"`) or Socket Mode (`"socket"`).

    Raises:
        ConfigError: The configuration is unusable, a demo already runs on this data directory
            (`DemoAlreadyRunning`), or a port is taken; nothing was changed then.
    """
    settings = _with_ports(load_settings(config_path), port, upstream_port)
    upstream = settings.upstreams[0]
    upstream_port = _demo_upstream_port(upstream.url)
    with demo_lock(settings.data_dir, DemoAddress(airlock=settings.public_url, upstream=upstream.url)):
        _check_free(settings.host, settings.port, "127.0.0.1", upstream_port)
        slack = None
        if fake_slack is not None:
            settings, slack = _with_fake_slack(settings, socket=fake_slack == "socket")
        try:
            upgrade(settings.database_url)
        except Exception as exc:
            raise ConfigError(f"cannot prepare the database: {exc}") from None
        agent_token, reviewer_token = asyncio.run(_issue_tokens(settings))
        endpoint = f"{settings.public_url}/mcp/{upstream.name}"
        script = agent_script(endpoint, agent_token)
        script_file = settings.data_dir / "demo_agent.py"
        script_file.write_text(script, encoding="utf-8")
        banner = _banner(settings, endpoint, upstream.url, agent_token, reviewer_token, script_file, slack)
        asyncio.run(_serve(settings, upstream_port, banner, slack))


def agent_script(endpoint: str, token: str) -> str:
    """The demo agent's source (`app/demo/agent.py`) set up for this endpoint and agent token."""
    source = (resources.files("app.demo") / "agent.py").read_text(encoding="utf-8")
    url_line, token_line = AGENT_PLACEHOLDERS
    return source.replace(url_line, f"URL = {json.dumps(endpoint)}", 1).replace(
        token_line, f"TOKEN = {json.dumps(token)}", 1
    )


def _with_ports(settings: Settings, port: int | None, upstream_port: int | None) -> Settings:
    if port is not None:
        settings = dataclasses.replace(settings, port=port, public_url=f"http://{settings.host}:{port}")
    if upstream_port is not None:
        first, *others = settings.upstreams
        url = urlsplit(first.url)
        moved = url._replace(netloc=f"{url.hostname}:{upstream_port}").geturl()
        settings = dataclasses.replace(settings, upstreams=(dataclasses.replace(first, url=moved), *others))
    if settings.port == _demo_upstream_port(settings.upstreams[0].url):
        raise ConfigError(
            f"Airlock and the demo upstream cannot share port {settings.port}; pass --port or --upstream-port"
        )
    return settings


def _with_fake_slack(settings: Settings, *, socket: bool) -> tuple[Settings, FakeSlack]:
    """Settings that send approvals to a fake Slack on a free loopback port, whose user is the demo reviewer."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    workspace = Workspace(airlock_url=f"http://{host}:{settings.port}", socket=socket)
    fake = FakeSlack(workspace)
    fake.bind()
    slack = dataclasses.replace(
        settings.slack,
        bot_token=BOT_TOKEN,
        signing_secret=None if socket else workspace.signing_secret,
        mode="socket" if socket else "http",
        app_token=APP_TOKEN if socket else None,
        app_id=workspace.app_id,
        team_ids=(workspace.team_id,),
        default_channel=workspace.channel,
        api_url=fake.api_url,
        reviewer_users={workspace.user: DEMO_REVIEWER},
    )
    return dataclasses.replace(settings, slack=slack), fake


def _demo_upstream_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        raise ConfigError(f"the demo runs its own upstream on loopback; the first upstream's url is {url}")
    return parts.port


def _check_free(host: str, port: int, upstream_host: str, upstream_port: int) -> None:
    """Raise one sentence naming every taken port and the option that moves it."""
    taken = [f"{port} on {host} (Airlock; move it with --port N)"] if not _free(host, port) else []
    if not _free(upstream_host, upstream_port):
        taken.append(f"{upstream_port} on {upstream_host} (the demo upstream; move it with --upstream-port N)")
    if taken:
        raise ConfigError(f"in use by another program: port {'; port '.join(taken)}")


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # SO_REUSEADDR as uvicorn sets it: connections of a demo just stopped linger in TIME_WAIT
        # and would make a plain bind fail although the server can listen.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


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


async def _serve(settings: Settings, upstream_port: int, banner: str, slack: FakeSlack | None) -> None:
    async with slack.serving() if slack else contextlib.nullcontext():
        await _serve_demo(settings, upstream_port, banner)


async def _serve_demo(settings: Settings, upstream_port: int, banner: str) -> None:
    upstream_server = _Server(
        uvicorn.Config(
            build_app(DemoMarket()), host="127.0.0.1", port=upstream_port, log_level="warning", lifespan="on", ws="none"
        )
    )
    airlock_server = _Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            ws="none",
            **{**uvicorn_limits(settings.server), "timeout_graceful_shutdown": 3},
        )
    )
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


def _banner(
    settings: Settings,
    endpoint: str,
    upstream_url: str,
    agent_token: str,
    reviewer_token: str,
    script_file: Path,
    slack: FakeSlack | None,
) -> str:
    python = Path(sys.executable)
    airlock = python.with_name("airlock")
    config = (
        "" if settings.config_path == (Path.cwd() / "airlock.toml").resolve() else f" --config {settings.config_path}"
    )
    hold = settings.approvals.agent_hold_seconds.get(DEMO_AGENT, settings.approvals.hold_seconds)
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

Try it: in another terminal run the demo agent (a short script; read it):

  {python} {script_file}

It lists the tools, then cancels a task with em_cancel_task, which the policy holds for a human.
Airlock answers "pending" after {hold:g} s; the agent prints the approval and calls again with the
same arguments until someone decides, however long that takes. Decide in the web inbox (sign in
as {DEMO_REVIEWER} with the reviewer token) or from a third terminal:

  {airlock} approvals list{config}
  {airlock} approvals approve <ID>{config}        # or: reject <ID> --reason "..."
{_slack_lines(slack, python)}
{rule}
Press Ctrl+C to stop.
"""


def _slack_lines(slack: FakeSlack | None, python: Path) -> str:
    if slack is None:
        return ""
    assert slack.workspace is not None
    over = "over Socket Mode, the WebSocket Airlock opened" if slack.workspace.socket else "signed, over HTTP"
    return f"""
or in the fake Slack: open {slack.url}/ (the #approvals channel, with the buttons; clicks go {over}), or run

  {python} -m app.demo.fake_slack click <ID> approve --slack {slack.url}   # or: reject <ID> --reason "..."
"""
