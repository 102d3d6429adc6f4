"""`python -m bench.run` (or `make bench`): measure Airlock's cost, print a table, write JSON.

Starts the upstreams (the official SDK server, `bench/sdk_upstream.py`, and the demo), the floor
proxy (`bench/floor.py`), Airlock (SQLite) and, unless disabled, IBM ContextForge, each in its own
process, then measures:

1. allowed-call overhead (direct / floor / ContextForge / Airlock, in alternating rounds; both
   eras; concurrency 1 and 32; CPU ms per call of the client, the upstream and the gateway, then
   p50/p99 and throughput as ratios to direct);
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
from bench import arguments_cost, decisions, holding, oauth_cost, policy_cost
from bench.load import ToolCallSpec
from bench.overhead import Target, compare, summarise
from bench.procs import (
    Process,
    airlock_config,
    airlock_process,
    floor_process,
    free_port,
    sdk_upstream_process,
    upstream_process,
)

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
VARIANTS: dict[str, str] = {
    "airlock, metrics off": "\n[metrics]\nenabled = false\n",
    # Spans are made and ended, but not exported (no OTLP collector here): the export's own cost,
    # batched in a background thread, is not in these figures.
    "airlock, tracing on": '\n[tracing]\nenabled = true\nexporter = "none"\n',
}
"""Airlock configured otherwise, measured next to the default (`airlock`: metrics on, tracing off)."""
TARGETS = {
    "airlock_cpu_ms_per_call_c32": 0.30,
    "added_latency_p50_ms": 1.0,
    "throughput_ratio_c32": 0.70,
    "memory_per_held_call_kb": 50.0,
    "allowed_p99_while_holding_ms": 10.0,
    "decision_to_result_p99_sqlite_ms": 50.0,
    "decision_to_result_p99_replicas_ms": 100.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per overhead cell")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 32],
        help="concurrencies of the overhead cells (e.g. `--concurrency 32` for a quick CPU comparison)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the overhead cells (medians)")
    parser.add_argument(
        "--upstream",
        choices=("sdk", "demo", "both"),
        default="both",
        help="the upstream(s) of the overhead phase: the official SDK server, the demo, or both in turn",
    )
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
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="TREE",
        help="also measure Airlock from another checkout (e.g. a `git worktree` of main) in the same rounds",
    )
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help="skip Airlock with metrics off and with tracing on (measured by default, in the same rounds)",
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


async def start_airlock(
    name: str, work: Path, database_url: str, upstream_url: str, tree: Path | None = None, extra: str = ""
) -> Process:
    work.mkdir(parents=True, exist_ok=True)
    config = airlock_config(
        work, database_url=database_url, upstream_url=upstream_url, policy=POLICY, approvals=APPROVALS, extra=extra
    )
    return await airlock_process(name, config, free_port(), work, tree).start()


def port_of(process: Process) -> int:
    return int(process.health_url.split(":")[2].split("/")[0])


def load_now(report: dict[str, Any], phase: str) -> None:
    """Record and print the machine's load average before a phase: a loaded machine skews latency."""
    load = [round(x, 2) for x in os.getloadavg()]
    report.setdefault("load", {})[phase] = load
    print(f"load average before {phase}: {load[0]} {load[1]} {load[2]} ({os.cpu_count()} cores)", flush=True)


