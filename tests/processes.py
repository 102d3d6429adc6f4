"""Airlock as a real child process (`python -m app serve`), for tests that kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

import httpx

from app.auth import Credentials
from app.store.db import Database
from tests.harness import SECRET_KEY, UPSTREAM
from tests.net import free_port, wait_for


def write_config(
    path: Path,
    *,
    database_url: str,
    upstream_url: str,
    policy: Path,
    port: int,
    approvals: dict[str, Any] | None = None,
) -> Path:
    approvals = {"safety_poll_seconds": 0.2, "execution_lease_seconds": 2, **(approvals or {})}
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f"database_url = {json.dumps(database_url)}",
        f"data_dir = {json.dumps(str(path.parent / 'data'))}",
        "token_cache_seconds = 0",
        "",
        "[approvals]",
        *(f"{key} = {json.dumps(value)}" for key, value in approvals.items()),
        "",
        "[[upstreams]]",
        f'name = "{UPSTREAM}"',
        f"url = {json.dumps(upstream_url)}",
        f"policy = {json.dumps(str(policy))}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class AirlockProcess:
    """One `airlock serve` child process. `start()` waits until it answers `/healthz`."""

    def __init__(self, config: Path, port: int | None = None, *, log: Path | None = None) -> None:
        self.config = config
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or config.with_suffix(f".{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> AirlockProcess:
        env = {**os.environ, "AIRLOCK_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--config", str(self.config), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        await wait_for(self._healthy, timeout=30, interval=0.05)
        return self

    async def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"airlock exited with {self.process.returncode}:\n{self.log.read_text()}")
        try:
            async with httpx.AsyncClient(timeout=1) as http:
                return (await http.get(f"{self.url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class Cluster:
    """Airlock processes sharing one database and one config, and the tokens to talk to them."""

    def __init__(self, config: Path, database_url: str) -> None:
        self.config = config
        self.database_url = database_url
        self.processes: list[AirlockProcess] = []
        self.agent_token = ""
        self.reviewer_tokens: list[str] = []

    @classmethod
    async def create(
        cls,
        tmp_path: Path,
        *,
        database_url: str,
        upstream_url: str,
        policy: dict[str, Any],
        approvals: dict[str, Any],
        reviewers: int = 1,
    ) -> Self:
        policy_path = tmp_path / "policy.json"
        policy_path.write_text(json.dumps(policy), encoding="utf-8")
        config = write_config(
            tmp_path / "airlock.toml",
            database_url=database_url,
            upstream_url=upstream_url,
            policy=policy_path,
            port=8080,
            approvals=approvals,
        )
        cluster = cls(config, database_url)
        db = Database(database_url)
        try:
            credentials = Credentials(db, cache_seconds=0)
            cluster.agent_token = (await credentials.issue_agent_token("agent-1")).token
            cluster.reviewer_tokens = [
                (await credentials.add_reviewer(f"reviewer-{i}")).token for i in range(reviewers)
            ]
        finally:
            await db.dispose()
        return cluster

    async def start(self, port: int | None = None) -> AirlockProcess:
        process = await AirlockProcess(self.config, port).start()
        self.processes.append(process)
        return process

    @staticmethod
    def mcp(replica: AirlockProcess | str) -> str:
        base = replica if isinstance(replica, str) else replica.url
        return f"{base}/mcp/{UPSTREAM}"

    async def pending(self, replica: AirlockProcess) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(
                f"{replica.url}/api/approvals",
                params={"status": "pending"},
                headers={"Authorization": f"Bearer {self.reviewer_tokens[0]}"},
            )
            return list(response.json()["approvals"])

    async def wait_pending(self, replica: AirlockProcess, count: int = 1) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            found[:] = await self.pending(replica)
            return len(found) >= count

        await wait_for(enough, timeout=15)
        return found[0]

    async def decide(
        self,
        replica: AirlockProcess,
        approval_id: str,
        verdict: str = "approve",
        *,
        reviewer: int = 0,
        http: httpx.AsyncClient | None = None,
    ) -> int:
        """Decide through `replica`'s API; returns the HTTP status."""
        headers = {"Authorization": f"Bearer {self.reviewer_tokens[reviewer]}"}
        url = f"{replica.url}/api/approvals/{approval_id}/{verdict}"
        if http is not None:
            return (await http.post(url, headers=headers)).status_code
        async with httpx.AsyncClient(timeout=10) as own:
            return (await own.post(url, headers=headers)).status_code

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
