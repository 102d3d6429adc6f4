"""`airlock policy check` warnings and `--upstream`, and `airlock policy explain`, against the demo upstream.

Airlock-defined. The upstream is the demo market on a loopback port (`upstream_url` in conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.harness import DEFAULT_POLICY
from tests.test_cli import acli, cli, one_line_error

SHADOWED_POLICY = {
    "version": "1",
    "hide": ["em_rate_worker"],
    "rules": [
        {"tool": "em_get_*", "action": "allow"},
        {"tool": "em_get_task", "agents": ["intern-bot"], "action": "deny"},
        {"tool": "em_rate_worker", "action": "allow"},
        {"tool": "*", "action": "deny"},
        {"tool": "em_cancel_task", "action": "approve"},
    ],
}
ANNOTATED_POLICY = {
    "version": "1",
    "default": "deny",
    "annotation_defaults": {"read_only": "allow"},
    "rules": [
        {"tool": "em_publish_task", "when": {"bounty": {"gt": 100}}, "action": "approve"},
        {"tool": "em_publsh_task", "action": "allow"},
    ],
}


def write(
    directory: Path, policy: dict[str, Any], upstream_url: str = "http://127.0.0.1:9/mcp", strict_arguments: bool = True
) -> Path:
    path = directory / "policy.json"
    path.write_text(json.dumps(policy), encoding="utf-8")
    config = directory / "airlock.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{directory / "cli.db"}"\n'
        f'[[upstreams]]\nname = "execution-market"\nurl = "{upstream_url}"\npolicy = "{path}"\n'
        f"strict_arguments = {'true' if strict_arguments else 'false'}\n",
        encoding="utf-8",
    )
    return config


def test_policy_check_warns_about_rules_that_never_match_with_their_location_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path, SHADOWED_POLICY)
    policy = tmp_path / "policy.json"
    result = cli("policy", "check", str(policy))
    assert result.exit_code == 0, result.output
    [ok, *warnings] = result.stdout.splitlines()
    assert ok.startswith(f"{policy}: ok (5 rules")
    assert [w.split(": ")[2] for w in warnings] == ["rules[1]", "rules[2]", "rules[4]"]
    assert all(w.startswith(f"{policy}: warning: ") for w in warnings)
    assert "hidden by hide[0]" in warnings[1] and "a catch-all" in warnings[2]


def test_policy_check_strict_fails_on_warnings_but_not_on_a_clean_policy(tmp_path: Path) -> None:
    write(tmp_path, SHADOWED_POLICY)
    assert cli("policy", "check", "--strict", str(tmp_path / "policy.json")).exit_code == 1
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(DEFAULT_POLICY), encoding="utf-8")
    assert cli("policy", "check", "--strict", str(clean)).exit_code == 0


async def test_policy_check_upstream_warns_about_tools_and_paths_the_upstream_lacks(
    tmp_path: Path, upstream_url: str
) -> None:
    config = write(tmp_path, ANNOTATED_POLICY, upstream_url)
    result = await acli("policy", "check", "--config", str(config), "--upstream", "execution-market")
    assert result.exit_code == 0, result.output
    warnings = [line.split(": warning: ", 1)[1] for line in result.stdout.splitlines() if ": warning: " in line]
    assert warnings == [
        'rules[0].when.bounty: the inputSchema of "em_publish_task" declares no argument at this path; the '
        "condition reads a missing argument (indeterminate) on every valid call",
        'rules[1].tool: "em_publsh_task" matches no tool of upstream execution-market',
    ]
    strict = await acli("policy", "check", "--config", str(config), "--upstream", "execution-market", "--strict")
    assert strict.exit_code == 1


async def test_policy_check_upstream_of_the_test_default_policy_is_clean(tmp_path: Path, upstream_url: str) -> None:
    config = write(tmp_path, DEFAULT_POLICY, upstream_url)
    result = await acli("policy", "check", "--strict", "--config", str(config), "--upstream", "execution-market")
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_policy_check_upstream_that_is_down_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write(tmp_path, DEFAULT_POLICY)
    line = one_line_error(cli("policy", "check", "--config", str(config), "--upstream", "execution-market"))
    assert "cannot list the tools of upstream 'execution-market'" in line


def test_policy_check_needs_files_or_an_upstream(tmp_path: Path) -> None:
    assert "name policy FILES" in one_line_error(cli("policy", "check"))
    config = write(tmp_path, DEFAULT_POLICY)
    assert "no upstream named 'nope'" in one_line_error(
        cli("policy", "check", "--config", str(config), "--upstream", "nope")
    )


async def test_policy_explain_reads_annotations_from_the_upstream(tmp_path: Path, upstream_url: str) -> None:
    config = write(tmp_path, ANNOTATED_POLICY, upstream_url)
    result = await acli(
        "policy", "explain", "--config", str(config), "--agent", "bot", "em_get_task", '{"task_id": "x"}'
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "em_get_task by bot on execution-market: ALLOW"
    assert lines[1] == "  decided by annotation_defaults.read_only"
    assert "put the tool in class read_only" in result.stdout
    assert "arguments: conform to the tool's inputSchema" in result.stdout


async def test_policy_explain_json_reports_a_schema_refusal_before_the_policy(
    tmp_path: Path, upstream_url: str
) -> None:
    config = write(tmp_path, DEFAULT_POLICY, upstream_url)
    result = await acli(
        "policy",
        "explain",
        "--json",
        "--config",
        str(config),
        "--agent",
        "bot",
        "em_publish_task",
        '{"title": "t", "description": "d", "bounty_usd": "500"}',
    )
    body = json.loads(result.stdout)
    assert body["outcome"] == "invalid" and body["catalog"] == "fetched"
    assert body["decision"]["rule_id"] == "large-bounty"
    assert 'argument "bounty_usd" must be a number' in body["arguments_check"]["note"]


async def test_policy_explain_with_strict_arguments_off_does_not_check_the_schema(
    tmp_path: Path, upstream_url: str
) -> None:
    config = write(tmp_path, DEFAULT_POLICY, upstream_url, strict_arguments=False)
    result = await acli(
        "policy",
        "explain",
        "--json",
        "--config",
        str(config),
        "--agent",
        "bot",
        "em_publish_task",
        '{"bounty_usd": "500"}',
    )
    body = json.loads(result.stdout)
    assert body["outcome"] == "approve" and body["arguments_check"]["status"] == "not_checked"


def test_policy_explain_without_the_catalog_says_annotations_read_as_the_mcp_defaults(tmp_path: Path) -> None:
    config = write(tmp_path, ANNOTATED_POLICY)
    for extra in (["--no-fetch"], []):  # not asked, and the upstream is down (port 9)
        result = cli("policy", "explain", *extra, "--config", str(config), "--agent", "bot", "em_get_task")
        assert result.exit_code == 0, result.output
        assert "em_get_task by bot on execution-market: DENY" in result.stdout
        assert (
            "annotations are unknown, so annotation_defaults reads them as the MCP specification's defaults"
            in result.stdout
        )
        assert ("catalog: not fetched (--no-fetch)" if extra else "catalog: could not be fetched") in result.stdout


def test_policy_explain_with_another_policy_file(tmp_path: Path) -> None:
    config = write(tmp_path, ANNOTATED_POLICY)
    other = tmp_path / "edit.json"
    other.write_text(json.dumps(DEFAULT_POLICY), encoding="utf-8")
    result = cli(
        "policy",
        "explain",
        "--no-fetch",
        "--config",
        str(config),
        "--policy",
        str(other),
        "--agent",
        "intern-bot",
        "em_publish_task",
    )
    assert 'decided by rules[0] (id "interns-cannot-publish"): interns cannot publish' in result.stdout


def test_policy_explain_refuses_arguments_that_are_not_a_json_object_in_one_line(tmp_path: Path) -> None:
    config = write(tmp_path, DEFAULT_POLICY)
    for arguments in ("[1]", "{bad"):
        line = one_line_error(
            cli("policy", "explain", "--no-fetch", "--config", str(config), "--agent", "bot", "em_get_task", arguments)
        )
        assert "ARGUMENTS must be a JSON object" in line


def test_policy_explain_is_a_documented_command() -> None:
    from tests.test_cli import ALL_COMMANDS

    assert ("policy", "explain") in ALL_COMMANDS and ("policy", "check") in ALL_COMMANDS
