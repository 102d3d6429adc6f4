"""IBM ContextForge as the peer gateway: the same demo upstream, reached through ContextForge.

What it sets up, in the order ContextForge's own README does it (PyPI quick start, then "register
a local MCP server"):

1. A virtualenv of its own (`bench/.venv-contextforge`, created and filled from PyPI when missing,
   pinned to `mcp-contextforge-gateway==1.0.7.post20260921` and to the dependency versions it was
   measured with, so two machines run the same code).
2. One ContextForge process: `mcpgateway` (its console script, a thin wrapper over Uvicorn), a
   single Uvicorn worker with uvloop and httptools as Airlock gets, SQLite in `work_dir`, working
   directory `work_dir` (so no stray `.env` is read), output in `log_dir/contextforge.log`.
3. A bearer token made by its own utility, `python -m mcpgateway.utils.create_jwt_token --username
   <platform admin> --exp … --secret $JWT_SECRET_KEY`, signed with the per-run secret the process
   was started with (HS256, with its default audience, issuer, `jti` and environment claims).
4. The upstream registered as a gateway (`POST /v1/gateways`, transport `STREAMABLEHTTP`, the
   default "cache" mode: tools are discovered once and calls go through its tool service), and a
   virtual server holding all of that gateway's tools (`POST /v1/servers`). Clients use the
   virtual server's Streamable HTTP endpoint, `http://127.0.0.1:<port>/servers/<server id>/mcp`.
   ContextForge names federated tools `<gateway slug>-<slugified tool name>`: `em_get_task` is
   `execution-market-em-get-task` there.
5. One smoke `tools/call` through that endpoint, so a broken set-up fails here, with the log.

Protocol eras: ContextForge 1.0.7 speaks up to 2025-11-25 (its `mcp` SDK is 1.x); it has no
2026-07-28 single-request mode, so the target is measured in the "legacy" era only.

Settings that differ from ContextForge's defaults, and why (everything else is left as shipped,
including auth caches, metrics buffering, security headers, compression and correlation IDs):

- `USE_STATEFUL_SESSIONS=true` (default false): the comparison is about stateful Streamable HTTP
  sessions. With it, `initialize` creates an `Mcp-Session-Id` and ContextForge binds one upstream
  session to each downstream session and reuses it for every call (stateless mode would open an
  upstream session per request). It keeps sessions in its in-process event store, which is what
  it uses with a single worker.
- `RATE_LIMITING_ENABLED=false` (default true): its middleware allows 100 requests a minute (plus
  a burst of 20) per IP, user and team on `/servers/*` and `/mcp`, and locks the user out for 15
  minutes after five violations; a throughput benchmark would otherwise measure 429s. Airlock has
  no request-rate limit on this path.
- `SSRF_ALLOW_LOCALHOST=true` (default false): the demo upstream listens on loopback, which its
  SSRF guard refuses by default. The rest of the SSRF protection stays on.
- `CACHE_TYPE=memory` (default `database`): the backend of its session registry and shared
  caches. `database` keeps them in SQLite and `redis` in Redis so that several workers can share
  them; with one worker in-process is correct and the cheapest, so if anything it favours
  ContextForge.
- `ENVIRONMENT=production` (default `development`): its strict start-up checks (strong secrets
  enforced, not merely warned about). On this path it changes only how browser `Origin` headers
  are answered, and the load generator sends none.
- Per-run random `JWT_SECRET_KEY`, `AUTH_ENCRYPTION_SECRET` and platform-admin password (required;
  it refuses to start with placeholders).
- Logging at WARNING (`LOG_LEVEL`, default ERROR; Uvicorn `--log-level warning`) and no access
  log, as Airlock runs. At WARNING it writes two lines per call ("[RBAC] Admin bypass suppressed
  for public-only token", see the token below); ERROR instead made no measurable difference.
- `--timeout-graceful-shutdown 5`, so `Process.stop()` returns promptly with sessions still open.
- Stated explicitly although they are the defaults, so an inherited environment cannot change
  them: auth required for the API and MCP, admin UI and admin API off, JSON (not SSE) responses to
  POSTs, debug, dev mode and reload off.

Left on although they cost per-call work, because a production deployment has them: JWT
verification with user, team and revocation lookups (cached) and RBAC checks (`servers.use`,
`tools.execute`) per request; tool-call metrics (buffered writes to SQLite); response compression
(the load generator, like the SDK clients, sends `Accept-Encoding`, and the ~1 KB result is over
its 500-byte threshold); the legacy-route deprecation headers it stamps on `/servers/<id>/mcp`
responses (that path is its documented MCP endpoint; `/v1/...` has no alias for it); security
headers. Not a setting: its MCP SDK (1.x) validates each upstream result against the tool's
output schema twice, as a client and again as a server, building a fresh validator each time;
in a py-spy profile that was about 40% of its CPU per call (argument validation it turns off).

The token: the README's `--username` token carries no `teams` claim, which ContextForge treats
as public-only: the admin identity gets no admin bypass, so every call goes through the full
permission evaluation an ordinary agent's token would (the bench's tools and server are public).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bench.overhead import Target
from bench.procs import Process, free_port

PACKAGE = "mcp-contextforge-gateway"
VERSION = "1.0.7.post20260921"
VENV = Path(__file__).resolve().parent / ".venv-contextforge"
# `pip freeze` of the venv the figures were taken with; used as constraints on a fresh install.
CONSTRAINTS = """
alembic==1.20.1 annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0 argon2-cffi==25.1.0
argon2-cffi-bindings==26.2.0 attrs==26.1.0 base58==2.1.1 blessed==1.52.0 brotli==1.2.1
certifi==2026.10.18 cffi==2.1.1 charset-normalizer==3.5.2 click==8.5.1 cpex==0.1.3 cryptography==50.0.2
dnspython==2.9.2 editor==2.0.1 email-validator==2.4.0 fastapi==0.165.0 filelock==3.32.7 gunicorn==27.0.1
h11==0.16.0 h2==4.4.1 hpack==4.2.0 httpcore==1.0.9 httptools==0.9.0 httpx==0.28.1 httpx-sse==0.4.3
hyperframe==6.1.0 idna==3.20 inquirer==3.4.1 Jinja2==3.1.6 jinxed==2.1.0 jq==1.13.0 jsonpath-ng==1.16.0
jsonschema==4.26.0 jsonschema-specifications==2025.9.1 Mako==1.4.3 markdown-it-py==4.3.0 MarkupSafe==3.0.4
mcp==1.30.0 mdurl==0.1.2 msgpack==1.2.4 oauthlib==4.0.1 opentelemetry-api==1.45.2 orjson==3.13.0
packaging==26.3 parse==1.22.4 prometheus-fastapi-instrumentator==8.1.0 prometheus_client==0.26.0
psutil==7.2.2 pycparser==3.12 pydantic==2.14.3 pydantic-settings==2.16.3 pydantic_core==2.50.4
PyGithub==2.10.0 Pygments==2.21.0 PyJWT==2.15.1 PyNaCl==1.6.2 python-dotenv==1.2.4
python-json-logger==4.2.0 python-multipart==0.0.34 PyYAML==6.0.3 readchar==4.2.2 redis==8.1.0
referencing==0.37.0 requests==2.34.2 requests-oauthlib==2.0.0 rich==15.0.0 rpds-py==2026.9.1 runs==1.3.0
shellingham==1.5.4 SQLAlchemy==2.1.9 sse-starlette==3.7.0 starlette==1.10.0 starlette-compress==2.0.0
typer==0.29.2 typing-inspection==0.4.5 typing_extensions==4.16.0 urllib3==2.8.0 uvicorn==0.54.0
uvloop==0.23.0 watchfiles==1.3.0 wcwidth==0.9.4 websockets==17.4 xmod==1.10.0 zstandard==0.25.0
"""

GATEWAY_NAME = "execution-market"
ADMIN_EMAIL = "admin@example.com"
TOKEN_MINUTES = 24 * 60
TOOL = "em_get_task"
ARGUMENTS = {"task_id": "7f1c2a9e-0b5d-4c61-9e2f-5a8d3b6c4e10"}  # seeded by the demo upstream
LEGACY = "2025-11-25"
START_TIMEOUT = 180.0  # first start runs its migrations on an empty SQLite file
INSTALL_TIMEOUT = 1800.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)
# `mcpgateway` with the working directory set first (Process has no cwd): it reads `.env` from there.
# Every interpreter of the venv runs isolated (-I): the harness's PYTHONPATH (the repo, with Airlock's
# metadata) and current directory must not reach ContextForge's imports.
_BOOT = (
    "import os, sys; os.chdir(sys.argv[1]); sys.argv = ['mcpgateway', *sys.argv[2:]]; "
    "from mcpgateway.cli import main; main()"
)


async def start_contextforge(
    upstream_url: str, work_dir: Path, log_dir: Path, *, tool: str = TOOL, arguments: dict[str, Any] | None = None
) -> tuple[Process, Target]:
    """Start ContextForge (own venv, own process, SQLite in work_dir), register the upstream at
    `upstream_url`, expose its tools as a virtual server, and return the running process and the
    `Target` for `tool` through it (legacy era only). Raises RuntimeError, with the end of
    ContextForge's log, if anything fails; the process is stopped in that case."""
    arguments = ARGUMENTS if arguments is None else arguments
    work_dir, log_dir = work_dir.resolve(), log_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    python = await asyncio.to_thread(ensure_venv, VENV, log_dir / "contextforge-install.log")
    port = free_port()
    env = environment(work_dir, port)
    process = Process(
        "contextforge",
        [
            str(python),
            "-I",
            "-u",
            "-c",
            _BOOT,
            str(work_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ],
        env=env,
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        await process.start(timeout=START_TIMEOUT)  # its error already carries the end of the log
    except BaseException:
        process.stop()
        raise
    try:
        token = await asyncio.to_thread(issue_token, python, env, work_dir)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, headers={"authorization": f"Bearer {token}"}) as http:
            server_id, tool_name = await register(http, base, upstream_url, tool)
            url = f"{base}/servers/{server_id}/mcp"
            await smoke_call(http, url, tool_name, arguments)
    except Exception as exc:
        process.stop()
        raise RuntimeError(f"ContextForge set-up failed: {exc}\n{log_tail(process)}") from exc
    except BaseException:
        process.stop()
        raise
    return process, Target(
        name="contextforge",
        url=url,
        token=token,
        tool=tool_name,
        arguments=arguments,
        pid=process.pid,
        eras=("legacy",),
    )


def environment(work_dir: Path, port: int) -> dict[str, str]:
    """ContextForge's settings for this run (see the module docstring for each non-default)."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{work_dir / 'contextforge.db'}",
        "ENVIRONMENT": "production",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
        "PLATFORM_ADMIN_EMAIL": ADMIN_EMAIL,
        "PLATFORM_ADMIN_PASSWORD": "Bench-" + secrets.token_urlsafe(24) + "!7",
        "AUTH_REQUIRED": "true",
        "MCP_CLIENT_AUTH_ENABLED": "true",
        "USE_STATEFUL_SESSIONS": "true",
        "JSON_RESPONSE_ENABLED": "true",
        "CACHE_TYPE": "memory",
        "RATE_LIMITING_ENABLED": "false",
        "SSRF_ALLOW_LOCALHOST": "true",
        "LOG_LEVEL": "WARNING",
        "MCPGATEWAY_UI_ENABLED": "false",
        "MCPGATEWAY_ADMIN_API_ENABLED": "false",
        "DEV_MODE": "false",
        "RELOAD": "false",
        "DEBUG": "false",
    }


def issue_token(python: Path, env: dict[str, str], work_dir: Path) -> str:
    """A bearer token from ContextForge's own CLI, as its README makes one."""
    argv = [
        str(python),
        "-I",
        "-m",
        "mcpgateway.utils.create_jwt_token",
        "--username",
        ADMIN_EMAIL,
        "--exp",
        str(TOKEN_MINUTES),
        "--secret",
        env["JWT_SECRET_KEY"],
    ]
    try:
        done = subprocess.run(
            argv, check=False, env={**os.environ, **env}, cwd=work_dir, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError("ContextForge's create_jwt_token did not finish within 60s") from exc
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines or lines[-1].count(".") != 2:
        raise RuntimeError(
            f"ContextForge's create_jwt_token failed (exit {done.returncode}):\n"
            f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    return lines[-1]


async def register(http: aiohttp.ClientSession, base: str, upstream_url: str, tool: str) -> tuple[str, str]:
    """Register the upstream, then a virtual server with its tools; return (server id, tool's name)."""
    gateway = await api(
        http, "POST", f"{base}/v1/gateways", {"name": GATEWAY_NAME, "url": upstream_url, "transport": "STREAMABLEHTTP"}
    )
    tools = await api(http, "GET", f"{base}/v1/tools?gateway_id={gateway['id']}&limit=0")
    tools = tools if isinstance(tools, list) else tools.get("tools", [])
    names = {t.get("originalName"): t["name"] for t in tools}
    if tool not in names:
        raise RuntimeError(
            f"ContextForge discovered no tool {tool!r} on {upstream_url} "
            f"(gateway status {gateway.get('status')!r}, tools: {sorted(map(str, names))})"
        )
    server = await api(
        http,
        "POST",
        f"{base}/v1/servers",
        {
            "server": {
                "name": GATEWAY_NAME,
                "description": "Airlock benchmark: the demo upstream's tools",
                "associated_tools": [t["id"] for t in tools],
            }
        },
    )
    return server["id"], names[tool]


async def api(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body) as response:
        text = await response.text()
    if response.status >= 300:
        raise RuntimeError(f"ContextForge {method} {url} answered {response.status}: {text[:1500]}")
    return json.loads(text)


async def smoke_call(http: aiohttp.ClientSession, url: str, tool: str, arguments: dict[str, Any]) -> None:
    """One handshake-era `tools/call`, as bench.load makes it; raise with the answer if it fails."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "airlock-bench", "version": "1"},
        },
    }
    async with http.post(url, json=initialize, headers=headers) as response:
        text = await response.text()
        session = response.headers.get("mcp-session-id")
    if response.status != 200 or not session:
        raise RuntimeError(
            f"ContextForge initialize at {url} answered {response.status} (session id {session!r}): {text[:1500]}"
        )
    headers.update({"mcp-session-id": session, "mcp-protocol-version": LEGACY})
    async with http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    ) as response:
        await response.read()
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    async with http.post(url, json=call, headers=headers) as response:
        text = await response.text()
    async with http.delete(url, headers=headers) as closed:
        await closed.read()
    if response.status != 200 or '"result"' not in text or '"isError":true' in text.replace(" ", ""):
        raise RuntimeError(f"ContextForge tools/call {tool} answered {response.status}: {text[:1500]}")


def ensure_venv(venv: Path = VENV, log: Path | None = None) -> Path:
    """The venv's python, after creating the venv and installing ContextForge if needed."""
    python = venv / "bin" / "python"
    if installed_version(python) == VERSION:
        return python
    log = log or Path(tempfile.gettempdir()) / "contextforge-install.log"
    print(f"installing {PACKAGE}=={VERSION} into {venv} (log: {log}) …", file=sys.stderr, flush=True)
    if not python.exists() or installed_version(python, module="pip") is None:
        _run([base_python(), "-I", "-m", "venv", "--clear", str(venv)], log)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="contextforge-constraints-") as constraints:
        constraints.write("\n".join(CONSTRAINTS.split()) + "\n")
        constraints.flush()
        pip = [str(python), "-I", "-m", "pip", "install", "--disable-pip-version-check", f"{PACKAGE}=={VERSION}"]
        try:
            _run([*pip, "--constraint", constraints.name], log)
        except RuntimeError:
            print(
                "pinned install failed; retrying without the dependency pins (figures may differ)",
                file=sys.stderr,
                flush=True,
            )
            _run(pip, log)
    if (found := installed_version(python)) != VERSION:
        raise RuntimeError(
            f"{PACKAGE}=={VERSION} is not importable from {python} after install (found {found!r}); see {log}"
        )
    return python


def installed_version(python: Path, module: str = "mcpgateway") -> str | None:
    """The installed ContextForge version (or, for module="pip", pip's), None when unavailable."""
    if not python.exists():
        return None
    dist = PACKAGE if module == "mcpgateway" else module
    code = f"import importlib.metadata as m, {module}; print(m.version({dist!r}))"
    try:
        done = subprocess.run([str(python), "-I", "-c", code], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def base_python() -> str:
    """An interpreter to build the venv with: python3.11 if on PATH, else this one (3.11+ too)."""
    return shutil.which("python3.11") or sys.executable


def _run(argv: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            code = subprocess.run(
                argv, check=False, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[0]} {' '.join(argv[1:3])} … failed ({'timeout' if code is None else code}):\n{tail}")


def log_tail(process: Process, chars: int = 3000) -> str:
    try:
        return f"--- last of {process.log} ---\n{process.log.read_text(errors='replace')[-chars:]}"
    except OSError:
        return f"(no log at {process.log})"
