"""The processes a benchmark runs (upstreams, the floor proxy, Airlock replicas, ContextForge) and their CPU time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (clock ticks: 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_precise(pid: int) -> float:
    """CPU time of the process's live threads, in nanoseconds' resolution (`/proc/<pid>/task/*/schedstat`).

    Ten-millisecond ticks are too coarse for a short cell on a loaded machine (100 calls in a
    window: ±0.1 ms per call). A thread that ends inside a window takes its time with it; the
    processes measured here keep theirs (event loop, database and executor threads). Falls back
    to `cpu_seconds` where schedstat is missing.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return cpu_seconds(pid)
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
    return total / 1e9 if total else cpu_seconds(pid)


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


class Process:
    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        log_dir: Path,
        health_url: str,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.health_url, self.cwd = name, argv, health_url, cwd
        self.env = {**os.environ, **(env or {})}
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 120) -> Process:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                try:
                    async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                        if response.status < 500:
                            return self
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def upstream_process(port: int, log_dir: Path) -> Process:
    return Process(
        "upstream",
        [sys.executable, "-m", "app.demo.upstream", "--port", str(port)],
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/_demo/state",
    )


def sdk_upstream_process(port: int, log_dir: Path) -> Process:
    """The official SDK server with the one allowed tool (`bench/sdk_upstream.py`)."""
    return Process(
        "sdk-upstream",
        [sys.executable, "-m", "bench.sdk_upstream", "--port", str(port)],
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/healthz",
    )


def floor_process(name: str, port: int, upstream_url: str, token: str, allowed: list[str], log_dir: Path) -> Process:
    """The minimal proxy (`bench/floor.py`) in front of `upstream_url`, accepting `token`."""
    allow = [arg for tool in allowed for arg in ("--allow", tool)]
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "bench.floor",
            "--port",
            str(port),
            "--upstream",
            upstream_url,
            "--token",
            token,
            *allow,
        ],
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/healthz",
    )


def airlock_config(
    work: Path,
    *,
    database_url: str,
    upstream_url: str,
    policy: dict[str, Any],
    approvals: dict[str, Any] | None = None,
    extra: str = "",
) -> Path:
    """An airlock.toml for one benchmarked process; `extra` is appended (tables such as `[metrics]`)."""
    policy_path = work / "policy.json"
    policy_path.write_text(json.dumps(policy), encoding="utf-8")
    approvals = {"max_pending_per_agent": 100000, **(approvals or {})}
    lines = [
        'host = "127.0.0.1"',
        "port = 8080",
        f"database_url = {json.dumps(database_url)}",
        f"data_dir = {json.dumps(str(work / 'data'))}",
        "",
        "[approvals]",
        *(f"{k} = {json.dumps(v)}" for k, v in approvals.items()),
        "",
        "[[upstreams]]",
        'name = "execution-market"',
        f"url = {json.dumps(upstream_url)}",
        f"policy = {json.dumps(str(policy_path))}",
    ]
    config = work / "airlock.toml"
    config.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return config


def airlock_process(name: str, config: Path, port: int, log_dir: Path, tree: Path | None = None) -> Process:
    """Airlock from this checkout, or with `tree` from another (`python -m app` imports from its cwd)."""
    return Process(
        name,
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"],
        env={"AIRLOCK_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop"},
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/healthz",
        cwd=tree,
    )
