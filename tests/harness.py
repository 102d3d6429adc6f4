"""The end-to-end harness: a real Airlock under uvicorn, in front of the real demo upstream.

`start_airlock(...)` builds settings for a fresh database (a copy of a migrated SQLite template, or
a fresh PostgreSQL schema when `AIRLOCK_TEST_DATABASE_URL` points at PostgreSQL), serves
`create_app(settings)` on an ephemeral loopback port, and returns an `AirlockUnderTest` with the
helpers tests need: tokens, policy edits, SDK clients, and the reviewers' API.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from app.approvals.outcomes import APPROVAL_META_KEY
from app.asgi import create_app
from app.config import Settings, settings_from_document
from app.demo.upstream import DemoMarket, Task, TaskStatus
from app.runtime import Runtime
from tests.net import serve, wait_for

UPSTREAM = "execution-market"
SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"

DEFAULT_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "hide": ["em_rate_worker"],
    "rules": [
        {
            "id": "interns-cannot-publish",
            "tool": "em_publish_task",
            "agents": ["intern-bot"],
            "action": "deny",
            "reason": "interns cannot publish",
        },
        {
            "id": "large-bounty",
            "tool": "em_publish_task",
            "when": {"bounty_usd": {"gt": 100}},
            "action": "approve",
            "reason": "large bounty",
        },
        {"id": "publish", "tool": "em_publish_task", "action": "allow", "rate_limit": {"max": 3, "window": 3600}},
        {"id": "read", "tool": ["em_get_*", "em_list_*"], "action": "allow"},
        {"id": "work", "tool": ["em_accept_task", "em_submit_work"], "action": "allow"},
        {"id": "cancel", "tool": "em_cancel_task", "action": "approve", "reason": "cancelling is irreversible"},
    ],
}


def approval_of(result: CallToolResult) -> dict[str, Any]:
    """The approval Airlock describes in a call result's `_meta` (the test fails if there is none)."""
    assert result.meta is not None and APPROVAL_META_KEY in result.meta, "the result names no approval"
    approval: dict[str, Any] = result.meta[APPROVAL_META_KEY]
    return approval


def new_task(
    market: DemoMarket,
    *,
    title: str = "Photograph the corner bakery",
    bounty_usd: float = 5.0,
    status: TaskStatus = "published",
) -> Task:
    """Put a task straight into the market (no tool call counted)."""
    task = Task(
        id=str(uuid.uuid4()),
        title=title,
        description="test task",
        bounty_usd=bounty_usd,
        deadline_hours=24,
        status=status,
        agent_id="someone",
    )
    market.tasks[task.id] = task
    return task


def submitted_task(market: DemoMarket) -> Task:
    """A task awaiting its publisher's rating of worker-7's work (what `em_rate_worker` asks about)."""
    task = new_task(market, title="Count the benches", status="submitted")
    task.worker_id, task.submission = "worker-7", "12 benches"
    return task


