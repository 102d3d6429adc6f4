"""`python -m bench.run` (or `make bench`): measure Airlock's cost, print a table, write JSON.

Starts the demo upstream, Airlock (SQLite) and, unless disabled, IBM ContextForge, each in its own
process, then measures:

1. allowed-call overhead (direct / ContextForge / Airlock; both eras; concurrency 1 and 32;
   p50/p99, throughput, gateway CPU per call);
2. policy decision cost (seed-sized and 1,000-rule policies);
3. decision to result (SQLite, one process; and PostgreSQL, held on one replica, decided on another);
4. holding: memory per held call, and allowed-call latency while N calls are held.

See bench/README.md for the targets and bench/RESULTS.md for the latest figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.auth import Credentials
from app.store.db import Database
from app.store.migrate import upgrade
from bench import arguments_cost, decisions, holding, policy_cost
from bench.load import ToolCallSpec
from bench.overhead import Target, compare
from bench.procs import Process, airlock_config, airlock_process, free_port, upstream_process

TASK_ID = "7f1c2a9e-0b5d-4c61-9e2f-5a8d3b6c4e10"  # seeded by the demo upstream
ALLOWED: ToolCallSpec = {"tool": "em_get_task", "arguments": {"task_id": TASK_ID}}
POLICY = {
    "version": "1",
    "default": "deny",
    "rules": [
        {"tool": "em_get_task", "action": "allow"},
        {"tool": "em_cancel_task", "action": "approve", "reason": "bench", "timeout": 86400},
    ],
}
APPROVALS = {"hold_seconds": 3600, "cancel_grace_seconds": 3600, "safety_poll_seconds": 5}
TARGETS = {
    "added_latency_p50_ms": 1.0,
    "throughput_ratio_c32": 0.70,
    "memory_per_held_call_kb": 50.0,
    "allowed_p99_while_holding_ms": 10.0,
    "decision_to_result_p99_sqlite_ms": 50.0,
    "decision_to_result_p99_replicas_ms": 100.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per overhead cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of calls before each measurement")
    parser.add_argument("--held", type=int, default=10_000, help="calls to hold in the holding phase")
    parser.add_argument("--trials", type=int, default=200, help="decision-to-result trials per backend")
    parser.add_argument("--no-contextforge", action="store_true", help="skip the ContextForge peer")
    parser.add_argument("--no-postgres", action="store_true", help="skip the two-replica PostgreSQL phase")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AIRLOCK_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument(
        "--only",
        choices=("overhead",),
        default=None,
        help="measure only this phase (a quick before/after comparison on a shared machine)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"), help="where to write JSON")
    return parser.parse_args(argv)


async def issue_tokens(database_url: str) -> tuple[str, str]:
    await asyncio.to_thread(upgrade, database_url)
    db = Database(database_url)
    try:
        credentials = Credentials(db, cache_seconds=0)
        return (
            (await credentials.issue_agent_token("bench-agent")).token,
            (await credentials.add_reviewer("bench-reviewer")).token,
        )
    finally:
        await db.dispose()


async def start_airlock(name: str, work: Path, database_url: str, upstream_url: str) -> Process:
    work.mkdir(parents=True, exist_ok=True)
    config = airlock_config(
        work, database_url=database_url, upstream_url=upstream_url, policy=POLICY, approvals=APPROVALS
    )
    return await airlock_process(name, config, free_port(), work).start()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    processes: list[Process] = []
    report: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "targets": TARGETS,
    }
    try:
        up_port = free_port()
        upstream = await upstream_process(up_port, work).start()
        processes.append(upstream)
        upstream_url = f"http://127.0.0.1:{up_port}/mcp"
        sqlite_url = f"sqlite+aiosqlite:///{work}/airlock.db"
        agent, reviewer = await issue_tokens(sqlite_url)
        airlock = await start_airlock("airlock", work / "airlock", sqlite_url, upstream_url)
        processes.append(airlock)
        airlock_port = int(airlock.health_url.split(":")[2].split("/")[0])
        targets = [Target("direct", upstream_url, None, pid=upstream.pid, **ALLOWED)]
        if not args.no_contextforge:
            from bench.contextforge import start_contextforge

            forge, forge_target = await start_contextforge(upstream_url, work / "contextforge", work)
            forge_target.warmup = 5.0  # it opens an upstream session on each new client session's first call
            processes.append(forge)
            targets.append(forge_target)
        airlock_mcp = f"http://127.0.0.1:{airlock_port}/mcp/execution-market"
        targets.append(Target("airlock", airlock_mcp, agent, pid=airlock.pid, **ALLOWED))
        print("measuring allowed-call overhead …", flush=True)
        for target in targets:
            target.warmup = max(target.warmup, args.warmup) if target.name == "contextforge" else args.warmup
        report["overhead"] = [m.as_dict() for m in await compare(targets, seconds=args.seconds)]
        if args.only == "overhead":
            return report
        print("measuring policy decisions …", flush=True)
        report["policy_decision"] = policy_cost.run()
        print("measuring argument validation …", flush=True)
        report["argument_validation"] = arguments_cost.run()
        print("measuring decision to result (SQLite) …", flush=True)
        base = f"http://127.0.0.1:{airlock_port}"
        report["decision_to_result_sqlite"] = await decisions.run(
            base, base, agent, reviewer, upstream_url, trials=args.trials
        )
        if not args.no_postgres:
            print("measuring decision to result (two replicas on PostgreSQL) …", flush=True)
            report["decision_to_result_replicas"] = await replicas_phase(args, work, upstream_url, processes)
        print(f"holding {args.held} calls …", flush=True)
        report["holding"] = await holding.run(
            airlock_mcp, agent, airlock.pid, count=args.held, allowed=ALLOWED, seconds=args.seconds, warmup=args.warmup
        )
    finally:
        for process in reversed(processes):
            process.stop()
    return report


async def replicas_phase(
    args: argparse.Namespace, work: Path, upstream_url: str, processes: list[Process]
) -> dict[str, Any]:
    import asyncpg

    schema = f"airlock_bench_{secrets.token_hex(4)}"
    dsn = "postgresql://" + args.postgres_url.split("://", 1)[1].split("?", 1)[0]
    connection = await asyncpg.connect(dsn)
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{args.postgres_url}?search_path={schema}"
    try:
        agent, reviewer = await issue_tokens(url)
        a = await start_airlock("replica-a", work / "replica-a", url, upstream_url)
        b = await start_airlock("replica-b", work / "replica-b", url, upstream_url)
        processes.extend([a, b])
        hold_url, decide_url = (p.health_url.rsplit("/healthz", 1)[0] for p in (a, b))
        return await decisions.run(hold_url, decide_url, agent, reviewer, upstream_url, trials=args.trials)
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    """Each target: the measured figure and whether it is met."""
    out: dict[str, Any] = {}
    cells = {(m["target"], m["era"], m["concurrency"]): m for m in report.get("overhead", [])}
    for era in ("modern", "legacy"):
        direct1, airlock1 = cells.get(("direct", era, 1)), cells.get(("airlock", era, 1))
        if direct1 and airlock1:
            added = airlock1["p50_ms"] - direct1["p50_ms"]
            out[f"added_latency_p50_ms[{era}]"] = _verdict(added, TARGETS["added_latency_p50_ms"], below=True)
        direct32, airlock32 = cells.get(("direct", era, 32)), cells.get(("airlock", era, 32))
        if direct32 and airlock32 and direct32["throughput"]:
            ratio = airlock32["throughput"] / direct32["throughput"]
            out[f"throughput_ratio_c32[{era}]"] = _verdict(ratio, TARGETS["throughput_ratio_c32"], below=False)
    if "holding" in report:
        held = report["holding"]
        out["memory_per_held_call_kb"] = _verdict(
            held["memory_per_held_call_kb"], TARGETS["memory_per_held_call_kb"], below=True
        )
        # The target is the latency of an allowed call; at concurrency 1 it is not mixed with queueing
        # behind other calls (the c=8 figures, idle and holding, are in the report for comparison).
        p99 = held["allowed_while_holding_c1"]["p99_ms"]
        out["allowed_p99_while_holding_ms"] = _verdict(p99, TARGETS["allowed_p99_while_holding_ms"], below=True)
    for key, target in (
        ("decision_to_result_sqlite", "decision_to_result_p99_sqlite_ms"),
        ("decision_to_result_replicas", "decision_to_result_p99_replicas_ms"),
    ):
        if key in report:
            out[target] = _verdict(report[key]["p99_ms"], TARGETS[target], below=True)
    return out


def _verdict(value: float, target: float, *, below: bool) -> dict[str, Any]:
    return {"value": round(value, 3), "target": target, "met": value <= target if below else value >= target}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"Python {report['machine']['python']}, {report['machine']['date']}",
        "",
        "| era | c | target | p50 ms | p99 ms | calls/s | gateway CPU ms/call |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for m in report.get("overhead", []):
        cpu = (
            ""
            if m["target"] == "direct" or m["gateway_cpu_ms_per_call"] is None
            else f"{m['gateway_cpu_ms_per_call']:.2f}"
        )
        lines.append(
            f"| {m['era']} | {m['concurrency']} | {m['target']} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['throughput']:.0f} | {cpu} |"
        )
    lines += ["", "| target | measured | goal | met |", "|---|---:|---:|---|"]
    for name, verdict in report.get("verdicts", {}).items():
        lines.append(f"| {name} | {verdict['value']} | {verdict['target']} | {'yes' if verdict['met'] else 'NO'} |")
    policy = report.get("policy_decision", {})
    if policy:
        lines += ["", "Policy decision (µs): " + ", ".join(f"{k} {v}" for k, v in policy.items())]
    validation = report.get("argument_validation", {})
    if validation:
        lines += [
            "",
            "Argument validation against inputSchema (µs per call): "
            + ", ".join(f"{k} {v}" for k, v in validation.items()),
        ]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = asyncio.run(main(args))
    report["verdicts"] = verdicts(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(report))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    run()