async def overhead_phase(kind: str, args: argparse.Namespace, work: Path, upstream: Process) -> list[dict[str, Any]]:
    """Direct, floor, (ContextForge,) Airlock in front of one upstream, in alternating rounds."""
    phase = work / kind
    phase.mkdir(parents=True, exist_ok=True)
    upstream_url = f"http://127.0.0.1:{port_of(upstream)}/mcp"
    sqlite_url = f"sqlite+aiosqlite:///{phase}/airlock.db"
    agent, _ = await issue_tokens(sqlite_url)
    started: list[Process] = []
    try:
        floor = await floor_process(f"floor-{kind}", free_port(), upstream_url, agent, [ALLOWED["tool"]], phase).start()
        started.append(floor)
        airlock = await start_airlock(f"airlock-{kind}", phase / "airlock", sqlite_url, upstream_url)
        started.append(airlock)

        def target(name: str, url: str, token: str | None, pid: int | None = None) -> Target:
            tool, arguments = ALLOWED["tool"], ALLOWED["arguments"]
            return Target(
                name, url, token, tool, arguments, pid, warmup=args.warmup, upstream_pid=upstream.pid, upstream=kind
            )

        targets = [
            target("direct", upstream_url, None),
            target("floor", f"http://127.0.0.1:{port_of(floor)}/mcp", agent, floor.pid),
        ]
        if not args.no_contextforge:
            from bench.contextforge import start_contextforge

            forge, forge_target = await start_contextforge(upstream_url, phase / "contextforge", phase)
            started.append(forge)
            forge_target.warmup = max(5.0, args.warmup)  # it opens an upstream session per new client session
            forge_target.upstream_pid, forge_target.upstream = upstream.pid, kind
            targets.append(forge_target)
        if args.baseline is not None:
            # Same database and token: only the code differs, and both run in the same rounds.
            base = await start_airlock(f"baseline-{kind}", phase / "baseline", sqlite_url, upstream_url, args.baseline)
            started.append(base)
            targets.append(
                target("baseline", f"http://127.0.0.1:{port_of(base)}/mcp/execution-market", agent, base.pid)
            )
        if not args.no_variants:
            # What observability costs per call: the default has metrics on and tracing off.
            for name, extra in VARIANTS.items():
                slug = name.replace(", ", "-").replace(" ", "-")
                variant = await start_airlock(f"{slug}-{kind}", phase / slug, sqlite_url, upstream_url, extra=extra)
                started.append(variant)
                targets.append(
                    target(name, f"http://127.0.0.1:{port_of(variant)}/mcp/execution-market", agent, variant.pid)
                )
        airlock_url = f"http://127.0.0.1:{port_of(airlock)}/mcp/execution-market"
        targets.append(target("airlock", airlock_url, agent, airlock.pid))
        print(f"measuring allowed-call overhead against the {kind} upstream …", flush=True)
        cells = await compare(targets, seconds=args.seconds, rounds=args.rounds, concurrencies=tuple(args.concurrency))
        return [cell.as_dict() for cell in cells]
    finally:
        for process in reversed(started):
            process.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    processes: list[Process] = []
    report: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "targets": TARGETS,
    }
    try:
        upstreams = {
            "sdk": lambda: sdk_upstream_process(free_port(), work),
            "demo": lambda: upstream_process(free_port(), work),
        }
        kinds = ("sdk", "demo") if args.upstream == "both" else (args.upstream,)
        running: dict[str, Process] = {}
        for kind in kinds if args.only == "overhead" else (*kinds, "demo"):
            if kind not in running:
                running[kind] = await upstreams[kind]().start()
                processes.append(running[kind])
        cells: list[dict[str, Any]] = []
        for kind in kinds:
            load_now(report, f"overhead ({kind} upstream)")
            cells += await overhead_phase(kind, args, work, running[kind])
        report["overhead_rounds"] = cells
        report["overhead"] = summarise(cells)
        if args.only == "overhead":
            return report
        await later_phases(args, work, running["demo"], processes, report)
    finally:
        for process in reversed(processes):
            process.stop()
    return report


