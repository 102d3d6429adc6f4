"""Allowed-call overhead: the same `tools/call`, direct to the upstream and through each gateway.

Targets run side by side in one pass, interleaved per (era, concurrency), so drift of the machine
hits every target alike. Besides latency and throughput, each gateway's CPU time per call is read
from /proc: on 2 cores the client and the upstream already use most of the CPU, so CPU per call is
what decides throughput at high concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.load import Run, measure
from bench.procs import cpu_seconds


@dataclass
class Target:
    name: str
    url: str
    token: str | None
    tool: str
    arguments: dict[str, Any]
    pid: int | None = None
    eras: tuple[str, ...] = ("modern", "legacy")
    warmup: float = 1.0
    """Seconds of calls before measuring (a gateway that opens upstream sessions lazily needs more)."""


@dataclass
class Measurement:
    target: str
    era: str
    concurrency: int
    run: Run
    cpu_ms_per_call: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "era": self.era,
            "concurrency": self.concurrency,
            "calls": self.run.calls,
            "errors": self.run.errors,
            "seconds": round(self.run.seconds, 3),
            "throughput": round(self.run.throughput, 1),
            "p50_ms": round(self.run.percentile(50), 3),
            "p99_ms": round(self.run.percentile(99), 3),
            "gateway_cpu_ms_per_call": None if self.cpu_ms_per_call is None else round(self.cpu_ms_per_call, 3),
        }


async def compare(
    targets: list[Target],
    *,
    eras: tuple[str, ...] = ("modern", "legacy"),
    concurrencies: tuple[int, ...] = (1, 32),
    seconds: float = 5.0,
) -> list[Measurement]:
    results: list[Measurement] = []
    for era in eras:
        for concurrency in concurrencies:
            for target in targets:
                if era not in target.eras:
                    continue
                before = cpu_seconds(target.pid) if target.pid else None
                run = await measure(
                    target.url,
                    era=era,
                    concurrency=concurrency,
                    seconds=seconds,
                    token=target.token,
                    tool=target.tool,
                    arguments=target.arguments,
                    warmup=target.warmup,
                )
                cpu = None
                if target.pid and before is not None and run.calls:
                    # Includes warm-up and session set-up: a slight overestimate, never an underestimate.
                    cpu = (cpu_seconds(target.pid) - before) * 1000 / (run.calls + run.errors)
                results.append(Measurement(target.name, era, concurrency, run, cpu))
    return results
