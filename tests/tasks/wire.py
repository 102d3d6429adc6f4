"""A handshake-era session that speaks tasks (2025-11-25) as raw JSON-RPC, for the task tests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.rawmcp import RawSession, final_message

_ids = itertools.count(100)


class TaskSession(RawSession):
    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request's JSON-RPC response, whether it comes as JSON or on an SSE stream."""
        body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        async with self.stream("POST", body) as reader:
            response = reader.response
            assert response.status_code == 200, response.status_code
            if response.headers["content-type"].startswith("application/json"):
                await response.aread()
                message: dict[str, Any] = response.json()
                return message
            return await final_message(response)

    async def call(self, name: str, arguments: dict[str, Any], *, ttl: int | None = 60_000) -> dict[str, Any]:
        """A task-augmented `tools/call` (`ttl=None`: a plain call)."""
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if ttl is not None:
            params["task"] = {"ttl": ttl}
        return await self.request("tools/call", params)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.request("tasks/get", {"taskId": task_id})

    async def result(self, task_id: str) -> dict[str, Any]:
        return await self.request("tasks/result", {"taskId": task_id})

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self.request("tasks/cancel", {"taskId": task_id})

    async def list(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = (await self.request("tasks/list", {}))["result"]["tasks"]
        return tasks


async def task_session(http: httpx.AsyncClient, url: str, token: str) -> TaskSession:
    session = TaskSession(http, url, token)
    await session.initialize()
    return session
