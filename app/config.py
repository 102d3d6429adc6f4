"""Settings: `airlock.toml` plus secrets from the environment, validated once and passed in.

Precedence is environment, then file, then default. Secrets (Slack tokens, upstream credentials,
the cookie-signing key) come only from the environment or a `.env` file; the TOML file names the
listen address, database, upstreams and tuning. Relative paths in the file (policies, the data
directory, a SQLite database) are resolved against the file's own directory, so a config works
the same from any working directory.

Nothing here is read at import time: `load_settings()` builds a `Settings`, and everything else
receives it. Every problem is a `ConfigError` whose message is one sentence the CLI prints as is.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from app.endpoints import EndpointSettings, endpoints_from
from app.errors import ConfigError
from app.identity import identity_key
from app.logs import LOG_FORMATS, LogFormat

DEFAULT_CONFIG_FILE: Final = "airlock.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SlackMode = Literal["http", "socket"]


@dataclass(frozen=True)
class UpstreamSettings:
    """One MCP server behind Airlock, reachable at `/mcp/{name}`."""

    name: str
    url: str
    """Where the upstream serves Streamable HTTP; empty for a stdio upstream until Airlock's stdio
    bridge (`app/stdio/bridge.py`) points it at itself."""
    policy: Path
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers sent upstream (credentials for the upstream; `${VAR}` expands from the environment)."""
    timeout_seconds: float = 300.0
    """How long an upstream request may take before Airlock gives up on it."""
    strict_arguments: bool = True
    """Refuse a call whose arguments do not conform, exactly, to the tool's published inputSchema."""
    stdio: StdioSettings | None = None
    """Set when the upstream is a program speaking MCP on stdin/stdout rather than a URL."""


@dataclass(frozen=True)
class StdioSettings:
    """How to run a stdio upstream: one child process per upstream session (see `app/stdio/bridge.py`)."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the few variables every child inherits (`${VAR}` expands from the environment)."""
    cwd: Path | None = None
    max_processes: int = 10
    """Children of this upstream alive at once (one per agent session); `initialize` beyond it is refused."""
    idle_seconds: float = 900.0
    """A child whose session has had no request for this long is stopped."""


@dataclass(frozen=True)
class ApprovalSettings:
    hold_seconds: float = 50.0
    """Longest Airlock holds an agent's request before answering "pending" (most clients quit at 60 s)."""
    timeout_seconds: float = 1800.0
    """When a pending approval expires if nobody decides (a rule's `timeout` overrides it)."""
    max_pending_per_agent: int = 20
    max_held_per_agent: int = 40
    """Requests one agent may have held open at once, attached duplicates included (default: twice
    `max_pending_per_agent`). Counted per process: with N replicas an agent may hold up to N times this."""
    cancel_grace_seconds: float = 10.0
    """After a 2026-07-28 client drops a held stream, how long an identical retry may re-attach."""
    progress_interval_seconds: float = 10.0
    keepalive_seconds: float = 15.0
    sse_retry_ms: int = 5000
    """The SSE `retry` hint: how long a handshake-era client waits before it reconnects."""
    execution_lease_seconds: float = 30.0
    """An `executing` row whose executor stopped renewing for this long is marked `outcome_unknown`."""
    safety_poll_seconds: float = 1.0
    """How often every process re-reads recent approval changes, in case a wake-up signal was missed."""
    result_retention_seconds: float = 86400.0
    """How long an outcome not yet delivered waits for the agent's identical retry."""
    stream_retention_seconds: float = 86400.0
    """How long a held stream and its stored events stay resumable after its hold ended; then purged."""
    retention_days: float = 90.0
    """How long a finished approval is kept (then pruned, with its Slack outbox row); 0 keeps them forever.
    An outcome still within `result_retention_seconds`, or still referenced by a stream or a
    continuation, is never pruned."""
    agent_hold_seconds: Mapping[str, float] = field(default_factory=dict)
    """Per-agent hold budgets, for clients known to wait longer (e.g. the Python SDK)."""


@dataclass(frozen=True)
class SessionSettings:
    """Handshake-era sessions (`[sessions]`): Airlock's own, each backed by one upstream session."""

    max_per_agent: int = 64
    """Open sessions one agent may have (all upstreams together). Opening one more closes the agent's
    least recently used session, and the upstream session behind it."""
    idle_seconds: float = 3600.0
    """A session no request used for this long is closed, and the upstream session behind it released."""
    retention_seconds: float = 86400.0
    """How long a closed session's record is kept (an approved call of a closed session still runs)."""


@dataclass(frozen=True)
class TaskSettings:
    """Held calls as MCP tasks (`[tasks]`, see `docs/tasks.md`)."""

    max_ttl_seconds: float = 7 * 86400.0
    """The longest a task is kept; a task lives at least as long as its approval can (timeout plus
    `[approvals] result_retention_seconds`), even when that is longer or the client asked for less."""
    poll_interval_ms: int = 5000
    """The `pollInterval` suggested to clients while a task waits for a human."""


@dataclass(frozen=True)
class ServerSettings:
    """`[server]`: limits of the HTTP server, so that one client cannot hold what others need.

    uvicorn enforces the connection cap and the keep-alive timeout; `app/limits.py` enforces the
    request timeout, for request headers and bodies alike (uvicorn has none).
    """

    request_timeout_seconds: float = 30.0
    """How long a client may take to send a request's headers, and then its body: a connection
    whose headers are late is closed, a request whose body is late gets 408 and is closed.
    Responses (held calls, event streams) are not limited by it."""
    max_connections: int = 16384
    """Open connections (idle keep-alive and held calls included) above which new requests get 503.
    The default leaves room for the 10,000 held calls the benchmark measures; the process's file
    descriptor limit (`ulimit -n`) must be higher still."""
    keepalive_timeout_seconds: float = 5.0
    """How long an idle keep-alive connection stays open between requests. Behind a load balancer,
    make it longer than the balancer's own idle timeout."""
    shutdown_grace_seconds: float = 30.0
    """On SIGTERM, how long in-flight requests and approved calls may take to finish before they
    are cut off (held calls are handed back at once; see `app/drain.py`)."""
    forwarded_allow_ips: tuple[str, ...] = ()
    """Addresses or networks of the reverse proxies whose `X-Forwarded-For`/`-Proto` Airlock
    believes (uvicorn's `forwarded_allow_ips`); from anyone else those headers are ignored."""


@dataclass(frozen=True)
class MetricsSettings:
    """`[metrics]`: Prometheus metrics at `GET /metrics` on the main listener (see docs/operations.md)."""

    enabled: bool = True
    """Serve `/metrics`. It needs no token: firewall it, or keep it behind the proxy."""
    listen: tuple[str, int] | None = None
    """`listen = "host:port"`: serve `/metrics` there instead, on a listener of its own (so the
    MCP port need not expose it); None: on the main listener."""


