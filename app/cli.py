"""The `airlock` command: serve, migrate, demo, tokens, reviewers, policy check, approvals, audit.

Every command takes `--config PATH` (default `./airlock.toml`, or `$AIRLOCK_CONFIG`). Problems the
user can fix (a bad config, an invalid policy, an unknown approval) print one clear line to stderr
and exit with status 2; nothing prints a traceback for them. That includes a taken port and a
database the command cannot use (read-only, unreachable, missing tables: `_database_error`).
Commands that touch the database bring its schema up to date first, so they work on a fresh
install. Times print in UTC marked `Z` (`_when`); logging is set up once, in the group, with
libraries at WARNING unless `--verbose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import click
from dotenv import load_dotenv

from app import __version__
from app.approvals.model import Status
from app.errors import AirlockError, ConfigError, PolicyError

if TYPE_CHECKING:
    from app.approvals.grants import Grant, GrantRequest
    from app.approvals.model import Approval
    from app.approvals.service import ApprovalDesk
    from app.auth import Credentials, IssuedToken
    from app.config import Settings, UpstreamSettings
    from app.demo.run import FakeSlackMode
    from app.runtime import Core
    from app.store.audit import AuditRow
    from app.store.db import Database
    from app.store.tokens import AgentTokenRow, ReviewerRow

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="AIRLOCK_CONFIG",
    help="Configuration file (default: ./airlock.toml).",
)


def _fail(message: str) -> NoReturn:
    click.echo(f"airlock: {message}", err=True)
    sys.exit(2)


def _friendly(function: Callable[..., T]) -> Callable[..., T]:
    """Turn the errors a user can fix into one line on stderr and exit status 2."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except PolicyError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        except (ConfigError, AirlockError) as exc:
            _fail(str(exc))
            raise AssertionError("unreachable") from None

    return wrapper


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


LOG_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_TIME_FORMAT: Final = "%H:%M:%SZ"


def configure_logging(*, verbose: bool = False) -> None:
    """Airlock's own log lines at INFO; libraries' (Alembic, httpx…) at WARNING, INFO with --verbose.

    Once per process, times in UTC like every time the CLI prints. A host that configured logging
    before (a program embedding Airlock, pytest) keeps its own configuration.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    formatter = logging.Formatter(LOG_FORMAT, LOG_TIME_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("airlock").setLevel(logging.DEBUG if verbose else logging.INFO)


class _CommaChoice(click.Choice[str]):
    """A comma-separated list of choices (`pending,approved`), each checked: `bogus` is a usage error."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return ",".join(
            str(super(_CommaChoice, self).convert(part, param, ctx)) for part in str(value).split(",") if part
        )


STATUS_CHOICE: Final = _CommaChoice(["all", *(status.value for status in Status)])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="airlock")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also show the libraries' informational log lines (Alembic, httpx…) and Airlock's debug lines.",
)
def main(verbose: bool) -> None:
    """Airlock: an MCP gateway that checks every tool call against a policy and holds the
    destructive ones for a human's approval.

    Start with `airlock demo`, or write an airlock.toml (see airlock.example.toml) and run
    `airlock serve`.
    """
    load_dotenv(Path.cwd() / ".env", override=False)
    configure_logging(verbose=verbose)


def _settings(config_path: Path | None, *, require_upstreams: bool = True) -> Settings:
    from app.config import load_settings

    return load_settings(config_path, require_upstreams=require_upstreams)


def _migrate(settings: Settings) -> None:
    from app.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        raise ConfigError(
            f"cannot migrate the database at {_safe_url(settings.database_url)}: {_database_problem(exc)}"
        ) from None


def _safe_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}://{rest}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- serve / migrate


@main.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Address to listen on (default from the config: 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on (default from the config: 8080)."
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Level of Airlock's own log lines and uvicorn's (default: info).",
)
@_friendly
def serve(config_path: Path | None, host: str | None, port: int | None, log_level: str | None) -> None:
    """Run the gateway (applies pending database migrations first).

    Refuses in one line, before migrating anything, when the address is taken.
    """
    import dataclasses

    import uvicorn

    from app import logs
    from app.asgi import create_app
    from app.drain import DrainingServer
    from app.limits import uvicorn_limits

    if log_level is not None:
        logging.getLogger("airlock").setLevel(log_level.upper())
    settings = _settings(config_path)
    logs.apply(settings.logging.format)
    if host is not None or port is not None:
        settings = dataclasses.replace(
            settings, host=host or settings.host, port=settings.port if port is None else port
        )
    metrics_listen = settings.metrics.listen if settings.metrics.enabled else None
    with (
        _listening_socket(settings.host, settings.port) as listener,
        _listening_socket(*metrics_listen) if metrics_listen else contextlib.nullcontext() as metrics_listener,
    ):
        _migrate(settings)
        app = create_app(settings)
        app.state.runtime.metrics_socket = metrics_listener
        logging.getLogger("airlock").info(
            "Airlock %s listening on http://%s:%d (MCP at /mcp/{upstream})",
            __version__,
            settings.host,
            listener.getsockname()[1],
        )
        if metrics_listener is not None:
            metrics_host, metrics_port = metrics_listener.getsockname()[:2]
            logging.getLogger("airlock").info("metrics at http://%s:%d/metrics", metrics_host, metrics_port)
        # uvicorn's own lifecycle lines (started, shutdown complete) stay at INFO: an operator reads
        # a graceful stop from them, and tests/test_packaging.py does too.
        config = uvicorn.Config(
            app,
            log_level=log_level or "info",
            access_log=False,
            lifespan="on",
            ws="none",
            **uvicorn_limits(settings.server),
            **logs.uvicorn_options(settings.logging.format),
        )
        server = DrainingServer(config, app.state.runtime.drain)
        server.run(sockets=[listener])
    if not server.started:
        sys.exit(3)  # as `uvicorn.run` does: the application failed to start; its error is logged above


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound here so that a taken port is one line before anything starts.

    uvicorn then serves on this very socket (`Server.run(sockets=...)`), so there is no window
    between the check and the listening in which another process could take the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use; stop what listens there, or choose another "
                "port with --port (or port in the config)"
            ) from None
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    listener.set_inheritable(True)
    return listener


