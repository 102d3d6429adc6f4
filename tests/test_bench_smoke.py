"""The benchmark harness still runs end to end (a tiny pass; the figures themselves are not checked).

Provenance: Airlock-defined. Benchmarks are not timed tests (bench/README.md); this only keeps
`make bench` from rotting: every phase runs, every figure is reported, and no call failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_harness_runs_every_phase_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--no-contextforge",
            "--no-postgres",
            "--upstream",  # the demo upstream runs the later phases; the overhead phase is the SDK's
            "sdk",
            "--seconds",
            "0.2",
            "--rounds",
            "2",
            "--warmup",
            "0.3",
            "--held",
            "20",
            "--trials",
            "3",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    report = json.loads(out.read_text())
    cells = {(m["upstream"], m["target"], m["era"], m["concurrency"]) for m in report["overhead"]}
    assert cells == {
        (u, t, e, c)
        for u in ("sdk",)
        for t in ("direct", "floor", "airlock", "airlock, metrics off", "airlock, tracing on")
        for e in ("modern", "legacy")
        for c in (1, 32)
    }
    assert [m for m in report["overhead_rounds"] if m["errors"] or not m["calls"]] == []
    assert len(report["overhead_rounds"]) == 2 * len(cells)
    gateways = [m for m in report["overhead"] if m["target"] != "direct"]
    assert all(set(m["cpu_ms_per_call"]) == {"client", "upstream", "gateway"} for m in gateways)
    assert set(report["load"]) >= {"overhead (sdk upstream)", "holding"}
    assert report["holding"]["held_calls"] == 20 and report["holding"]["memory_per_held_call_kb"] is not None
    assert report["decision_to_result_sqlite"]["trials"] == 3
    assert report["policy_decision"]["rules_1000_last_rule_us"] > 0
    assert report["agent_authentication"]["us_per_call"]["jwt RS256, warm"] > 0
    assert set(report["verdicts"]) >= {"memory_per_held_call_kb", "decision_to_result_p99_sqlite_ms"}
    assert "| target | measured | goal | met |" in completed.stdout
    assert "| upstream | era | c | target | client | upstream | gateway | total |" in completed.stdout