@dataclass(frozen=True)
class LoggingSettings:
    """`[logging]`: the log line format and the access log (see `app/logs.py`, docs/operations.md)."""

    format: LogFormat = "text"
    """`AIRLOCK_LOG_FORMAT` / `format`: `text` lines, or `json` (one object per line, with the
    request's correlation fields)."""
    access_log: bool = False
    """`AIRLOCK_ACCESS_LOG` / `access_log`: one line per HTTP request (never tokens, cookies or arguments)."""


@dataclass(frozen=True)
class TracingSettings:
    """`[tracing]`: OpenTelemetry spans per MCP request and upstream call (see `app/tracing.py`)."""

    enabled: bool = False
    """Make spans (needs `pip install 'airlock[tracing]'`); off costs nothing."""
    exporter: str = "otlp"
    """`otlp` (over HTTP; the standard OTEL_EXPORTER_OTLP_* variables say where), `console`, or `none`."""
    service_name: str = "airlock"
    """The `service.name` resource attribute of every span."""


@dataclass(frozen=True)
class SlackSettings:
    """Slack approvals (see `docs/slack.md`). Enabled when the bot token and, in `http` mode, the
    signing secret or, in `socket` mode, the app-level token are set.

    Secrets come only from the environment. Once one is set, the app id, the workspace ids and
    the default channel must be set too (from the environment or `[slack]`): Airlock refuses to
    start half configured rather than accept clicks it cannot check.
    """

    bot_token: str | None = None
    """`SLACK_BOT_TOKEN` (env only): the bot's `xoxb-…` token for the Web API."""
    signing_secret: str | None = None
    """`SLACK_SIGNING_SECRET` (env only): verifies that interaction requests come from Slack (`http` mode)."""
    mode: SlackMode = "http"
    """`SLACK_MODE` / `mode`: how clicks reach Airlock. `http`: Slack posts them to
    `<public_url>/slack/interactions` (needs a public HTTPS address); `socket`: Airlock opens a
    Socket Mode WebSocket to Slack (no public address; needs `app_token`)."""
    app_token: str | None = field(default=None, repr=False)
    """`AIRLOCK_SLACK_APP_TOKEN` / `app_token = "${VAR}"` (a reference, never the token itself): the
    app-level `xapp-…` token with `connections:write` that opens Socket Mode connections."""
    socket_connections: int = 2
    """`socket_connections`: Socket Mode connections this process keeps open (1 to 10 per app in all,
    counting every replica); a second one covers the gap while the other is being replaced."""
    app_id: str | None = None
    """`SLACK_APP_ID` / `app_id`: the `A…` id of the Slack app; payloads for any other app are refused."""
    team_ids: tuple[str, ...] = ()
    """`SLACK_TEAM_IDS` (comma-separated) / `team_ids`: workspaces (`T…`, or an Enterprise Grid
    org's `E…`) whose members may click; every other workspace is refused."""
    default_channel: str | None = None
    """`SLACK_DEFAULT_CHANNEL` / `default_channel`: channel id for approvals whose rule names none."""
    api_url: str = "https://slack.com/api/"
    """`SLACK_API_URL` / `api_url`: the Web API base URL (tests point it at a fake Slack)."""
    reviewer_users: Mapping[str, str] = field(default_factory=dict)
    """`SLACK_REVIEWERS` (`U1=alice,U2=bob`) / `[slack.reviewers]`: Slack user id → reviewer name,
    for users not linked with `airlock reviewers add NAME --slack-user U…` (that link wins)."""
    usergroup_cache_seconds: float = 60.0
    """`usergroup_cache_seconds`: how long members of a rule's Slack user group are remembered."""
    reviewers_by_email: bool = False
    """`reviewers_by_email`: a Slack user no reviewer is linked to is the reviewer named by their
    Slack profile's e-mail (`users.info`, scope `users:read.email`), as single sign-on to the inbox
    names reviewers by e-mail (`[inbox.oidc] reviewer_claim = "email"`)."""
    retry_initial_seconds: float = 1.0
    """`retry_initial_seconds`: first delay before a failed Slack post/update is retried (doubles each time)."""
    retry_max_seconds: float = 300.0
    """`retry_max_seconds`: the longest delay between retries (a 429's `Retry-After` is always honoured)."""
    api_timeout_seconds: float = 10.0
    """`api_timeout_seconds`: how long one background Web API call (post, update, note) may take."""
    click_timeout_seconds: float = 2.0
    """`click_timeout_seconds`: how long Slack calls made while answering a click (`views.open`,
    user-group lookups) may take; Slack wants the answer within 3 seconds."""
    poll_seconds: float = 5.0
    """`poll_seconds`: how often the outbox looks for work it was not woken for (and re-enqueues
    approvals whose message was never queued)."""
    lease_seconds: float = 60.0
    """`lease_seconds`: how long a replica owns a claimed outbox row (must exceed api_timeout_seconds)."""
    socket_ping_seconds: float = 5.0
    """`socket_ping_seconds`: how often a Socket Mode connection is pinged; one that misses pongs for
    four intervals is replaced."""

    @property
    def enabled(self) -> bool:
        inbound = self.signing_secret if self.mode == "http" else self.app_token
        return bool(self.bot_token and inbound and self.app_id and self.team_ids and self.default_channel)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    database_url: str = "sqlite+aiosqlite:///data/airlock.db"
    database_pool_size: int = 10
    """Connections each process keeps (and as many again under a burst). Several replicas share
    PostgreSQL's `max_connections` (100 by default): keep replicas × 2 × pool_size below it."""
    data_dir: Path = Path("data")
    upstreams: tuple[UpstreamSettings, ...] = ()
    endpoints: tuple[EndpointSettings, ...] = ()
    """`[[endpoints]]`: one `/mcp/{name}` in front of several upstreams (`app/endpoints.py`)."""
    max_body_bytes: int = 1_048_576
    max_response_bytes: int = 64 * 1024 * 1024
    """The largest upstream answer (or SSE event) Airlock relays or stores; larger ones get a clear error."""
    allowed_origins: tuple[str, ...] = ()
    token_cache_seconds: float = 5.0
    audit_store_arguments: bool = False
    audit_retention_days: float = 90.0
    """How long audit entries are kept (then pruned by the sweeper); 0 keeps them forever."""
    secret_key: str = ""
    approvals: ApprovalSettings = field(default_factory=ApprovalSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    oauth: OAuthSettings | None = None
    """`[oauth]`: agents may also present OAuth access tokens (None: static tokens only)."""
    webhook: WebhookSettings | None = None
    """`[webhook]`: signed approval events to a URL and a signed decision endpoint (None: off)."""
    reviewer_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """`[reviewers.NAME] groups = [...]`: each reviewer's groups, by identity key (`app/identity.py`),
    for a rule's `reviewer_groups` (an OIDC groups claim can fill the same mapping later)."""
    inbox_oidc: InboxOidcSettings | None = None
    """`[inbox.oidc]`: reviewers sign in to the inbox through an OpenID provider (None: tokens only)."""
    escalation: Mapping[str, EscalationTarget] = field(default_factory=dict)
    """`[escalation.<name>]`: who is told when an approval is escalated, by the name rules use in
    `escalate_to` (see `app/approvals/escalation.py`)."""
    config_path: Path | None = None

    def upstream(self, name: str) -> UpstreamSettings | None:
        return next((u for u in self.upstreams if u.name == name), None)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def __post_init__(self) -> None:
        _check_escalation_targets(self.escalation, slack=self.slack.enabled, webhook=self.webhook is not None)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    require_upstreams: bool = True,
) -> Settings:
    """Read `path` (default `./airlock.toml`) and the environment into validated `Settings`.

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid (one sentence).
    """
    env = os.environ if env is None else env
    config_path = Path(path) if path is not None else Path(env.get("AIRLOCK_CONFIG", DEFAULT_CONFIG_FILE))
    document = _read_toml(config_path)
    return settings_from_document(
        document,
        base_dir=config_path.resolve().parent,
        env=env,
        config_path=config_path.resolve(),
        require_upstreams=require_upstreams,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}; create it (see airlock.example.toml) or pass --config PATH"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


