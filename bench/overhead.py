"""Allowed-call overhead: the same `tools/call`, direct to the upstream and through each proxy.

Targets (direct, the floor proxy, Airlock, optionally ContextForge) run in alternating rounds:
each round measures every (era, concurrency) cell for every target, the targets' order rotating
from round to round, so drift of a shared machine hits every target alike; each figure reported
is the median over the rounds.

The headline is CPU time per call of each process (the load generator, the upstream, the
gateway), read from /proc (per-thread schedstat, in ns) around each cell's measured window: on 2 cores those processes share
the CPU, so latency and throughput depend on the harness and the machine's load, and CPU per
call does much less. Latency and throughput follow, as ratios to direct.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.load import Run, measure
from bench.procs import cpu_seconds_precise

ROLES = ("client", "upstream", "gateway")


@dataclass
class Target:
    name: str
    url: str
    token: str | None
    tool: str
    arguments: dict[str, Any]
    pid: int | None = None
    """The gateway's process (None for direct)."""
    eras: tuple[str, ...] = ("modern", "legacy")
    warmup: float = 1.0
    """Seconds of calls before measuring (a gateway that opens upstream sessions lazily needs more)."""
    upstream_pid: int | None = None
    upstream: str = "demo"
    """Which upstream this target reaches (`sdk` or `demo`): cells are compared within one upstream."""


@dataclass
class Measurement:
    upstream: str
    target: str
    era: str
    concurrency: int
    round: int
    run: Run
    cpu_ms_per_call: dict[str, float]
    load_1min: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "target": self.target,
            "era": self.era,
            "concurrency": self.concurrency,
            "round": self.round,
            "load_1min": round(self.load_1min, 2),
            "calls": self.run.calls,
            "errors": self.run.errors,
            "seconds": round(self.run.seconds, 3),
            "throughput": round(self.run.throughput, 1),
            "p50_ms": round(self.run.percentile(50), 3),
            "p99_ms": round(self.run.percentile(99), 3),
            "cpu_ms_per_call": {role: round(ms, 4) for role, ms in self.cpu_ms_per_call.items()},
        }


@dataclass
class CpuWindow:
    """CPU seconds of some processes between `start()` and `stop()`."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {role: cpu_seconds_precise(pid) for role, pid in self.pids.items()}

    def stop(self) -> None:
        self.used = {role: cpu_seconds_precise(pid) - self.before[role] for role, pid in self.pids.items()}

    def ms_per_call(self, calls: int) -> dict[str, float]:
        return {role: seconds * 1000 / calls for role, seconds in self.used.items()} if calls else {}


async def compare(
    targets: list[Target],
    *,
    eras: tuple[str, ...] = ("modern", "legacy"),
    concurrencies: tuple[int, ...] = (1, 32),
    seconds: float = 5.0,
    rounds: int = 1,
) -> list[Measurement]:
    """Every cell of every target, `rounds` times over, alternating targets within each cell."""
    results: list[Measurement] = []
    for number in range(rounds):
        order = targets[number % len(targets) :] + targets[: number % len(targets)]
        for era in eras:
            for concurrency in concurrencies:
                for target in order:
                    if era in target.eras:
                        results.append(await _cell(target, era, concurrency, seconds, number))
    return results


async def _cell(target: Target, era: str, concurrency: int, seconds: float, number: int) -> Measurement:
    pids = {"client": os.getpid()}
    if target.upstream_pid:
        pids["upstream"] = target.upstream_pid
    if target.pid:
        pids["gateway"] = target.pid
    window = CpuWindow(pids)
    load = os.getloadavg()[0]
    run = await measure(
        target.url,
        era=era,
        concurrency=concurrency,
        seconds=seconds,
        token=target.token,
        tool=target.tool,
        arguments=target.arguments,
        warmup=target.warmup,
        on_window=(window.start, window.stop),
    )
    cpu = window.ms_per_call(run.calls + run.errors)
    return Measurement(target.upstream, target.name, era, concurrency, number, run, cpu, load)


def summarise(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over rounds of each (upstream, target, era, concurrency), with ratios to direct."""
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((cell["upstream"], cell["target"], cell["era"], cell["concurrency"]), []).append(cell)
    summary = [_median_cell(key, group) for key, group in groups.items()]
    direct = {(s["upstream"], s["era"], s["concurrency"]): s for s in summary if s["target"] == "direct"}
    for s in summary:
        base = direct.get((s["upstream"], s["era"], s["concurrency"]))
        if base is not None and s["target"] != "direct":
            s["added_p50_ms"] = round(s["p50_ms"] - base["p50_ms"], 3)
            s["added_p99_ms"] = round(s["p99_ms"] - base["p99_ms"], 3)
            s["throughput_ratio"] = round(s["throughput"] / base["throughput"], 3) if base["throughput"] else None
    return summary


def _median_cell(key: tuple[str, str, str, int], group: list[dict[str, Any]]) -> dict[str, Any]:
    upstream, target, era, concurrency = key
    # A cell with no completed call (a tiny smoke run on a loaded machine) has no CPU per call.
    roles = sorted({role for cell in group for role in cell["cpu_ms_per_call"]}, key=ROLES.index)
    per_role = {role: [c["cpu_ms_per_call"][role] for c in group if role in c["cpu_ms_per_call"]] for role in roles}
    cpu = {role: round(statistics.median(values), 3) for role, values in per_role.items()}
    return {
        "upstream": upstream,
        "target": target,
        "era": era,
        "concurrency": concurrency,
        "rounds": len(group),
        "calls": sum(c["calls"] for c in group),
        "errors": sum(c["errors"] for c in group),
        "cpu_ms_per_call": cpu,
        "cpu_ms_per_call_range": {role: [min(values), max(values)] for role, values in per_role.items()},
        "gateway_cpu_ms_per_call": cpu.get("gateway"),
        "p50_ms": round(statistics.median(c["p50_ms"] for c in group), 3),
        "p99_ms": round(statistics.median(c["p99_ms"] for c in group), 3),
        "throughput": round(statistics.median(c["throughput"] for c in group), 1),
        "load_1min": [min(c["load_1min"] for c in group), max(c["load_1min"] for c in group)],
    }
