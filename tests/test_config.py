"""Settings from `airlock.toml` and the environment: defaults, precedence, paths, and one-sentence errors.

Provenance: Airlock-defined (issue: gateway core, "a bad config fails at start with one clear
line"); precedence environment > file > default as in `starlette/config.py`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app import config
from app.config import (
    ApprovalSettings,
    ServerSettings,
    SessionSettings,
    Settings,
    SlackSettings,
    StdioSettings,
    TaskSettings,
    UpstreamSettings,
    load_settings,
    settings_from_document,
)
from app.errors import ConfigError

KEY = "k" * 16 + "0123456789abcdefghijklmnop"
ENV = {"AIRLOCK_SECRET_KEY": KEY}


def upstream(**overrides: Any) -> dict[str, Any]:
    return {"name": "market", "url": "http://127.0.0.1:9100/mcp", "policy": "policies/market.json", **overrides}


def document(**overrides: Any) -> dict[str, Any]:
    return {"upstreams": [upstream()], **overrides}


def settings(tmp_path: Path, doc: dict[str, Any] | None = None, **env: str) -> Settings:
    return settings_from_document(document() if doc is None else doc, base_dir=tmp_path, env={**ENV, **env})


def config_error(tmp_path: Path, doc: dict[str, Any], **env: str) -> str:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, doc, **env)
    return one_sentence(refused.value)


def one_sentence(error: ConfigError) -> str:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_defaults_fill_in_everything_but_the_upstreams(tmp_path: Path) -> None:
    loaded = settings(tmp_path)
    assert (loaded.host, loaded.port, loaded.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert loaded.data_dir == tmp_path / "data"
    assert loaded.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'airlock.db'}"
    assert (loaded.max_body_bytes, loaded.token_cache_seconds, loaded.database_pool_size) == (1_048_576, 5.0, 10)
    assert loaded.audit_store_arguments is False and loaded.allowed_origins == ()
    assert loaded.approvals == ApprovalSettings()
    assert loaded.slack.enabled is False
    assert loaded.secret_key == KEY
    [market] = loaded.upstreams
    assert (market.name, market.url, market.timeout_seconds, dict(market.headers)) == (
        "market",
        "http://127.0.0.1:9100/mcp",
        300.0,
        {},
    )
    assert market.policy == tmp_path / "policies" / "market.json"


@pytest.mark.parametrize(
    ("doc", "env", "attribute", "expected"),
    [
        ({"port": 9000}, {"AIRLOCK_PORT": "9100"}, "port", 9100),
        ({"port": 9000}, {}, "port", 9000),
        ({"host": "10.0.0.1"}, {"AIRLOCK_HOST": "0.0.0.0"}, "host", "0.0.0.0"),
        (
            {"database_url": "sqlite+aiosqlite:///file.db"},
            {"DATABASE_URL": "postgresql+asyncpg://u:p@db/airlock"},
            "database_url",
            "postgresql+asyncpg://u:p@db/airlock",
        ),
        ({}, {"AIRLOCK_DATABASE_URL": "postgresql+asyncpg://db/a"}, "database_url", "postgresql+asyncpg://db/a"),
        (
            {},
            {"DATABASE_URL": "postgresql+asyncpg://db/first", "AIRLOCK_DATABASE_URL": "postgresql+asyncpg://db/b"},
            "database_url",
            "postgresql+asyncpg://db/first",
        ),
        ({}, {"DATABASE_URL": "postgres://u@db/a"}, "database_url", "postgresql+asyncpg://u@db/a"),
        ({}, {"DATABASE_URL": "postgresql://u@db/a"}, "database_url", "postgresql+asyncpg://u@db/a"),
        (
            {"public_url": "https://file.example"},
            {"AIRLOCK_PUBLIC_URL": "https://env.example/"},
            "public_url",
            "https://env.example",
        ),
        ({"public_url": "https://airlock.example/"}, {}, "public_url", "https://airlock.example"),
        ({"host": "0.0.0.0", "port": 81}, {}, "public_url", "http://127.0.0.1:81"),
        ({"host": "::1"}, {}, "public_url", "http://[::1]:8080"),
        ({}, {"AIRLOCK_PORT": "9200"}, "public_url", "http://127.0.0.1:9200"),
        ({"token_cache_seconds": 1}, {"AIRLOCK_TOKEN_CACHE_SECONDS": "0"}, "token_cache_seconds", 0.0),
        ({"max_body_bytes": 2048}, {}, "max_body_bytes", 2048),
        ({"allowed_origins": ["https://app.example"]}, {}, "allowed_origins", ("https://app.example",)),
        ({"audit": {"store_arguments": True}}, {}, "audit_store_arguments", True),
        ({}, {"AIRLOCK_PORT": ""}, "port", 8080),
    ],
)
def test_the_environment_wins_over_the_file_which_wins_over_defaults(
    tmp_path: Path, doc: dict[str, Any], env: dict[str, str], attribute: str, expected: Any
) -> None:
    assert getattr(settings(tmp_path, document(**doc), **env), attribute) == expected


def test_data_dir_from_the_environment_moves_the_default_database_too(tmp_path: Path) -> None:
    loaded = settings(tmp_path, document(data_dir="from-file"), AIRLOCK_DATA_DIR="from-env")
    assert loaded.data_dir == tmp_path / "from-env"
    assert loaded.database_url == f"sqlite+aiosqlite:///{tmp_path / 'from-env' / 'airlock.db'}"


def test_relative_paths_resolve_against_the_config_files_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "airlock"
    config_dir.mkdir(parents=True)
    (config_dir / "airlock.toml").write_text(
        'data_dir = "state"\n'
        'database_url = "sqlite+aiosqlite:///db/airlock.db"\n'
        "[[upstreams]]\n"
        'name = "market"\nurl = "http://127.0.0.1:9100/mcp"\npolicy = "../policies/market.json"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_settings(Path("..") / "etc" / "airlock" / "airlock.toml", env=ENV)
    assert loaded.data_dir == config_dir / "state"
    assert loaded.database_url == f"sqlite+aiosqlite:///{config_dir / 'db' / 'airlock.db'}"
    assert loaded.upstreams[0].policy == tmp_path / "etc" / "policies" / "market.json"
    assert loaded.config_path == config_dir / "airlock.toml"


def test_absolute_paths_and_in_memory_sqlite_are_kept(tmp_path: Path) -> None:
    loaded = settings(
        tmp_path,
        document(
            data_dir=str(tmp_path / "abs"),
            database_url="sqlite+aiosqlite:///:memory:",
            upstreams=[upstream(policy=str(tmp_path / "p.json"))],
        ),
    )
    assert loaded.data_dir == tmp_path / "abs"
    assert loaded.database_url == "sqlite+aiosqlite:///:memory:"
    assert loaded.upstreams[0].policy == tmp_path / "p.json"


def test_load_settings_reads_airlock_config_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(
        'port = 7000\n[[upstreams]]\nname = "u"\nurl = "http://u/mcp"\npolicy = "p.json"\n', encoding="utf-8"
    )
    assert load_settings(env={**ENV, "AIRLOCK_CONFIG": str(path)}).port == 7000


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("Bearer ${UPSTREAM_TOKEN}", {"UPSTREAM_TOKEN": "s3cret"}, "Bearer s3cret"),
        ("${A}-${B}", {"A": "1", "B": "2"}, "1-2"),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("no reference", {}, "no reference"),
        ("$NOT_A_REFERENCE and ${lower_ok}", {"lower_ok": "x"}, "$NOT_A_REFERENCE and x"),
    ],
)
def test_upstream_headers_expand_environment_references(
    tmp_path: Path, value: str, env: dict[str, str], expected: str
) -> None:
    loaded = settings(tmp_path, document(upstreams=[upstream(headers={"Authorization": value})]), **env)
    assert loaded.upstreams[0].headers == {"Authorization": expected}


def test_an_unset_header_reference_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    message = config_error(tmp_path, document(upstreams=[upstream(headers={"Authorization": "Bearer ${NOPE}"})]))
    assert message == "upstream 'market' header 'Authorization' refers to ${NOPE}, which is not set in the environment"


@pytest.mark.parametrize(
    ("doc", "env", "expected"),
    [
        ({"listen": 1}, {}, "unknown setting 'listen'"),
        ({"port": "eighty"}, {}, "'port' must be a whole number"),
        ({"port": 70000}, {}, "port 70000 is out of range"),
        ({"port": -1}, {}, "out of range"),
        ({"port": True}, {}, "'port' must be a whole number"),
        ({}, {"AIRLOCK_PORT": "http"}, "port must be a number, not 'http'"),
        ({}, {"AIRLOCK_PORT": "99999"}, "out of range"),
        ({"host": 1}, {}, "'host' must be a string"),
        ({"upstreams": []}, {}, "names no upstreams"),
        ({"upstreams": {"name": "x"}}, {}, "must be an array of tables"),
        ({"upstreams": ["x"]}, {}, "upstreams[0] must be a table"),
        ({"upstreams": [upstream(), upstream()]}, {}, "upstream name 'market' is used twice"),
        ({"upstreams": [upstream(name="has space")]}, {}, "upstreams[0].name must be a short name"),
        ({"upstreams": [upstream(name="")]}, {}, "upstreams[0].name must be a short name"),
        ({"upstreams": [upstream(name="a/b")]}, {}, "upstreams[0].name must be a short name"),
        ({"upstreams": [upstream(url=None)]}, {}, "needs a url"),
        ({"upstreams": [upstream(url="ftp://host/mcp")]}, {}, "url must be an http(s) URL"),
        ({"upstreams": [upstream(url="http://")]}, {}, "url must be an http(s) URL"),
        ({"upstreams": [upstream(url="localhost:9100")]}, {}, "url must be an http(s) URL"),
        ({"upstreams": [upstream(policy=None)]}, {}, "needs a policy file"),
        ({"upstreams": [upstream(headers={"X": 1})]}, {}, "headers must be a table of strings"),
        ({"upstreams": [upstream(timeout_seconds=0)]}, {}, "timeout_seconds must be a positive number"),
        ({"upstreams": [upstream(timeout_seconds="slow")]}, {}, "timeout_seconds must be a number of seconds"),
        ({"upstreams": [upstream(retries=3)]}, {}, "unknown setting 'retries'"),
        ({"public_url": "airlock.example"}, {}, "public_url must be an http(s) URL"),
        ({}, {"AIRLOCK_PUBLIC_URL": "ws://x"}, "public_url must be an http(s) URL"),
        ({"database_url": "sqlite:///airlock.db"}, {}, "must use the async driver"),
        ({"database_url": "sqlite+pysqlite:///airlock.db"}, {}, "must use the async driver"),
        ({"database_url": "sqlite+aiosqlite://"}, {}, "names no SQLite file"),
        ({"database_url": "mysql://db/airlock"}, {}, "database_url must be sqlite+aiosqlite"),
        ({}, {"DATABASE_URL": "postgresql+psycopg://db/a"}, "database_url must be sqlite+aiosqlite"),
        ({"max_body_bytes": 0}, {}, "max_body_bytes must be a positive number"),
        ({"max_body_bytes": 1.5}, {}, "'max_body_bytes' must be a whole number"),
        ({"database_pool_size": 0}, {}, "database_pool_size must be a positive number"),
        ({"allowed_origins": "https://a"}, {}, "'allowed_origins' must be a list"),
        ({"token_cache_seconds": -1}, {}, "token_cache_seconds cannot be negative"),
        ({}, {"AIRLOCK_TOKEN_CACHE_SECONDS": "soon"}, "token_cache_seconds must be a number of seconds"),
        ({"audit": {"store_arguments": "yes"}}, {}, "'store_arguments' must be true or false"),
        ({"audit": {"store_values": True}}, {}, "[audit] accepts only store_arguments"),
        ({"approvals": 5}, {}, "[approvals] must be a table"),
        ({"approvals": {"hold": 5}}, {}, "[approvals] has an unknown setting 'hold'"),
        ({"approvals": {"hold_seconds": 0}}, {}, "approvals.hold_seconds must be a positive number"),
        ({"approvals": {"hold_seconds": "long"}}, {}, "approvals.hold_seconds must be a number of seconds"),
        ({"approvals": {"max_pending_per_agent": 0}}, {}, "approvals.max_pending_per_agent must be a positive number"),
        ({"agents": {"bot": {"hold": 1}}}, {}, "[agents.bot] accepts only hold_seconds"),
        ({"agents": {"bot": {"hold_seconds": -5}}}, {}, "agents.bot.hold_seconds must be a positive number"),
        ({"agents": []}, {}, "[agents] must be a table"),
        ({"reviewers": []}, {}, "[reviewers] must be a table of reviewer names"),
        ({"reviewers": {"alice": {"team": ["sre"]}}}, {}, "[reviewers.alice] accepts only groups"),
        ({"reviewers": {"alice": {"groups": "sre"}}}, {}, "reviewers.alice.groups must be a list of group names"),
        ({"slack": 1}, {}, "[slack] must be a table"),
        ({}, {"AIRLOCK_SECRET_KEY": "short"}, "AIRLOCK_SECRET_KEY must be at least 32 random characters"),
        ({}, {"AIRLOCK_SECRET_KEY": "changeme"}, "AIRLOCK_SECRET_KEY must be at least 32 random characters"),
    ],
)
def test_every_invalid_setting_is_one_sentence_saying_what_is_wrong(
    tmp_path: Path, doc: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    assert expected in config_error(tmp_path, document(**doc), **env)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"approvals": {"max_pending_per_agent": "lots"}}, "max_pending_per_agent"),
        ({"approvals": {"max_pending_per_agent": True}}, "max_pending_per_agent"),
        ({"approvals": {"sse_retry_ms": "soon"}}, "sse_retry_ms"),
        ({"approvals": {"sse_retry_ms": 1.5}}, "sse_retry_ms"),
        ({"approvals": {"hold_seconds": float("nan")}}, "hold_seconds"),
        ({"approvals": {"timeout_seconds": float("inf")}}, "timeout_seconds"),
        ({"token_cache_seconds": float("nan")}, "token_cache_seconds"),
        ({"allowed_origins": ["https://ok.example", 7]}, "allowed_origins"),
        ({"allowed_origins": ["not a url"]}, "allowed_origins"),
    ],
)
def test_settings_a_toml_file_can_hold_but_that_make_no_sense_are_refused_in_one_sentence(
    tmp_path: Path, doc: dict[str, Any], expected: str
) -> None:
    assert expected in config_error(tmp_path, document(**doc))


def test_without_a_secret_key_one_is_generated_privately_once_and_reused(tmp_path: Path) -> None:
    first = settings_from_document(document(), base_dir=tmp_path, env={})
    second = settings_from_document(document(), base_dir=tmp_path, env={})
    key_file = tmp_path / "data" / "secret_key"
    assert len(first.secret_key) >= 32 and first.secret_key == second.secret_key
    assert key_file.read_text(encoding="utf-8") == first.secret_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_an_empty_secret_key_file_is_never_used_as_the_key(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text("", encoding="utf-8")
    try:
        loaded = settings_from_document(document(), base_dir=tmp_path, env={})
    except ConfigError as error:
        one_sentence(error)
        return
    assert len(loaded.secret_key) >= 32


def test_require_upstreams_false_allows_a_config_without_upstreams(tmp_path: Path) -> None:
    loaded = settings_from_document({}, base_dir=tmp_path, env=ENV, require_upstreams=False)
    assert loaded.upstreams == ()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no configuration file at"),
        ("port = ", "is not valid TOML"),
        ("[[upstreams]\n", "is not valid TOML"),
        ("port = 1\nport = 2\n", "is not valid TOML"),
    ],
)
def test_a_missing_or_malformed_file_is_one_sentence(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "airlock.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env=ENV)
    assert expected in one_sentence(refused.value)


def test_a_directory_instead_of_a_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path, env=ENV)
    assert f"cannot read {tmp_path}" in one_sentence(refused.value)


def test_a_file_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "airlock.toml"
    path.write_bytes("# café\nport = 1\n".encode("latin-1"))
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env=ENV)
    assert "UTF-8" in one_sentence(refused.value)


def test_strict_arguments_is_on_unless_an_upstream_turns_it_off(tmp_path: Path) -> None:
    """Issue 10: checking arguments against the tool's inputSchema is per upstream, default on."""
    loaded = settings(tmp_path, {"upstreams": [upstream(), upstream(name="sloppy", strict_arguments=False)]})
    assert [u.strict_arguments for u in loaded.upstreams] == [True, False]