_TOP_KEYS: Final = frozenset(
    {
        "host",
        "port",
        "public_url",
        "database_url",
        "database_pool_size",
        "data_dir",
        "upstreams",
        "endpoints",
        "max_body_bytes",
        "max_response_bytes",
        "allowed_origins",
        "token_cache_seconds",
        "approvals",
        "audit",
        "slack",
        "agents",
        "sessions",
        "tasks",
        "server",
        "metrics",
        "logging",
        "tracing",
        "oauth",
        "webhook",
        "reviewers",
        "inbox",
        "escalation",
    }
)


def settings_from_document(
    document: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str],
    config_path: Path | None = None,
    require_upstreams: bool = True,
) -> Settings:
    """Build `Settings` from an already-parsed TOML document (also used by the demo and tests)."""
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in the configuration file")
    host = str(env.get("AIRLOCK_HOST") or _get(document, "host", str, "127.0.0.1"))
    port = _port(env.get("AIRLOCK_PORT") or _get(document, "port", int, 8080))
    data_dir = _resolve(base_dir, env.get("AIRLOCK_DATA_DIR") or _get(document, "data_dir", str, "data"))
    database_url = _database_url(
        env.get("DATABASE_URL") or env.get("AIRLOCK_DATABASE_URL") or _get(document, "database_url", str, ""),
        base_dir,
        data_dir,
    )
    public_url = (
        env.get("AIRLOCK_PUBLIC_URL") or _get(document, "public_url", str, "") or f"http://{_url_host(host)}:{port}"
    ).rstrip("/")
    _check_http_url("public_url", public_url)
    upstreams = _upstreams(document.get("upstreams", []), base_dir, env)
    if require_upstreams and not upstreams:
        raise ConfigError("the configuration names no upstreams; add an [[upstreams]] table with name, url and policy")
    return Settings(
        host=host,
        port=port,
        public_url=public_url,
        database_url=database_url,
        database_pool_size=_positive_int("database_pool_size", _get(document, "database_pool_size", int, 10)),
        data_dir=data_dir,
        upstreams=upstreams,
        endpoints=endpoints_from(document.get("endpoints", []), [u.name for u in upstreams]),
        max_body_bytes=_positive_int("max_body_bytes", _get(document, "max_body_bytes", int, 1_048_576)),
        max_response_bytes=_positive_int(
            "max_response_bytes", _get(document, "max_response_bytes", int, 64 * 1024 * 1024)
        ),
        allowed_origins=_origins(_get(document, "allowed_origins", list, [])),
        token_cache_seconds=_non_negative(
            "token_cache_seconds",
            env.get("AIRLOCK_TOKEN_CACHE_SECONDS") or _get(document, "token_cache_seconds", (int, float), 5.0),
        ),
        audit_store_arguments=_audit(document),
        audit_retention_days=_audit_retention_days(document),
        secret_key=_secret_key(env, data_dir),
        approvals=_approvals(document.get("approvals", {}), document.get("agents", {})),
        sessions=_sessions(document.get("sessions", {})),
        tasks=_tasks(document.get("tasks", {})),
        server=_server(document.get("server", {})),
        metrics=_metrics(document.get("metrics", {})),
        logging=_logging(document.get("logging", {}), env),
        tracing=_tracing(document.get("tracing", {})),
        slack=_slack(document.get("slack", {}), env),
        oauth=_oauth(document.get("oauth"), env, {u.name for u in upstreams}),
        webhook=_webhook(document.get("webhook"), env),
        reviewer_groups=_reviewer_groups(document.get("reviewers", {})),
        inbox_oidc=_inbox_oidc(document.get("inbox"), env),
        escalation=_escalation(document.get("escalation")),
        config_path=config_path,
    )


def _reviewer_groups(table: Any) -> dict[str, frozenset[str]]:
    """`[reviewers.alice] groups = ["sre"]` → {identity_key("alice"): {"sre"}}."""
    if not isinstance(table, dict):
        raise ConfigError("[reviewers] must be a table of reviewer names")
    groups: dict[str, frozenset[str]] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"groups"}:
            raise ConfigError(f"[reviewers.{name}] accepts only groups")
        names = entry.get("groups", [])
        if not isinstance(names, list) or not all(isinstance(g, str) and g for g in names):
            raise ConfigError(f"reviewers.{name}.groups must be a list of group names")
        groups[identity_key(name)] = frozenset(names)
    return groups


_KIND_NAMES: Final = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}
"""What a setting's type is called in an error (not `a int`: issue 13)."""


def _get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = (kind,) if isinstance(kind, type) else kind
        expected = (
            "a number" if set(kinds) == {int, float} else " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        )
        raise ConfigError(f"setting {key!r} must be {expected}, not {value!r}")
    return value


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"port must be a number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range (0-65535)")
    return port


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive number with no fraction, not {value!r}")
    return value