@main.command()
@CONFIG_OPTION
@_friendly
def migrate(config_path: Path | None) -> None:
    """Bring the database schema up to date."""
    settings = _settings(config_path, require_upstreams=False)
    _migrate(settings)
    click.echo(f"database at {_safe_url(settings.database_url)} is up to date")


# --------------------------------------------------------------------------- demo


@main.command()
@CONFIG_OPTION
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port for Airlock (default from the config: 8080)."
)
@click.option(
    "--upstream-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port for the demo upstream (default: the port of the first [[upstreams]] URL, 9100).",
)
@click.option(
    "--fake-slack",
    type=click.Choice(["http", "socket"]),
    is_flag=False,
    flag_value="http",
    default=None,
    help="Also send approvals to a local fake Slack with working buttons (replaces any Slack settings); "
    "`--fake-slack socket` delivers its clicks over Socket Mode.",
)
@_friendly
def demo(
    config_path: Path | None, port: int | None, upstream_port: int | None, fake_slack: FakeSlackMode | None
) -> None:
    """Run the demo: an Execution Market-like upstream behind Airlock, with a sample policy (SQLite).

    Uses ./airlock.toml, which ships set up for the demo. Prints an agent token, a reviewer token
    and where to find a ready-to-run agent. If a demo already runs with the same data directory
    (on any ports), prints where and exits with status 2, changing nothing.
    """
    from app.demo.run import run_demo

    configure_logging()
    run_demo(config_path=config_path, port=port, upstream_port=upstream_port, fake_slack=fake_slack)


# --------------------------------------------------------------------------- tokens


@main.group()
def tokens() -> None:
    """Issue, list and revoke agent tokens (agents authenticate with them)."""


@tokens.command("create")
@CONFIG_OPTION
@click.option("--agent", required=True, help="The agent identity the token proves (e.g. claude-desktop).")
@click.option("--label", default=None, help="A note to tell tokens apart.")
@_friendly
def tokens_create(config_path: Path | None, agent: str, label: str | None) -> None:
    """Create a token for an agent and print it (it is shown only once).

    Names are one identity ignoring case and Unicode compatibility forms (NFKC): an agent name
    that matches an existing agent or reviewer spelled differently (`RT-Agent` when `rt-agent`
    exists) is refused; use the existing spelling. A reviewer never approves calls made under
    their own identity.
    """
    _check_name(agent, "agent")

    async def create() -> IssuedToken:
        async with _credentials(config_path) as credentials:
            return await credentials.issue_agent_token(agent, label=label)

    issued = _run(create())
    click.echo(issued.token)
    click.echo(f"token {issued.id} for agent {agent!r}; store it now, it is not shown again", err=True)