async def later_phases(
    args: argparse.Namespace, work: Path, upstream: Process, processes: list[Process], report: dict[str, Any]
) -> None:
    """Policy and argument costs, decision to result, holding: against the demo upstream."""
    upstream_url = f"http://127.0.0.1:{port_of(upstream)}/mcp"
    sqlite_url = f"sqlite+aiosqlite:///{work}/airlock.db"
    agent, reviewer = await issue_tokens(sqlite_url)
    airlock = await start_airlock("airlock", work / "airlock", sqlite_url, upstream_url)
    processes.append(airlock)
    airlock_port = port_of(airlock)
    airlock_mcp = f"http://127.0.0.1:{airlock_port}/mcp/execution-market"
    load_now(report, "policy and argument costs")
    print("measuring policy decisions …", flush=True)
    report["policy_decision"] = policy_cost.run()
    print("measuring argument validation …", flush=True)
    report["argument_validation"] = arguments_cost.run()
    print("measuring agent authentication (static token, JWT) …", flush=True)
    report["agent_authentication"] = await oauth_cost.measure(max(200, args.trials * 25))
    load_now(report, "decision to result (SQLite)")
    print("measuring decision to result (SQLite) …", flush=True)
    base = f"http://127.0.0.1:{airlock_port}"
    report["decision_to_result_sqlite"] = await decisions.run(
        base, base, agent, reviewer, upstream_url, trials=args.trials
    )
    if not args.no_postgres:
        load_now(report, "decision to result (replicas)")
        print("measuring decision to result (two replicas on PostgreSQL) …", flush=True)
        report["decision_to_result_replicas"] = await replicas_phase(args, work, upstream_url, processes)
    load_now(report, "holding")
    print(f"holding {args.held} calls …", flush=True)
    report["holding"] = await holding.run(
        airlock_mcp, agent, airlock.pid, count=args.held, allowed=ALLOWED, seconds=args.seconds, warmup=args.warmup
    )


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
    for m in report.get("overhead", []):
        if m["target"] != "airlock":
            continue
        where = f"[{m['era']}, {m['upstream']}]"
        if m["concurrency"] == 1 and "added_p50_ms" in m:
            out[f"added_latency_p50_ms{where}"] = _verdict(
                m["added_p50_ms"], TARGETS["added_latency_p50_ms"], below=True
            )
        if m["concurrency"] == 32 and m.get("throughput_ratio") is not None:
            ratio = m["throughput_ratio"]
            out[f"throughput_ratio_c32{where}"] = _verdict(ratio, TARGETS["throughput_ratio_c32"], below=False)
        if m["concurrency"] == 32 and m["gateway_cpu_ms_per_call"] is not None:
            cpu = m["gateway_cpu_ms_per_call"]
            out[f"airlock_cpu_ms_per_call_c32{where}"] = _verdict(
                cpu, TARGETS["airlock_cpu_ms_per_call_c32"], below=True
            )
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


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"Python {report['machine']['python']}, {report['machine']['date']}",
        "",
        f"Load average before each phase: {report.get('load', {})}",
        "",
        "CPU ms per call, per process (median over rounds; lower is better):",
        "",
        "| upstream | era | c | target | client | upstream | gateway | total |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for m in report.get("overhead", []):
        cpu = m["cpu_ms_per_call"]
        cells = [f"{cpu[role]:.3f}" if role in cpu else "" for role in ("client", "upstream", "gateway")]
        lines.append(
            f"| {m['upstream']} | {m['era']} | {m['concurrency']} | {m['target']} | {' | '.join(cells)} | "
            f"{sum(cpu.values()):.3f} |"
        )
    lines += [
        "",
        "Latency and throughput (median over rounds), and as compared with direct:",
        "",
        "| upstream | era | c | target | p50 ms | p99 ms | calls/s | added p50 | added p99 | share of direct |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report.get("overhead", []):
        ratio = m.get("throughput_ratio")
        lines.append(
            f"| {m['upstream']} | {m['era']} | {m['concurrency']} | {m['target']} | {m['p50_ms']:.2f} | "
            f"{m['p99_ms']:.2f} | {m['throughput']:.0f} | {_ms(m.get('added_p50_ms'))} | "
            f"{_ms(m.get('added_p99_ms'))} | {'' if ratio is None else f'{ratio:.0%}'} |"
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
    authentication = report.get("agent_authentication", {}).get("us_per_call", {})
    if authentication:
        lines += [
            "",
            "Agent authentication (µs per call): " + ", ".join(f"{k} {v:.1f}" for k, v in authentication.items()),
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