@dataclass
class AirlockUnderTest:
    url: str
    app: Any
    settings: Settings
    policy_path: Path
    stack: AsyncExitStack
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp/{UPSTREAM}"

    async def agent_token(self, agent: str = "agent-1") -> str:
        if agent not in self.tokens:
            issued = await self.runtime.credentials.issue_agent_token(agent)
            self.tokens[agent] = issued.token
        return self.tokens[agent]

    async def reviewer_token(self, name: str = "alice", *, slack_user_id: str | None = None) -> str:
        key = f"reviewer:{name}"
        if key not in self.tokens:
            issued = await self.runtime.credentials.add_reviewer(name, slack_user_id=slack_user_id)
            self.tokens[key] = issued.token
        return self.tokens[key]

    def set_policy(self, document: Mapping[str, Any]) -> None:
        """Replace the upstream's policy file and reload it now (as the reloader would on its next poll)."""
        self.policy_path.write_text(json.dumps(document), encoding="utf-8")
        stamp = time.time_ns() + 1_000_000_000
        os.utime(self.policy_path, ns=(stamp, stamp))
        self.runtime.policies.check_now()

    @asynccontextmanager
    async def client(self, agent: str = "agent-1", *, mode: str = "auto", **kwargs: Any) -> AsyncIterator[Client]:
        token = await self.agent_token(agent)
        async with mcp_client(self.mcp_url, token, mode=mode, **kwargs) as client:
            yield client

    def api(self, token: str | None) -> httpx.AsyncClient:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def decide(
        self, approval_id: str, verdict: str = "approve", *, reviewer: str = "alice", reason: str | None = None
    ) -> httpx.Response:
        token = await self.reviewer_token(reviewer)
        async with self.api(token) as api:
            body = {} if reason is None else {"reason": reason}
            return await api.post(f"/api/approvals/{approval_id}/{verdict}", json=body)

    async def approvals(self, status: str = "pending") -> list[dict[str, Any]]:
        token = await self.reviewer_token("observer")
        async with self.api(token) as api:
            response = await api.get("/api/approvals", params={"status": status})
            response.raise_for_status()
            approvals: list[dict[str, Any]] = response.json()["approvals"]
            return approvals

    async def approval(self, approval_id: str) -> dict[str, Any]:
        """One approval as the API shows it, with its timeline."""
        async with self.api(await self.reviewer_token("observer")) as api:
            response = await api.get(f"/api/approvals/{approval_id}")
            response.raise_for_status()
            detail: dict[str, Any] = response.json()
            return detail

    async def steps(self, approval_id: str, event: str) -> int:
        """How many times `event` appears in the approval's timeline."""
        return sum(entry["event"] == event for entry in (await self.approval(approval_id))["timeline"])

    async def wait_pending(self, *, count: int = 1) -> dict[str, Any]:
        """Wait until `count` approvals are pending; return the newest."""
        found: list[dict[str, Any]] = []

        async def appeared() -> bool:
            found[:] = await self.approvals("pending")
            return len(found) >= count

        await wait_for(appeared, timeout=10)
        return found[0]

    async def wait_status(self, approval_id: str, status: str) -> None:
        async def reached() -> bool:
            return bool((await self.approval(approval_id))["status"] == status)

        await wait_for(reached, timeout=10)

    async def wait_steps(self, approval_id: str, event: str, count: int = 1) -> None:
        """Wait until the approval's timeline has `count` `event` steps (e.g. "attached", "notified")."""

        async def enough() -> bool:
            return await self.steps(approval_id, event) >= count

        await wait_for(enough, timeout=10)


@asynccontextmanager
async def mcp_client(url: str, token: str, *, mode: str = "auto", **kwargs: Any) -> AsyncIterator[Client]:
    """The official SDK client, authenticated with an Airlock agent token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client:
            yield client


def settings_for_test(
    tmp_path: Path,
    upstream_url: str,
    database_url: str,
    *,
    policy: Mapping[str, Any] | None = None,
    port: int = 0,
    **overrides: Any,
) -> Settings:
    """Settings for a test: SQLite or PostgreSQL, one upstream, fast approval timings."""
    policy_path = tmp_path / "policy.json"
    if not policy_path.exists() or policy is not None:
        policy_path.write_text(json.dumps(policy or DEFAULT_POLICY), encoding="utf-8")
    approvals = {
        "safety_poll_seconds": 0.2,
        "execution_lease_seconds": 3,
        "cancel_grace_seconds": 3,
        **overrides.pop("approvals", {}),
    }
    document: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port or 8080,
        "database_url": database_url,
        "data_dir": str(tmp_path / "data"),
        "token_cache_seconds": 0,
        "approvals": approvals,
        "upstreams": [{"name": UPSTREAM, "url": upstream_url, "policy": str(policy_path)}],
        **overrides,
    }
    return settings_from_document(document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": SECRET_KEY})


@asynccontextmanager
async def running_airlock(settings: Settings) -> AsyncIterator[AirlockUnderTest]:
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app))
        yield AirlockUnderTest(
            url=url, app=app, settings=settings, policy_path=settings.upstreams[0].policy, stack=stack
        )


def copy_database(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"