@pytest.mark.parametrize("value", ["false", 0, "no"])
def test_strict_arguments_must_be_true_or_false(tmp_path: Path, value: Any) -> None:
    message = config_error(tmp_path, {"upstreams": [upstream(strict_arguments=value)]})
    assert message == "upstream 'market' strict_arguments must be true or false"


# --------------------------------------------------------------------------- airlock.example.toml and .env.example

ROOT = Path(__file__).resolve().parents[1]
_COMMENTED_SETTING = re.compile(r"^# (\[\[?[\w.-]+\]\]?|[\w-]+ = .*)$")


def example_with_every_setting_uncommented() -> dict[str, Any]:
    text = (ROOT / "airlock.example.toml").read_text(encoding="utf-8")
    lines = [match.group(1) if (match := _COMMENTED_SETTING.match(line)) else line for line in text.splitlines()]
    return tomllib.loads("\n".join(lines))


def test_the_example_config_names_every_setting_config_py_accepts() -> None:
    """Issue 13, item 4: one source. A setting added to app/config.py fails here until the example has it."""
    document = example_with_every_setting_uncommented()
    assert set(document) == config._TOP_KEYS
    assert set(document["approvals"]) == config._APPROVAL_KEYS
    assert set(document["slack"]) == config._SLACK_KEYS
    assert set(document["webhook"]) == config._WEBHOOK_KEYS
    assert set(document["inbox"]) == config._INBOX_KEYS
    assert set(document["inbox"]["oidc"]) == config._INBOX_OIDC_KEYS
    assert set(document["sessions"]) == {f.name for f in dataclasses.fields(SessionSettings)}
    assert set(document["tasks"]) == {f.name for f in dataclasses.fields(TaskSettings)}
    assert set(document["server"]) == {f.name for f in dataclasses.fields(ServerSettings)}
    assert set(document["audit"]) == {"store_arguments", "retention_days"}
    assert [set(agent) for agent in document["agents"].values()] == [{"hold_seconds"}]
    http_table, stdio_table = document["upstreams"]
    http_fields = {f.name for f in dataclasses.fields(UpstreamSettings)} - {"stdio"}
    assert set(http_table) == http_fields
    stdio_fields = {f.name for f in dataclasses.fields(StdioSettings)}
    assert set(stdio_table) == (http_fields - {"url", "headers"}) | stdio_fields