@tokens.command("list")
@CONFIG_OPTION
@click.option("--agent", default=None, help="Only this agent's tokens.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@_friendly
def tokens_list(config_path: Path | None, agent: str | None, include_revoked: bool) -> None:
    """List agent tokens (never the tokens themselves)."""
    from app.store import tokens as token_store

    async def fetch() -> list[AgentTokenRow]:
        async with _database(config_path) as db, db.read() as conn:
            return await token_store.list_agent_tokens(conn, agent=agent, include_revoked=include_revoked)

    rows = _run(fetch())
    click.echo(f"{'ID':>4}  {'AGENT':<24} {'TOKEN':<18} {'CREATED':<20} {'STATUS':<8} LABEL")
    for row in rows:
        status = "revoked" if row.revoked_at else "active"
        click.echo(
            f"{row.id:>4}  {row.agent:<24} {row.prefix + '…':<18} {_when(row.created_at):<20} {status:<8} "
            f"{row.label or ''}"
        )


@tokens.command("revoke")
@CONFIG_OPTION
@click.argument("token_id", type=int, required=False)
@click.option("--agent", default=None, help="Revoke every token of this agent.")
@_friendly
def tokens_revoke(config_path: Path | None, token_id: int | None, agent: str | None) -> None:
    """Revoke a token by its ID (from `tokens list`), or all of an agent's tokens with --agent."""
    if (token_id is None) == (agent is None):
        _fail("give a token ID or --agent NAME (not both)")

    async def revoke() -> int:
        async with _credentials(config_path) as credentials:
            revoked: int = await credentials.revoke(token_id=token_id, agent=agent)
            return revoked

    count = _run(revoke())
    if count == 0:
        _fail("no active token matched")
    click.echo(f"revoked {count} token(s); running gateways stop accepting them within their token cache time")


# --------------------------------------------------------------------------- reviewers


@main.group()
def reviewers() -> None:
    """Add and manage reviewers (the people who approve or reject held calls)."""


@reviewers.command("add")
@CONFIG_OPTION
@click.argument("name")
@click.option("--slack-user", default=None, help="The reviewer's Slack user id (U…), for Slack buttons.")
@_friendly
def reviewers_add(config_path: Path | None, name: str, slack_user: str | None) -> None:
    """Create a reviewer and print their API token (also their web inbox password).

    Names are one identity ignoring case and Unicode compatibility forms (NFKC): a name that
    matches an existing reviewer or agent spelled differently is refused; use the existing
    spelling. A reviewer with an agent's exact name never approves that agent's calls.
    """
    from sqlalchemy.exc import IntegrityError

    _check_name(name, "reviewer")

    async def add() -> IssuedToken:
        async with _credentials(config_path) as credentials:
            return await credentials.add_reviewer(name, slack_user_id=slack_user)

    try:
        issued = _run(add())
    except IntegrityError:
        _fail(
            f"a reviewer named {name!r} (or with that Slack user) already exists; use `airlock reviewers rotate {name}`"
        )
        return
    click.echo(issued.token)
    click.echo(
        f"reviewer {name!r} added; use the token as 'Authorization: Bearer <token>' for /api/approvals "
        "and to sign in to the web inbox. It is not shown again.",
        err=True,
    )


@reviewers.command("rotate")
@CONFIG_OPTION
@click.argument("name")
@_friendly
def reviewers_rotate(config_path: Path | None, name: str) -> None:
    """Give a reviewer a new token (the old one stops working) and print it."""

    async def rotate() -> IssuedToken | None:
        async with _credentials(config_path) as credentials:
            return await credentials.rotate_reviewer_token(name)

    issued = _run(rotate())
    if issued is None:
        _fail(f"no reviewer named {name!r}")
    click.echo(issued.token)


@reviewers.command("disable")
@CONFIG_OPTION
@click.argument("name")
@_friendly
def reviewers_disable(config_path: Path | None, name: str) -> None:
    """Disable a reviewer: they decide nothing more, in any channel (API, CLI, Slack, inbox), at once."""
    from app.store import tokens as token_store

    async def disable() -> bool:
        async with _database(config_path) as db, db.write() as conn:
            return await token_store.disable_reviewer(conn, name=name, now=time.time())

    if not _run(disable()):
        _fail(f"no active reviewer named {name!r}")
    click.echo(f"reviewer {name!r} disabled")


@reviewers.command("enable")
@CONFIG_OPTION
@click.argument("name")
@_friendly
def reviewers_enable(config_path: Path | None, name: str) -> None:
    """Enable a disabled reviewer again (their current token works again)."""
    from app.store import tokens as token_store

    async def enable() -> bool:
        async with _database(config_path) as db, db.write() as conn:
            return await token_store.enable_reviewer(conn, name=name)

    if not _run(enable()):
        _fail(f"no disabled reviewer named {name!r}")
    click.echo(f"reviewer {name!r} enabled")


@reviewers.command("list")
@CONFIG_OPTION
@_friendly
def reviewers_list(config_path: Path | None) -> None:
    """List reviewers."""
    from app.store import tokens as token_store

    async def fetch() -> list[ReviewerRow]:
        async with _database(config_path) as db, db.read() as conn:
            return await token_store.list_reviewers(conn)

    click.echo(f"{'NAME':<24} {'SLACK USER':<12} {'CREATED':<20} STATUS")
    for row in _run(fetch()):
        click.echo(
            f"{row.name:<24} {row.slack_user_id or '-':<12} {_when(row.created_at):<20} "
            f"{'disabled' if row.disabled_at else 'active'}"
        )


# --------------------------------------------------------------------------- policy


@main.group()
def policy() -> None:
    """Work with policy documents."""


@policy.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@CONFIG_OPTION
@click.option(
    "--upstream",
    default=None,
    help="Also check against this upstream's tools (its name in the config); with no FILES, "
    "check its configured policy.",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (rules that never match, unknown tools).")
@_friendly
def policy_check(files: tuple[Path, ...], config_path: Path | None, upstream: str | None, strict: bool) -> None:
    """Validate policy files; print every problem with its location, and exit 1 if any is invalid.

    Also warns, one line each, about rules that can never match (shadowed by an earlier rule, or
    naming only hidden tools) and, with --upstream, about tool patterns the upstream has no tool
    for and `when` paths the tool's inputSchema does not declare.
    """
    from app.policy.document import load_policy
    from app.policy.lint import lint, lint_against_catalog

    if not files and upstream is None:
        _fail("name policy FILES, or --upstream NAME to check that upstream's policy")
    target = _policy_upstream(config_path, upstream) if upstream else None
    schemas = None if target is None else _upstream_schemas(target)
    invalid = warned = 0
    for path in files or (() if target is None else (target.policy,)):
        try:
            compiled = load_policy(path)
        except PolicyError as exc:
            invalid += 1
            click.echo(str(exc), err=True)
            continue
        rules = len(compiled.document.get("rules", []))
        click.echo(
            f"{path}: ok ({rules} rules, default {compiled.document.get('default', 'deny')}, "
            f"version {compiled.version})"
        )
        findings = lint(compiled.document)
        if schemas is not None:
            findings += lint_against_catalog(compiled.document, schemas, upstream or "")
        for finding in findings:
            click.echo(f"{path}: warning: {finding}")
        warned += len(findings)
    sys.exit(1 if invalid or (strict and warned) else 0)


def _policy_upstream(config_path: Path | None, name: str | None) -> UpstreamSettings:
    """The configured upstream called `name` (or the only one, when `name` is None)."""
    settings = _settings(config_path)
    if name is None:
        if len(settings.upstreams) != 1:
            names = ", ".join(u.name for u in settings.upstreams)
            raise ConfigError(f"the configuration has several upstreams ({names}); choose one with --upstream")
        return settings.upstreams[0]
    found = settings.upstream(name)
    if found is None:
        names = ", ".join(u.name for u in settings.upstreams)
        raise ConfigError(f"no upstream named {name!r} in the configuration (it has: {names})")
    return found


def _upstream_schemas(upstream: UpstreamSettings) -> dict[str, Any]:
    from app.policy.probe import CatalogUnavailable, fetch_tools

    try:
        catalog = _run(fetch_tools(upstream))
    except CatalogUnavailable as exc:
        raise ConfigError(f"cannot list the tools of upstream {upstream.name!r}: {exc}") from None
    return {name: catalog.input_schemas.get(name) for name in catalog.annotations}


@policy.command("explain")
@CONFIG_OPTION
@click.option(
    "--upstream",
    default=None,
    help="The upstream (its name in the config); may be left out when the config has only one.",
)
@click.option("--agent", required=True, help="The agent identity making the call (the name bound to its token).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Explain with this policy file instead of the upstream's configured one (e.g. an edit).",
)
@click.option(
    "--no-fetch",
    is_flag=True,
    help="Do not ask the upstream for its tools: annotations and input schemas are then unknown.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("tool")
@click.argument("arguments", default="{}")
@_friendly
def policy_explain(
    config_path: Path | None,
    upstream: str | None,
    agent: str,
    policy_path: Path | None,
    no_fetch: bool,
    as_json: bool,
    tool: str,
    arguments: str,
) -> None:
    """Say what the policy would do with a call of TOOL with ARGUMENTS (a JSON object), and why.

    Prints the decision, the rule that matched and why each earlier rule did not, and whether
    hide, a rate limit, annotation_defaults or the tool's input schema came into it. Nothing is
    sent to the upstream except a tools/list (skip it with --no-fetch).
    """
    from app.policy.document import load_policy
    from app.policy.explain import explain, explanation_json, explanation_text
    from app.policy.probe import CatalogUnavailable, fetch_tools, tool_facts

    parsed = _call_arguments(arguments)
    target = _policy_upstream(config_path, upstream)
    compiled = load_policy(policy_path or target.policy)
    catalog, note = None, "not fetched (--no-fetch)"
    if not no_fetch:
        try:
            catalog = tool_facts(_run(fetch_tools(target)))
        except CatalogUnavailable as exc:
            note = f"could not be fetched: {exc}"
    result = explain(compiled, tool, parsed, agent, catalog=catalog, strict_arguments=target.strict_arguments)
    if as_json:
        body = explanation_json(result, upstream=target.name)
        body["catalog"] = "fetched" if catalog is not None else note
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    click.echo(explanation_text(result, upstream=target.name))
    if catalog is None:
        click.echo(f"  catalog: {note}")


def _call_arguments(text: str) -> dict[str, Any]:
    from app.jsonrpc import MessageError, parse_json

    try:
        value = parse_json(text.encode("utf-8"))
    except MessageError as exc:
        raise ConfigError(f"ARGUMENTS must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("ARGUMENTS must be a JSON object, such as '{\"bounty_usd\": 150}'")
    return value


# --------------------------------------------------------------------------- approvals


@main.group()
def approvals() -> None:
    """List, inspect and decide held calls from the terminal."""


@approvals.command("list")
@CONFIG_OPTION
@click.option(
    "--status", default="pending", show_default=True, type=STATUS_CHOICE, help="Comma-separated statuses, or 'all'."
)
@click.option("--agent", default=None, help="Only calls made by this agent.")
@click.option("--tool", default=None, help="Only calls of this tool.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many approvals.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly
def approvals_list(
    config_path: Path | None, status: str, agent: str | None, tool: str | None, limit: int, as_json: bool
) -> None:
    """List approvals, newest first."""
    from app.approvals.api import approval_json

    statuses = [] if status == "all" else [s for s in status.split(",") if s]
    settings = _settings(config_path, require_upstreams=False)

    async def fetch() -> list[Approval]:
        async with _desk(config_path) as desk:
            return await desk.search(statuses=statuses, agent=agent, tool=tool, limit=limit)

    found = _run(fetch())
    if as_json:
        click.echo(json.dumps([approval_json(a, settings.public_url) for a in found], indent=2))
        return
    if not found:
        click.echo("no approvals" + (f" with status {status}" if statuses else ""))
        return
    click.echo(f"{'ID':<21} {'STATUS':<16} {'AGENT':<16} {'TOOL':<22} {'CREATED':<20} {'EXPIRES':<20} OUTCOME")
    for a in found:
        click.echo(
            f"{a.id:<21} {a.status:<16} {_shown(a.agent):<16} {_shown(a.tool):<22} "
            f"{_when(a.created_at):<20} {_when(a.expires_at):<20} {_outcome(a)}"
        )


def _outcome(approval: Approval) -> str:
    """What became of the call, in the words every channel uses (`app/approvals/wording.py`)."""
    from app.approvals.wording import outcome_of, phrase

    return _shown(phrase(outcome_of(approval)))


@approvals.command("show")
@CONFIG_OPTION
@click.argument("approval_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON (every field, uncut).")
@_friendly
def approvals_show(config_path: Path | None, approval_id: str, as_json: bool) -> None:
    """Show one approval: the call, the policy's reason, the decision, the result and the timeline."""
    from app.approvals.api import approval_json, timeline_json

    settings = _settings(config_path, require_upstreams=False)

    async def fetch() -> tuple[Approval | None, list[AuditRow]]:
        async with _desk(config_path) as desk:
            return await desk.get(approval_id), await desk.timeline(approval_id)

    row, steps = _run(fetch())
    if row is None:
        _fail(f"no approval {approval_id}")
    if as_json:
        body = approval_json(row, settings.public_url)
        body["timeline"] = [timeline_json(t) for t in steps]
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(_approval_text(row, steps, settings.public_url))


def _approval_text(approval: Approval, steps: list[AuditRow], public_url: str) -> str:
    """One approval for a person at a terminal: sentences from `app/approvals/wording.py`, UTC times,
    hidden characters revealed, the arguments and the result in full (JSON pretty-printed)."""
    from app.approvals import wording
    from app.reveal import reveal

    voice = wording.Voice(time=_when, name=_shown)
    outcome = wording.outcome_of(approval)
    lines = [
        f"{approval.id}: {_shown(approval.tool)} on {_shown(approval.upstream)}, asked by {_shown(approval.agent)}",
        f"  status    {approval.status} ({_shown(wording.phrase(outcome))})",
        f"  policy    {_shown(approval.policy_reason)} (rule {_shown(approval.policy_rule)})",
        f"  asked     {_when(approval.created_at)}, expires {_when(approval.expires_at)}",
        f"  review    {wording.review_url(public_url, approval.id)}",
    ]
    if approval.decided_at is not None or approval.needs_quorum:
        lines.append(f"  decision  {_shown(wording.account(approval, voice))}")
    if approval.status == "pending" and (offered := wording.grants_offered(approval)) is not None:
        lines.append(f"  grants    {offered} (approve with --grant DURATION)")
    lines += ["", "What the agent sent:", _indented(reveal(_pretty(approval)))]
    if approval.result is not None:
        lines += ["", "Result:", _indented(reveal(_result_text(approval.result)))]
    lines += ["", "Timeline:"]
    lines += [
        f"  {_when(step.at)}  {_cell(step.event, 16):<16} {_cell(step.actor, 24):<24} {_cell(step.detail, 60)}"
        for step in steps
    ]
    return "\n".join(lines)


def _result_text(stored: Any) -> str:
    """A stored result as a person reads it: the tool's text content as is, anything else as JSON."""
    if stored.message is None:
        return str(stored.text)
    content = (stored.result or {}).get("content")
    if stored.texts and isinstance(content, list) and len(stored.texts) == len(content):
        return "\n".join(stored.texts)
    return json.dumps(stored.message, indent=2, ensure_ascii=False)


def _pretty(approval: Any) -> str:
    if approval.arguments is None:
        return str(approval.arguments_text)
    return json.dumps(approval.arguments, indent=2, ensure_ascii=False)


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _decide_command(verdict: str) -> Callable[..., None]:
    @CONFIG_OPTION
    @click.argument("approval_id")
    @click.option(
        "--as",
        "reviewer",
        default=None,
        envvar="AIRLOCK_REVIEWER",
        help="The reviewer deciding: an existing, enabled reviewer (see `airlock reviewers list`). "
        "Default: $AIRLOCK_REVIEWER, else the only enabled reviewer; with several, --as is required.",
    )
    @click.option(
        "--reason",
        default=None,
        help="Why (shown to the agent)."
        + (" Required: every rejection needs a reason." if verdict == "reject" else ""),
    )
    @_friendly
    def command(
        config_path: Path | None,
        approval_id: str,
        reviewer: str | None,
        reason: str | None,
        grant: str | None = None,
        scope: str = "identical",
    ) -> None:
        from app.approvals.service import DecisionError
        from app.reveal import reveal

        request = None if grant is None else _grant_request(grant, scope)

        async def run() -> tuple[Approval, str, str | None]:
            async with _core(config_path) as core:
                name = reviewer or await _only_reviewer(core.db)
                decided = await core.desk.decide(
                    approval_id,
                    reviewer=name,
                    verdict=verdict,  # type: ignore[arg-type]
                    via="cli",
                    reason=reason,
                    grant=request,
                )
                given = None if request is None else await core.desk.grants.of_approval(decided.id)
                return decided, name, None if given is None else _grant_line(given)

        try:
            row, name, granted = _run(run())
        except DecisionError as exc:
            _fail(str(exc))
            return
        if row.status == "pending":  # a quorum rule's vote that was not the last one needed
            from app.approvals.wording import confirmation

            click.echo(reveal(confirmation(row), line=True))
            return
        click.echo(reveal(f"{row.id} {row.status} by {name}: {row.agent} -> {row.tool}", line=True))
        if granted is not None:
            click.echo(granted)

    if verdict == "approve":
        command = click.option(
            "--scope",
            type=click.Choice(["identical", "tool"]),
            default="identical",
            show_default=True,
            help="With --grant: identical calls only, or any call of the tool (where the rule offers it).",
        )(command)
        command = click.option(
            "--grant",
            default=None,
            metavar="DURATION",
            help="Also allow the same agent's identical calls (or, with --scope tool, calls of the tool) "
            "for this long without asking, e.g. 30m or 2h, where the policy rule offers grants.",
        )(command)

    command.__doc__ = (
        "Approve a held call: the gateway runs it (once) and the agent gets the result."
        if verdict == "approve"
        else "Reject a held call: it never runs, and the agent gets the reason (--reason, required)."
    )
    command.__doc__ += (
        "\n\nThe CLI is an operator's tool: it decides as any existing, enabled reviewer (--as), "
        "never as a name no reviewer holds, and the audit log records the decision as made via cli."
    )
    return command


async def _only_reviewer(db: Database) -> str:
    """The reviewer the CLI decides as when --as is not given: the only enabled one."""
    from app.store import tokens as token_store

    async with db.read() as conn:
        enabled = [row.name for row in await token_store.list_reviewers(conn) if row.disabled_at is None]
    if len(enabled) == 1:
        return enabled[0]
    if not enabled:
        raise ConfigError("no enabled reviewer to decide as; add one with `airlock reviewers add NAME`")
    raise ConfigError(
        f"say which reviewer decides with --as NAME (or $AIRLOCK_REVIEWER); enabled reviewers: "
        f"{', '.join(enabled[:10])}" + (", …" if len(enabled) > 10 else "")
    )


approvals.command("approve")(_decide_command("approve"))
approvals.command("reject")(_decide_command("reject"))


def _grant_request(duration: str, scope: str) -> GrantRequest:
    from app.approvals.grants import GrantRequest, minutes_of, scope_of

    try:
        minutes = minutes_of(duration)
    except ValueError as exc:
        raise ConfigError(f"--grant: {exc}") from None
    known = scope_of(scope)
    if known is None:
        raise ConfigError("--scope must be identical or tool")
    return GrantRequest(minutes, known)


def _grant_line(grant: Grant) -> str:
    from app.approvals.wording import grant_summary

    return grant_summary(
        grant_id=grant.id,
        scope=grant.scope,
        agent=grant.agent,
        upstream=grant.upstream,
        tool=grant.tool,
        expires_at=grant.expires_at,
        created_by=grant.created_by,
    )


# --------------------------------------------------------------------------- grants


@main.group()
def grants() -> None:
    """List and revoke scoped grants (approvals that let an agent repeat a call for a while)."""


@grants.command("list")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as the API's GET /api/grants.")
@_friendly
def grants_list(config_path: Path | None, as_json: bool) -> None:
    """List live grants (neither expired nor revoked), newest first."""
    from app.approvals.api import grant_json

    async def run() -> list[Grant]:
        async with _desk(config_path) as desk:
            return await desk.grants.live()

    live = _run(run())
    if as_json:
        click.echo(json.dumps({"grants": [grant_json(grant) for grant in live]}, indent=2))
        return
    if not live:
        click.echo("no live grants")
    for grant in live:
        click.echo(_grant_line(grant))


@grants.command("revoke")
@CONFIG_OPTION
@click.argument("grant_id")
@click.option(
    "--as",
    "reviewer",
    default=None,
    envvar="AIRLOCK_REVIEWER",
    help="The reviewer revoking (recorded in the audit log). Default: $AIRLOCK_REVIEWER, else the only enabled one.",
)
@_friendly
def grants_revoke(config_path: Path | None, grant_id: str, reviewer: str | None) -> None:
    """Revoke a grant at once: the agent's next covered call is held for a reviewer again."""
    from app.approvals.service import GrantError
    from app.approvals.wording import grant_revoked

    async def run() -> Grant:
        async with _core(config_path) as core:
            name = reviewer or await _only_reviewer(core.db)
            return await core.desk.grants.revoke(grant_id, by=name)

    try:
        grant = _run(run())
    except GrantError as exc:
        _fail(str(exc))
        return
    assert grant.revoked_by is not None
    click.echo(grant_revoked(grant_id=grant.id, by=grant.revoked_by))


# --------------------------------------------------------------------------- audit


@main.group(invoke_without_command=True)
@CONFIG_OPTION
@click.option("--agent", default=None, help="Only entries of this agent.")
@click.option("--tool", default=None, help="Only entries of this tool.")
@click.option("--upstream", default=None, help="Only entries of this upstream (its name in the config).")
@click.option("--decision", default=None, help="allow, deny, hidden, rate_limited, approve, invalid")
@click.option("--event", default=None, help="call, parked, decided, executing, executed, delivered, expired, …")
@click.option("--approval", "approval_id", default=None, help="Only the timeline of this approval.")
@click.option("--since", default=None, help="ISO time (UTC unless it names a zone) or a duration such as 15m, 2h, 7d.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
@_friendly
def audit(
    ctx: click.Context,
    config_path: Path | None,
    agent: str | None,
    tool: str | None,
    upstream: str | None,
    decision: str | None,
    event: str | None,
    approval_id: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List audit entries, newest first: every call decision and every approval step.

    `airlock audit export` writes them all as JSON Lines, oldest first (for a SIEM, before
    `[audit] retention_days` prunes them).
    """
    from app.store import audit as audit_store

    if ctx.invoked_subcommand is not None:
        ctx.obj = config_path
        return

    since_ts = _since(since)

    async def fetch() -> list[AuditRow]:
        async with _database(config_path) as db, db.read() as conn:
            return await audit_store.search(
                conn,
                agent=agent,
                tool=tool,
                upstream=upstream,
                decision=decision,
                event=event,
                approval_id=approval_id,
                since=since_ts,
                limit=limit,
            )

    rows = _run(fetch())
    if as_json:
        for row in rows:
            click.echo(json.dumps({k: getattr(row, k) for k in row.__slots__}))
        return
    if not rows:
        click.echo("no audit entries matched", err=True)
        return
    click.echo(
        f"{'TIME':<20}  {'EVENT':<10} {'DECISION':<12} {'AGENT':<16} {'TOOL':<22} {'RULE':<14} {'LATENCY':>8}  DETAIL"
    )
    for row in rows:
        click.echo(_audit_line(row))


_EXPORT_PAGE: Final = 500


@audit.command("export")
@CONFIG_OPTION
@click.option("--since", default=None, help="Only entries at or after this ISO time (UTC unless it names a zone).")
@click.option("--before", default=None, help="Only entries before this ISO time (UTC unless it names a zone).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (replaced) instead of stdout.",
)
@click.pass_context
@_friendly
def audit_export(
    ctx: click.Context, config_path: Path | None, since: str | None, before: str | None, output: Path | None
) -> None:
    """Export audit entries as JSON Lines, oldest first: one object per entry, every field, times in UTC.

    Reads in pages, so any number of entries streams through. Run it from cron before
    `[audit] retention_days` prunes what it has not shipped yet.
    """
    from app.store import audit as audit_store

    config_path = config_path or ctx.obj
    since_ts, before_ts = _iso_option("--since", since), _iso_option("--before", before)
    try:
        out = click.open_file(str(output), "w", encoding="utf-8", atomic=True) if output else sys.stdout
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None

    async def export() -> int:
        written, after = 0, None
        async with _database(config_path) as db:
            while True:
                async with db.read() as conn:
                    rows = await audit_store.page(
                        conn, after=after, since=since_ts, before=before_ts, limit=_EXPORT_PAGE
                    )
                try:
                    out.write("".join(json.dumps(_export_json(row)) + "\n" for row in rows))
                except OSError as exc:
                    raise ConfigError(f"cannot write {output or 'stdout'}: {exc.strerror or exc}") from None
                written += len(rows)
                if len(rows) < _EXPORT_PAGE:
                    return written
                after = (rows[-1].at, rows[-1].id)

    if output:
        with out:
            _run(export())
    else:
        _run(export())
        out.flush()


def _export_json(row: AuditRow) -> dict[str, Any]:
    """One audit entry for `audit export`: every column, its time as UTC ISO 8601 with `Z`."""
    body = {k: getattr(row, k) for k in row.__slots__}
    body["at"] = datetime.fromtimestamp(row.at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return body


def _iso_option(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not an ISO time such as 2026-01-31T00:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _audit_line(row: AuditRow) -> str:
    """One audit entry as one table row, however long or multi-line its values."""
    latency = f"{row.latency_ms:.1f}ms" if row.latency_ms is not None else ""
    extra = " ".join(
        x
        for x in (
            row.approval_id or "",
            (row.actor and f"by {row.actor}") or "",
            row.outcome or "",
            (row.detail and f"({row.detail})") or "",
        )
        if x
    )
    return (
        f"{_when(row.at)}  {row.event:<10} {row.decision or '':<12} {_cell(row.agent, 40):<16} "
        f"{_cell(row.tool, 48):<22} {_cell(row.rule, 32):<14} {latency:>8}  {_cell(extra, 100)}"
    )


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since {value!r} is neither an ISO time nor a duration like 15m") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# --------------------------------------------------------------------------- helpers


def _shown(text: str | None) -> str:
    """Agent-chosen text on one terminal line, hidden characters revealed (`app/reveal.py`).

    JSON output needs nothing: `json.dumps` writes every non-ASCII character as an escape.
    """
    from app.reveal import reveal

    return reveal(text or "", line=True)


def _when(timestamp: float | None) -> str:
    """Every time the CLI prints: UTC, marked `Z`, to the second (the inbox shows UTC too)."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(text: str | None, width: int) -> str:
    """Agent-chosen text as one table cell: on one line (newlines as `\\n`), cut to `width` with `…`.

    The whole value is in `--json`; hidden characters are revealed as in `_shown`.
    """
    shown = _shown((text or "").replace("\r\n", "\n").replace("\n", "\\n"))
    if len(shown) <= width:
        return shown
    cut = shown[: width - 1]
    escape = cut.rfind("\\u")
    if escape >= 0 and len(cut) - escape < 6:  # never end on half an escape such as `\u20`
        cut = cut[:escape]
    return cut + "…"


def _check_name(name: str, what: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name):
        _fail(f"{what} name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'")


@asynccontextmanager
async def _core(config_path: Path | None) -> AsyncIterator[Core]:
    """The parts every entry point shares (`app/runtime.py::build_core`), on a migrated database.

    The same builder `airlock serve` uses, so the configuration applies to what a command does as
    it does to the gateway's own work (`[audit] store_arguments` for a decision's audit entry).
    """
    from app.runtime import build_core

    settings = _settings(config_path, require_upstreams=False)
    await asyncio.to_thread(_migrate, settings)
    core = build_core(settings)
    try:
        yield core
    except Exception as exc:
        raise _database_error(settings.database_url, exc) from None
    finally:
        await core.db.dispose()


@asynccontextmanager
async def _database(config_path: Path | None) -> AsyncIterator[Database]:
    """A migrated database for one CLI command."""
    async with _core(config_path) as core:
        yield core.db


def _database_error(url: str, exc: Exception) -> Exception:
    """A database failure during a CLI command as one `ConfigError` line saying what to do, or `exc` itself.

    Every command reaches the database through `_core`, so this is the one place that turns a
    read-only file, an unreachable server or a missing table into a sentence instead of a traceback.
    A conflict (`IntegrityError`) is the command's own to explain, and other errors are not the
    database's: both pass through unchanged.
    """
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    if isinstance(exc, IntegrityError) or not isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
        return exc
    return ConfigError(f"the database at {_safe_url(url)} failed: {_database_problem(exc)}")


def _database_problem(exc: BaseException) -> str:
    """What went wrong with the database, and what to do about it, in one line."""
    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    problem = _first_line(cause)
    lowered = problem.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        advice = "make the database (and, for SQLite, its directory) writable by the user running airlock"
    elif "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        advice = (
            "Airlock's tables are missing: check that database_url names Airlock's database, "
            "or point it at a new one and run `airlock migrate`"
        )
    elif isinstance(cause, OSError | TimeoutError) or "connect" in lowered:
        advice = "check that the database server is running and that database_url (or DATABASE_URL) is right"
    else:
        advice = "check database_url (or DATABASE_URL) and the database's own log"
    return f"{problem}; {advice}"


@asynccontextmanager
async def _credentials(config_path: Path | None) -> AsyncIterator[Credentials]:
    async with _core(config_path) as core:
        yield core.credentials


@asynccontextmanager
async def _desk(config_path: Path | None) -> AsyncIterator[ApprovalDesk]:
    """The approvals service as reviewers use it (`build_core`'s desk): decisions made here wake
    the gateways (NOTIFY on PostgreSQL)."""
    async with _core(config_path) as core:
        yield core.desk


if __name__ == "__main__":  # pragma: no cover
    main()