def _seconds(name: str, value: Any) -> float:
    """A finite number of seconds (TOML allows `nan` and `inf`; they mean nothing here)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number of seconds, not {value!r}")
    return number


def _positive(name: str, value: Any) -> float:
    number = _seconds(name, value)
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds")
    return number


def _non_negative(name: str, value: Any) -> float:
    number = _seconds(name, value)
    if number < 0:
        raise ConfigError(f"{name} cannot be negative")
    return number


def _origins(values: list[Any]) -> tuple[str, ...]:
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(f'allowed_origins must list origins such as "https://app.example.com", not {value!r}')
        _check_http_url("each of allowed_origins", value)
    return tuple(value.rstrip("/") for value in values)


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base_dir / path).resolve()


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)


def _check_http_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, not {url!r}")


def _database_url(url: str, base_dir: Path, data_dir: Path) -> str:
    if not url:
        return f"sqlite+aiosqlite:///{data_dir / 'airlock.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        scheme, _, path = url.partition(":///")
        if not path:
            raise ConfigError(f"database_url {url!r} names no SQLite file (use sqlite+aiosqlite:///path/to/file.db)")
        if scheme != "sqlite+aiosqlite":
            raise ConfigError("a SQLite database_url must use the async driver: sqlite+aiosqlite:///path")
        if path != ":memory:" and not Path(path).is_absolute():
            path = str((base_dir / path).resolve())
        return f"{scheme}:///{path}"
    if not url.startswith("postgresql+asyncpg://"):
        raise ConfigError(
            f"database_url must be sqlite+aiosqlite:///... or postgresql+asyncpg://..., not {url.split(':')[0]}"
        )
    return url


def _upstreams(tables: Any, base_dir: Path, env: Mapping[str, str]) -> tuple[UpstreamSettings, ...]:
    if not isinstance(tables, list):
        raise ConfigError("upstreams must be an array of tables ([[upstreams]])")
    upstreams: list[UpstreamSettings] = []
    for index, table in enumerate(tables):
        upstreams.append(_upstream(index, table, base_dir, env))
    names = [u.name for u in upstreams]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"upstream name {duplicate!r} is used twice")
    return tuple(upstreams)


_UPSTREAM_KEYS: Final = frozenset({"name", "url", "policy", "headers", "timeout_seconds", "strict_arguments"})
_STDIO_KEYS: Final = frozenset({"command", "env", "cwd", "max_processes", "idle_seconds"})


def _upstream(index: int, table: Any, base_dir: Path, env: Mapping[str, str]) -> UpstreamSettings:
    where = f"upstreams[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _UPSTREAM_KEYS - _STDIO_KEYS)
    if unknown:
        raise ConfigError(f"{where} has an unknown setting {unknown[0]!r}")
    name, url, policy = table.get("name"), table.get("url"), table.get("policy")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}.name must be a short name of letters, digits, '.', '_' or '-'")
    if ("url" in table) == ("command" in table):
        raise ConfigError(
            f'upstream {name!r} needs exactly one of url = "http://…" (Streamable HTTP) or command = ["prog", …] (stdio)'
        )
    stdio = _stdio(name, table, base_dir, env) if "command" in table else None
    if stdio is None:
        if not isinstance(url, str):
            raise ConfigError(f"upstream {name!r} needs a url")
        _check_http_url(f"upstream {name!r} url", url)
        if not _STDIO_KEYS.isdisjoint(table):
            raise ConfigError(f"upstream {name!r} has a url, so {sorted(_STDIO_KEYS & set(table))[0]!r} does not apply")
    elif "headers" in table:
        raise ConfigError(f"upstream {name!r} runs a command, so it takes env, not headers")
    if not isinstance(policy, str):
        raise ConfigError(f'upstream {name!r} needs a policy file (policy = "policies/{name}.json")')
    headers = table.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"upstream {name!r} headers must be a table of strings")
    return UpstreamSettings(
        name=name,
        url=url if isinstance(url, str) else "",
        policy=_resolve(base_dir, policy),
        headers={k: _expand(v, env, f"upstream {name!r} header {k!r}") for k, v in headers.items()},
        timeout_seconds=_positive(f"upstream {name!r} timeout_seconds", table.get("timeout_seconds", 300.0)),
        strict_arguments=_flag(f"upstream {name!r} strict_arguments", table.get("strict_arguments", True)),
        stdio=stdio,
    )


def _stdio(name: str, table: Mapping[str, Any], base_dir: Path, env: Mapping[str, str]) -> StdioSettings:
    command = table["command"]
    if not isinstance(command, list) or not command or not all(isinstance(part, str) and part for part in command):
        raise ConfigError(f'upstream {name!r} command must be a non-empty list of strings, such as ["npx", "server"]')
    child_env = table.get("env", {})
    if not isinstance(child_env, dict) or not all(isinstance(v, str) for v in child_env.values()):
        raise ConfigError(f"upstream {name!r} env must be a table of strings")
    cwd = table.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ConfigError(f"upstream {name!r} cwd must be a directory path")
    defaults = StdioSettings(command=())
    return StdioSettings(
        command=tuple(command),
        env={k: _expand(v, env, f"upstream {name!r} env {k!r}") for k, v in child_env.items()},
        cwd=None if cwd is None else _resolve(base_dir, cwd),
        max_processes=_positive_int(
            f"upstream {name!r} max_processes", table.get("max_processes", defaults.max_processes)
        ),
        idle_seconds=_positive(f"upstream {name!r} idle_seconds", table.get("idle_seconds", defaults.idle_seconds)),
    )


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    return value


def _expand(value: str, env: Mapping[str, str], where: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{where} refers to ${{{name}}}, which is not set in the environment")
        return env[name]

    return _ENV_REF.sub(substitute, value)


def _audit(document: Mapping[str, Any]) -> bool:
    audit = document.get("audit", {})
    if not isinstance(audit, dict) or set(audit) - {"store_arguments", "retention_days"}:
        raise ConfigError("[audit] accepts only store_arguments = true|false and retention_days = <days>")
    return bool(_get(audit, "store_arguments", bool, False))


def _audit_retention_days(document: Mapping[str, Any]) -> float:
    return _days("audit.retention_days", document.get("audit", {}).get("retention_days", 90))


def _days(name: str, value: Any) -> float:
    """A finite, non-negative number of days (0: keep forever)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a number of days, 0 or more (0 keeps forever), not {value!r}")
    return float(value)


_APPROVAL_KEYS: Final = {
    "hold_seconds",
    "timeout_seconds",
    "max_pending_per_agent",
    "cancel_grace_seconds",
    "progress_interval_seconds",
    "keepalive_seconds",
    "sse_retry_ms",
    "execution_lease_seconds",
    "safety_poll_seconds",
    "result_retention_seconds",
    "stream_retention_seconds",
    "max_held_per_agent",
    "retention_days",
}
_APPROVAL_COUNTS: Final = frozenset({"max_pending_per_agent", "sse_retry_ms", "max_held_per_agent"})
_APPROVAL_DAYS: Final = frozenset({"retention_days"})


def _approvals(table: Any, agents: Any) -> ApprovalSettings:
    if not isinstance(table, dict):
        raise ConfigError("[approvals] must be a table")
    unknown = sorted(set(table) - _APPROVAL_KEYS)
    if unknown:
        raise ConfigError(f"[approvals] has an unknown setting {unknown[0]!r}")
    defaults = ApprovalSettings()
    seconds = {
        key: _positive(f"approvals.{key}", table.get(key, getattr(defaults, key)))
        for key in _APPROVAL_KEYS - _APPROVAL_COUNTS - _APPROVAL_DAYS
    }
    max_pending = _positive_int(
        "approvals.max_pending_per_agent", table.get("max_pending_per_agent", defaults.max_pending_per_agent)
    )
    return ApprovalSettings(
        max_pending_per_agent=max_pending,
        max_held_per_agent=_positive_int(
            "approvals.max_held_per_agent", table.get("max_held_per_agent", 2 * max_pending)
        ),
        sse_retry_ms=_positive_int("approvals.sse_retry_ms", table.get("sse_retry_ms", defaults.sse_retry_ms)),
        agent_hold_seconds=_agent_holds(agents),
        retention_days=_days("approvals.retention_days", table.get("retention_days", defaults.retention_days)),
        **seconds,
    )