def test_the_defaults_the_example_config_shows_are_the_defaults(tmp_path: Path) -> None:
    loaded = settings_from_document(
        example_with_every_setting_uncommented(),
        base_dir=tmp_path,
        env={
            **ENV,
            "EM_API_TOKEN": "t",
            "GITHUB_TOKEN": "g",
            "AIRLOCK_WEBHOOK_SECRET": KEY,
            "AIRLOCK_WEBHOOK_DECISION_SECRET": KEY,
            "AIRLOCK_INBOX_OIDC_CLIENT_SECRET": KEY,
            "AIRLOCK_OAUTH_INTROSPECTION_CLIENT_SECRET": KEY,
        },
    )
    defaults = Settings()
    assert loaded.inbox_oidc is not None
    assert loaded.inbox_oidc == config.InboxOidcSettings(
        issuer=loaded.inbox_oidc.issuer,
        client_id=loaded.inbox_oidc.client_id,
        client_secret=KEY,
        allowed_groups=loaded.inbox_oidc.allowed_groups,
    )
    assert loaded.approvals == dataclasses.replace(
        ApprovalSettings(), agent_hold_seconds=loaded.approvals.agent_hold_seconds
    )
    assert (loaded.sessions, loaded.server, loaded.tasks) == (SessionSettings(), ServerSettings(), TaskSettings())
    slack_timings = [f.name for f in dataclasses.fields(SlackSettings) if f.name.endswith("_seconds")] + ["api_url"]
    assert {k: getattr(loaded.slack, k) for k in slack_timings} == {
        k: getattr(SlackSettings(), k) for k in slack_timings
    }
    assert loaded.webhook is not None
    webhook_defaults = config.WebhookSettings(url=loaded.webhook.url, secret=KEY, decision_secret=KEY)
    assert loaded.webhook == webhook_defaults
    for name in (
        "host",
        "port",
        "database_pool_size",
        "max_body_bytes",
        "max_response_bytes",
        "token_cache_seconds",
        "audit_store_arguments",
        "audit_retention_days",
    ):
        assert getattr(loaded, name) == getattr(defaults, name), name
    assert loaded.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'airlock.db'}"
    market, files = loaded.upstreams
    assert (market.timeout_seconds, market.strict_arguments) == (300.0, True)
    assert files.stdio is not None
    defaults_stdio = StdioSettings(command=())
    assert (files.stdio.max_processes, files.stdio.idle_seconds) == (
        defaults_stdio.max_processes,
        defaults_stdio.idle_seconds,
    )


