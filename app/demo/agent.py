"""The demo agent: cancel one task on the demo market, and wait for a human to approve it.

`airlock demo` saves a copy of this file with its own URL and agent token as data/demo_agent.py.
Run it with the Python that has Airlock installed (it needs the `mcp` package).

Airlock holds a call that needs approval for up to its hold budget (50 s in the demo), then
answers "pending", with the approval in the result's `_meta["dev.airlock/approval"]`. Calling
the same tool again with the same arguments re-attaches to that approval (the tool still runs
once), so this agent picks its task once and repeats the identical call until a human decides.
"""

import asyncio
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

URL = "http://127.0.0.1:8080/mcp/execution-market"
TOKEN = "alk_agent_..."

APPROVAL = "dev.airlock/approval"
OPEN = ("pending", "approved", "executing")  # the approval's outcome is still to come


async def call_until_done(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call `tool`, and call it again with identical arguments while its approval is open."""
    while True:
        result = await client.call_tool(tool, arguments)
        approval = (result.meta or {}).get(APPROVAL, {})
        if approval.get("status") not in OPEN:
            return result
        what = "a human to decide" if approval["status"] == "pending" else "the approved call to finish"
        print(
            f"waiting for {what}: {tool} (approval {approval['id']}); review it at {approval['reviewUrl']}", flush=True
        )


async def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(URL, http_client=http)) as client:
            tools = await client.list_tools()
            print("tools:", [tool.name for tool in tools.tools], flush=True)
            listing = await client.call_tool("em_list_tasks", {"status": "published"})
            tasks = (listing.structured_content or {}).get("tasks")
            if not tasks:
                print("no published task left to cancel; restart the demo")
                return
            task_id = tasks[0]["id"]
            print("cancelling task", task_id, "- the policy holds this for a human", flush=True)
            result = await call_until_done(client, "em_cancel_task", {"task_id": task_id, "reason": "demo"})
            text = "".join(getattr(block, "text", "") for block in result.content)
            print("error:" if result.is_error else "result:", text, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