def _agent_holds(agents: Any) -> dict[str, float]:
    if not isinstance(agents, dict):
        raise ConfigError("[agents] must be a table of agent names")
    holds: dict[str, float] = {}
    for name, table in agents.items():
        if not isinstance(table, dict) or set(table) - {"hold_seconds"}:
            raise ConfigError(f"[agents.{name}] accepts only hold_seconds")
        if "hold_seconds" in table:
            holds[name] = _positive(f"agents.{name}.hold_seconds", table["hold_seconds"])
    return holds


def _sessions(table: Any) -> SessionSettings:
    if not isinstance(table, dict):
        raise ConfigError("[sessions] must be a table")
    unknown = sorted(set(table) - {"max_per_agent", "idle_seconds", "retention_seconds"})
    if unknown:
        raise ConfigError(f"[sessions] has an unknown setting {unknown[0]!r}")
    defaults = SessionSettings()
    return SessionSettings(
        max_per_agent=_positive_int("sessions.max_per_agent", table.get("max_per_agent", defaults.max_per_agent)),
        idle_seconds=_positive("sessions.idle_seconds", table.get("idle_seconds", defaults.idle_seconds)),
        retention_seconds=_positive(
            "sessions.retention_seconds", table.get("retention_seconds", defaults.retention_seconds)
        ),
    )


def _tasks(table: Any) -> TaskSettings:
    if not isinstance(table, dict):
        raise ConfigError("[tasks] must be a table")
    unknown = sorted(set(table) - {"max_ttl_seconds", "poll_interval_ms"})
    if unknown:
        raise ConfigError(f"[tasks] has an unknown setting {unknown[0]!r}")
    defaults = TaskSettings()
    return TaskSettings(
        max_ttl_seconds=_positive("tasks.max_ttl_seconds", table.get("max_ttl_seconds", defaults.max_ttl_seconds)),
        poll_interval_ms=_positive_int(
            "tasks.poll_interval_ms", table.get("poll_interval_ms", defaults.poll_interval_ms)
        ),
    )


def _server(table: Any) -> ServerSettings:
    if not isinstance(table, dict):
        raise ConfigError("[server] must be a table")
    defaults = ServerSettings()
    unknown = sorted(set(table) - set(vars(defaults)))
    if unknown:
        raise ConfigError(f"[server] has an unknown setting {unknown[0]!r}")
    return ServerSettings(
        request_timeout_seconds=_positive(
            "server.request_timeout_seconds", table.get("request_timeout_seconds", defaults.request_timeout_seconds)
        ),
        max_connections=_positive_int("server.max_connections", table.get("max_connections", defaults.max_connections)),
        keepalive_timeout_seconds=_positive(
            "server.keepalive_timeout_seconds",
            table.get("keepalive_timeout_seconds", defaults.keepalive_timeout_seconds),
        ),
        shutdown_grace_seconds=_non_negative(
            "server.shutdown_grace_seconds", table.get("shutdown_grace_seconds", defaults.shutdown_grace_seconds)
        ),
        forwarded_allow_ips=_networks("server.forwarded_allow_ips", _get(table, "forwarded_allow_ips", list, [])),
    )


def _networks(name: str, values: list[Any]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            raise ConfigError(
                f'{name} must list IP addresses or networks such as "10.0.0.0/8", not {value!r}'
            ) from None
    return tuple(values)


def _metrics(table: Any) -> MetricsSettings:
    if not isinstance(table, dict) or set(table) - {"enabled", "listen"}:
        raise ConfigError('[metrics] accepts only enabled = true|false and listen = "host:port"')
    listen = table.get("listen")
    return MetricsSettings(
        enabled=_flag("metrics.enabled", table.get("enabled", True)),
        listen=None if listen is None else _listen_address("metrics.listen", listen),
    )


def _listen_address(where: str, value: Any) -> tuple[str, int]:
    """`"host:port"` (`"[::1]:9464"` for IPv6) as (host, port)."""
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'{where} must be "host:port", such as "127.0.0.1:9464", not {value!r}')
    return host, int(port)


def _logging(table: Any, env: Mapping[str, str]) -> LoggingSettings:
    if not isinstance(table, dict) or set(table) - {"format", "access_log"}:
        raise ConfigError('[logging] accepts only format = "text"|"json" and access_log = true|false')
    log_format = env.get("AIRLOCK_LOG_FORMAT") or _get(table, "format", str, "text")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f'logging format must be "text" or "json", not {log_format!r}')
    access_log = env.get("AIRLOCK_ACCESS_LOG")
    if access_log is not None and access_log.lower() not in ("true", "false", "1", "0"):
        raise ConfigError(f"AIRLOCK_ACCESS_LOG must be true or false, not {access_log!r}")
    return LoggingSettings(
        format="json" if log_format == "json" else "text",
        access_log=access_log.lower() in ("true", "1")
        if access_log is not None
        else _flag("logging.access_log", table.get("access_log", False)),
    )


def _tracing(table: Any) -> TracingSettings:
    if not isinstance(table, dict) or set(table) - {"enabled", "exporter", "service_name"}:
        raise ConfigError("[tracing] accepts only enabled, exporter and service_name")
    exporter = _get(table, "exporter", str, "otlp")
    if exporter not in ("otlp", "console", "none"):
        raise ConfigError(f'tracing exporter must be "otlp", "console" or "none", not {exporter!r}')
    return TracingSettings(
        enabled=_flag("tracing.enabled", table.get("enabled", False)),
        exporter=exporter,
        service_name=_get(table, "service_name", str, "airlock") or "airlock",
    )


_SLACK_SECONDS: Final = (
    "usergroup_cache_seconds",
    "retry_initial_seconds",
    "retry_max_seconds",
    "api_timeout_seconds",
    "click_timeout_seconds",
    "poll_seconds",
    "lease_seconds",
    "socket_ping_seconds",
)
_SLACK_KEYS: Final = frozenset(
    {
        "default_channel",
        "app_id",
        "team_ids",
        "api_url",
        "reviewers",
        "mode",
        "app_token",
        "socket_connections",
        "reviewers_by_email",
        *_SLACK_SECONDS,
    }
)
_SLACK_MODES: Final = ("http", "socket")
APP_TOKEN_PREFIX: Final = "xapp-"