def test_the_example_config_works_as_it_is(tmp_path: Path) -> None:
    loaded = load_settings(ROOT / "airlock.example.toml", env=ENV)
    assert [u.name for u in loaded.upstreams] == ["execution-market"]


def test_env_example_lists_every_environment_variable_config_py_reads() -> None:
    read = set(re.findall(r'env\.get\("([A-Z_]+)"', inspect.getsource(config)))
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(encoding="utf-8"), re.MULTILINE))
    assert read and read - listed == set()


def test_reviewer_groups_are_read_by_identity_for_quorum_rules(tmp_path: Path) -> None:
    """Issue 18, item 2: `[reviewers.NAME] groups`, keyed as identities are compared (NFKC, case folded)."""
    loaded = settings_from_document(
        document(reviewers={"Alice": {"groups": ["sre", "db"]}, "bob": {}}),
        base_dir=tmp_path,
        env=ENV,
    )
    assert loaded.reviewer_groups == {"alice": frozenset({"sre", "db"}), "bob": frozenset()}


def test_tasks_settings_are_read_from_their_table_and_validated(tmp_path: Path) -> None:
    """Issue 17: `[tasks]` bounds a task's life and suggests the poll interval."""
    loaded = settings(tmp_path, document(tasks={"max_ttl_seconds": 3600, "poll_interval_ms": 2000}))
    assert loaded.tasks == TaskSettings(max_ttl_seconds=3600, poll_interval_ms=2000)
    assert (
        config_error(tmp_path, document(tasks={"poll_interval": 1})) == "[tasks] has an unknown setting 'poll_interval'"
    )
    assert "tasks.poll_interval_ms" in config_error(tmp_path, document(tasks={"poll_interval_ms": 0}))