def _slack(table: Any, env: Mapping[str, str]) -> SlackSettings:
    if not isinstance(table, dict):
        raise ConfigError("[slack] must be a table")
    unknown = sorted(set(table) - _SLACK_KEYS)
    if unknown:
        raise ConfigError(f"[slack] has an unknown setting {unknown[0]!r}")
    file_team_ids = _get(table, "team_ids", list, [])
    if not all(isinstance(team, str) for team in file_team_ids):
        raise ConfigError('[slack] team_ids must be a list of workspace ids such as "T0123456789"')
    team_ids = env.get("SLACK_TEAM_IDS") or ",".join(file_team_ids)
    defaults = SlackSettings()
    mode = _slack_mode(env.get("SLACK_MODE") or _get(table, "mode", str, defaults.mode))
    settings = SlackSettings(
        bot_token=env.get("SLACK_BOT_TOKEN") or None,
        signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        app_id=env.get("SLACK_APP_ID") or _get(table, "app_id", str, "") or None,
        team_ids=tuple(t.strip() for t in team_ids.split(",") if t.strip()),
        default_channel=env.get("SLACK_DEFAULT_CHANNEL") or _get(table, "default_channel", str, "") or None,
        api_url=env.get("SLACK_API_URL") or _get(table, "api_url", str, "") or defaults.api_url,
        reviewer_users=_slack_reviewers(table.get("reviewers", {}), env.get("SLACK_REVIEWERS")),
        mode=mode,
        app_token=_app_token(table, env, mode),
        socket_connections=_socket_connections(table.get("socket_connections", defaults.socket_connections)),
        reviewers_by_email=_flag("slack.reviewers_by_email", table.get("reviewers_by_email", False)),
        **{key: _positive(f"slack.{key}", table.get(key, getattr(defaults, key))) for key in _SLACK_SECONDS},
    )
    _check_http_url("slack api_url", settings.api_url)
    if settings.lease_seconds <= settings.api_timeout_seconds:
        raise ConfigError("slack.lease_seconds must be longer than slack.api_timeout_seconds")
    _check_slack_complete(settings)
    return settings


def _check_slack_complete(settings: SlackSettings) -> None:
    """Refuse a half-configured Slack: once any secret is set, everything the mode needs must be."""
    socket_mode = settings.mode == "socket"
    if socket_mode and settings.bot_token and not settings.app_token:
        raise ConfigError(
            "Slack socket mode needs an app-level token: set AIRLOCK_SLACK_APP_TOKEN (xapp-…, see docs/slack.md)"
        )
    if settings.bot_token or settings.signing_secret or (socket_mode and settings.app_token):
        missing = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", settings.bot_token),
                *(() if socket_mode else (("SLACK_SIGNING_SECRET", settings.signing_secret),)),
                ("SLACK_APP_ID", settings.app_id),
                ("SLACK_TEAM_IDS", settings.team_ids),
                ("SLACK_DEFAULT_CHANNEL", settings.default_channel),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"Slack is only partly configured: set {', '.join(missing)} (see docs/slack.md)")


def _slack_mode(value: str) -> SlackMode:
    if value not in _SLACK_MODES:
        raise ConfigError('slack.mode must be "http" or "socket"')
    return "socket" if value == "socket" else "http"


def _app_token(table: Mapping[str, Any], env: Mapping[str, str], mode: SlackMode) -> str | None:
    """`AIRLOCK_SLACK_APP_TOKEN`, else `[slack] app_token`, which may only name an environment variable.

    Read only in socket mode: HTTP mode has no use for it, so its variable need not be set there.
    """
    reference = _get(table, "app_token", str, "")
    if reference and not _ENV_REF.fullmatch(reference):
        raise ConfigError(
            '[slack] app_token must be a reference such as "${SLACK_APP_TOKEN}": secrets stay in the environment'
        )
    if mode != "socket":
        return None
    token = env.get("AIRLOCK_SLACK_APP_TOKEN") or (_expand(reference, env, "[slack] app_token") if reference else "")
    if token and not token.startswith(APP_TOKEN_PREFIX):
        # Never echo the value: it may be the bot token or another secret pasted in the wrong place.
        raise ConfigError("the Slack app_token must be an app-level token (xapp-…) with the connections:write scope")
    return token or None


def _socket_connections(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise ConfigError("slack.socket_connections must be a whole number from 1 to 10")
    return value


def _slack_reviewers(table: Any, env_value: str | None) -> dict[str, str]:
    """Slack user id → reviewer name, from `SLACK_REVIEWERS=U1=alice,U2=bob` or else `[slack.reviewers]`."""
    if env_value:
        pairs = [item.partition("=") for item in env_value.split(",") if item.strip()]
        if any(not user.strip() or not name.strip() for user, _, name in pairs):
            raise ConfigError("SLACK_REVIEWERS must look like U012ABC=alice,U034DEF=bob")
        return {user.strip(): name.strip() for user, _, name in pairs}
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError("[slack] reviewers must map Slack user ids to reviewer names")
    return dict(table)


# --- [oauth]: Airlock as an OAuth 2.1 resource server for agents (docs/identity.md) ----------


@dataclass(frozen=True)
class OAuthSettings:
    """`[oauth]`: accept JWT access tokens (RFC 9068) from one issuer besides static agent tokens.

    Each endpoint's audience is its canonical URL, `<public_url>/mcp/<name>` (RFC 8707).
    """

    issuer: str
    """`AIRLOCK_OAUTH_ISSUER` / `issuer`: the authorization server, compared exactly with `iss`;
    its metadata (RFC 8414, then OpenID discovery) names the JWKS unless `jwks_url` is set."""
    identity_claim: str = "sub"
    """The claim whose value is the agent's name for policies, rate limits, approvals and audit."""
    required_scopes: tuple[str, ...] = ()
    """Scopes every token must carry (unless an upstream names its own)."""
    leeway_seconds: float = 30.0
    """Clock skew allowed on `exp` and `nbf`, at most 60 s."""
    jwks_url: str | None = None
    upstream_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """`[oauth.upstreams.NAME] required_scopes`: replaces `required_scopes` for that endpoint."""
    introspection_endpoint: str | None = None
    """RFC 7662: where opaque (non-JWT) access tokens are looked up; None: only JWTs are accepted."""
    introspection_client_id: str | None = None
    introspection_client_secret: str = ""
    """From `AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET`: Airlock authenticates to the endpoint."""

    def scopes_for(self, upstream: str) -> tuple[str, ...]:
        return self.upstream_scopes.get(upstream, self.required_scopes)


_OAUTH_KEYS: Final = frozenset(
    {
        "issuer",
        "identity_claim",
        "required_scopes",
        "leeway_seconds",
        "jwks_url",
        "upstreams",
        "introspection_endpoint",
        "introspection_client_id",
    }
)
_MAX_LEEWAY: Final = 60.0


def _oauth(table: Any, env: Mapping[str, str], upstreams: set[str]) -> OAuthSettings | None:
    issuer = env.get("AIRLOCK_OAUTH_ISSUER")
    if table is None and not issuer:
        return None
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise ConfigError("[oauth] must be a table")
    unknown = sorted(set(table) - _OAUTH_KEYS)
    if unknown:
        raise ConfigError(f"[oauth] has an unknown setting {unknown[0]!r}")
    issuer = issuer or _get(table, "issuer", str, "")
    if not issuer:
        raise ConfigError('[oauth] needs the issuer of agents\' access tokens (issuer = "https://idp.example")')
    _check_secure_url("oauth.issuer", issuer)
    jwks_url = _get(table, "jwks_url", str, "") or None
    if jwks_url is not None:
        _check_secure_url("oauth.jwks_url", jwks_url)
    claim = _get(table, "identity_claim", str, "sub")
    if not claim or any(c in claim for c in '"\\') or not claim.isprintable():
        raise ConfigError("oauth.identity_claim must name a claim, such as sub or client_id")
    leeway = _non_negative("oauth.leeway_seconds", table.get("leeway_seconds", 30.0))
    if leeway > _MAX_LEEWAY:
        raise ConfigError(f"oauth.leeway_seconds must be at most {_MAX_LEEWAY:.0f} seconds")
    return OAuthSettings(
        issuer=issuer,
        identity_claim=claim,
        required_scopes=_scopes("oauth.required_scopes", table.get("required_scopes", [])),
        leeway_seconds=leeway,
        jwks_url=jwks_url,
        upstream_scopes=_upstream_scopes(table.get("upstreams", {}), upstreams),
        **_introspection(table, env),
    )


def _introspection(table: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    endpoint = _get(table, "introspection_endpoint", str, "")
    if not endpoint:
        return {}
    _check_secure_url("oauth.introspection_endpoint", endpoint)
    client_id = _get(table, "introspection_client_id", str, "")
    secret = env.get("AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET", "")
    if not client_id or not secret:
        raise ConfigError(
            "oauth.introspection_endpoint needs introspection_client_id, and "
            "AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET in the environment"
        )
    return {
        "introspection_endpoint": endpoint,
        "introspection_client_id": client_id,
        "introspection_client_secret": secret,
    }


def _upstream_scopes(table: Any, upstreams: set[str]) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict) or not all(
        isinstance(v, dict) and set(v) <= {"required_scopes"} for v in table.values()
    ):
        raise ConfigError("[oauth.upstreams.NAME] accepts only required_scopes = [...]")
    unknown = sorted(set(table) - upstreams)
    if unknown:
        raise ConfigError(f"[oauth.upstreams.{unknown[0]}] names no configured upstream")
    return {
        name: _scopes(f"oauth.upstreams.{name}.required_scopes", v.get("required_scopes", []))
        for name, v in table.items()
    }


def _scopes(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(s, str) and s and " " not in s and '"' not in s for s in value
    ):
        raise ConfigError(f'{name} must be a list of scope names such as ["mcp:tools"]')
    return tuple(value)


def _check_secure_url(name: str, url: str) -> None:
    """https, or http only on a loopback host (OAuth 2.1 requires TLS; tests and demos run on loopback)."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"{name} must be an https URL (http only on a loopback host), not {url!r}")


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str:
    """The key that signs inbox cookies: from AIRLOCK_SECRET_KEY, else generated once into the data dir."""
    key = env.get("AIRLOCK_SECRET_KEY", "")
    if key:
        if len(key) < 32 or key in {"changeme", "change-me", "secret"}:
            raise ConfigError(
                "AIRLOCK_SECRET_KEY must be at least 32 random characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return key
    key_file = data_dir / "secret_key"
    try:
        stored = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {key_file}: {getattr(exc, 'strerror', None) or 'not text'}") from None
    if stored is not None:
        if len(stored) < 32:
            raise ConfigError(f"{key_file} holds no usable key (fewer than 32 characters); delete it to get a new one")
        return stored
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
        return key
    except FileExistsError:
        return key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot create {key_file}: {exc.strerror}; set AIRLOCK_SECRET_KEY instead") from None


# --- [webhook]: a generic review channel (docs/webhook.md) ------------------------------------

WEBHOOK_EVENTS: Final = (
    "parked",
    "approved",
    "rejected",
    "expired",
    "withdrawn",
    "executing",
    "completed",
    "failed",
    "outcome_unknown",
    "escalated",
)
"""Event types the webhook can send: `parked`, then each status an approval can move to, and
`escalated` (for rules whose escalation target sets `webhook = true`)."""


@dataclass(frozen=True)
class WebhookSettings:
    """`[webhook]`: approval events POSTed, signed, to `url`; decisions taken at `/webhook/decisions`."""

    url: str
    """`AIRLOCK_WEBHOOK_URL` / `url`: https, or http on a loopback host."""
    secret: str = field(repr=False)
    """`AIRLOCK_WEBHOOK_SECRET` / `secret = "${VAR}"` (env only): signs events (and decisions, unless
    `decision_secret` is set)."""
    decision_secret: str | None = field(default=None, repr=False)
    """`AIRLOCK_WEBHOOK_DECISION_SECRET` / `decision_secret = "${VAR}"`: verifies decision requests."""
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    timeout_seconds: float = 10.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    give_up_after_seconds: float = 86400.0
    poll_seconds: float = 5.0
    lease_seconds: float = 60.0


_WEBHOOK_SECONDS: Final = (
    "timeout_seconds",
    "retry_initial_seconds",
    "retry_max_seconds",
    "give_up_after_seconds",
    "poll_seconds",
    "lease_seconds",
)
_WEBHOOK_KEYS: Final = frozenset({"url", "secret", "decision_secret", "events", *_WEBHOOK_SECONDS})
_MIN_WEBHOOK_SECRET: Final = 32


def _webhook(table: Any, env: Mapping[str, str]) -> WebhookSettings | None:
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise ConfigError("[webhook] must be a table")
    unknown = sorted(set(table) - _WEBHOOK_KEYS)
    if unknown:
        raise ConfigError(f"[webhook] has an unknown setting {unknown[0]!r}")
    url = env.get("AIRLOCK_WEBHOOK_URL") or _get(table, "url", str, "")
    if not url:
        return None
    _check_secure_url("webhook.url", url)
    events = _get(table, "events", list, list(WEBHOOK_EVENTS))
    if not events or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events):
        raise ConfigError(f"webhook.events must be a list of: {', '.join(WEBHOOK_EVENTS)}")
    secret = _webhook_secret("secret", table, env.get("AIRLOCK_WEBHOOK_SECRET"), env)
    if secret is None:
        raise ConfigError("[webhook] needs a secret: set AIRLOCK_WEBHOOK_SECRET (see docs/webhook.md)")
    defaults = WebhookSettings(url="", secret="")
    settings = WebhookSettings(
        url=url,
        secret=secret,
        decision_secret=_webhook_secret("decision_secret", table, env.get("AIRLOCK_WEBHOOK_DECISION_SECRET"), env),
        events=frozenset(events),
        **{key: _positive(f"webhook.{key}", table.get(key, getattr(defaults, key))) for key in _WEBHOOK_SECONDS},
    )
    if settings.lease_seconds <= settings.timeout_seconds:
        raise ConfigError("webhook.lease_seconds must be longer than webhook.timeout_seconds")
    return settings


def _webhook_secret(key: str, table: Mapping[str, Any], from_env: str | None, env: Mapping[str, str]) -> str | None:
    """A secret from its environment variable, else from `key = "${VAR}"` (never a literal in the file)."""
    reference = _get(table, key, str, "")
    if reference and not _ENV_REF.fullmatch(reference):
        raise ConfigError(f'webhook.{key} must name an environment variable ({key} = "${{VAR}}"), not hold the secret')
    secret = from_env or (_expand(reference, env, f"webhook.{key}") if reference else None)
    if secret is not None and len(secret) < _MIN_WEBHOOK_SECRET:
        raise ConfigError(
            f"the webhook {key.replace('_', ' ')} must be at least {_MIN_WEBHOOK_SECRET} random characters"
        )
    return secret or None


# --- [inbox.oidc]: reviewers sign in with single sign-on (docs/identity.md) -------------------

REVIEWER_CLAIMS: Final = ("email", "preferred_username", "sub")


@dataclass(frozen=True)
class InboxOidcSettings:
    """`[inbox.oidc]`: the inbox signs reviewers in through an OpenID provider (authorization code + PKCE).

    The client secret comes only from the environment (`AIRLOCK_INBOX_OIDC_CLIENT_SECRET`). The
    redirect URI to register at the provider is `<public_url>/inbox/-/sso/callback`.
    """

    issuer: str
    """Compared exactly with the ID token's `iss`; its OpenID discovery document names the endpoints."""
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    reviewer_claim: str = "email"
    """The ID token claim whose value is the reviewer's name (`email`, `preferred_username` or `sub`)."""
    groups_claim: str = "groups"
    allowed_groups: frozenset[str] = frozenset()
    """A reviewer must be in at least one of these groups (never empty: single sign-on fails closed)."""
    token_sign_in: bool = True
    """False: the sign-in form with reviewer tokens is off, and single sign-on is the only way in."""


_INBOX_KEYS: Final = frozenset({"oidc"})
_INBOX_OIDC_KEYS: Final = frozenset(
    {"issuer", "client_id", "scopes", "reviewer_claim", "groups_claim", "allowed_groups", "token_sign_in"}
)


def _inbox_oidc(table: Any, env: Mapping[str, str]) -> InboxOidcSettings | None:
    table = {} if table is None else table
    if not isinstance(table, dict) or sorted(set(table) - _INBOX_KEYS):
        raise ConfigError("[inbox] accepts only an [inbox.oidc] table")
    oidc = table.get("oidc")
    if oidc is None:
        return None
    if not isinstance(oidc, dict):
        raise ConfigError("[inbox.oidc] must be a table")
    unknown = sorted(set(oidc) - _INBOX_OIDC_KEYS)
    if unknown:
        hint = " (set AIRLOCK_INBOX_OIDC_CLIENT_SECRET instead)" if unknown[0] == "client_secret" else ""
        raise ConfigError(f"[inbox.oidc] has an unknown setting {unknown[0]!r}{hint}")
    issuer = _get(oidc, "issuer", str, "")
    client_id = _get(oidc, "client_id", str, "")
    secret = env.get("AIRLOCK_INBOX_OIDC_CLIENT_SECRET", "")
    if not issuer or not client_id or not secret:
        raise ConfigError(
            "[inbox.oidc] needs issuer and client_id, and AIRLOCK_INBOX_OIDC_CLIENT_SECRET in the environment"
        )
    _check_secure_url("inbox.oidc.issuer", issuer)
    claim = _get(oidc, "reviewer_claim", str, "email")
    if claim not in REVIEWER_CLAIMS:
        raise ConfigError(f"inbox.oidc.reviewer_claim must be one of {', '.join(REVIEWER_CLAIMS)}, not {claim!r}")
    scopes = _scopes("inbox.oidc.scopes", oidc.get("scopes", ["openid", "email", "profile"]))
    if "openid" not in scopes:
        raise ConfigError('inbox.oidc.scopes must include "openid"')
    groups = _get(oidc, "allowed_groups", list, [])
    if not groups or not all(isinstance(g, str) and g for g in groups):
        raise ConfigError('inbox.oidc.allowed_groups must list the groups whose members may review, such as ["sre"]')
    return InboxOidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        scopes=scopes,
        reviewer_claim=claim,
        groups_claim=_get(oidc, "groups_claim", str, "groups") or "groups",
        allowed_groups=frozenset(groups),
        token_sign_in=_get(oidc, "token_sign_in", bool, True),
    )


# --- [escalation.<name>]: who hears of an escalated approval (docs/policy.md, Escalation) ----------


@dataclass(frozen=True)
class EscalationTarget:
    """`[escalation.<name>]`: where an approval escalated to `<name>` is announced."""

    name: str
    slack_channel: str | None = None
    """`slack_channel`: a Slack channel (name or id) that gets a notice with a link to the approval."""
    webhook: bool = False
    """`webhook`: send an `approval.escalated` event to the `[webhook]` URL."""


_ESCALATION_KEYS: Final = frozenset({"slack_channel", "webhook"})


def _escalation(table: Any) -> dict[str, EscalationTarget]:
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise ConfigError("[escalation] must be a table of targets ([escalation.<name>])")
    return {name: _escalation_target(name, entry) for name, entry in table.items()}


def _escalation_target(name: str, entry: Any) -> EscalationTarget:
    if not _NAME.match(name):
        raise ConfigError(f"escalation target name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if not isinstance(entry, dict):
        raise ConfigError(f"[escalation.{name}] must be a table")
    unknown = sorted(set(entry) - _ESCALATION_KEYS)
    if unknown:
        raise ConfigError(f"[escalation.{name}] has an unknown setting {unknown[0]!r}")
    target = EscalationTarget(
        name=name,
        slack_channel=_get(entry, "slack_channel", str, "") or None,
        webhook=_get(entry, "webhook", bool, False),
    )
    if target.slack_channel is None and not target.webhook:
        raise ConfigError(f"[escalation.{name}] tells nobody: set slack_channel, webhook = true, or both")
    return target


def _check_escalation_targets(targets: Mapping[str, EscalationTarget], *, slack: bool, webhook: bool) -> None:
    # A target that names a channel Airlock does not run would escalate into the void: refuse it.
    for target in targets.values():
        if target.slack_channel is not None and not slack:
            raise ConfigError(f"[escalation.{target.name}] names a Slack channel, but Slack is not configured")
        if target.webhook and not webhook:
            raise ConfigError(f"[escalation.{target.name}] sets webhook = true, but [webhook] is not configured")
