"""One authenticated HTTP exchange on `/mcp/{upstream}`: who is asking, of which upstream, with what.

Built by `endpoint.py` after the checks every request passes (origin, credentials, size), and
handed to the era module that serves it, with `Gateway`: the parts the gateway's modules use,
which the composition root (`app/runtime.py`) hands to `McpEndpoint`. The gateway never sees the
root.

`Exchange.runtime` is a transitional alias of `Exchange.gateway`: `calls.py`, `modern.py`,
`handshake.py` and `holding.py` still spell it that way until the lifecycle redesign (issue 11)
rewrites them onto the approvals service, which will also replace `Gateway`'s `queue`, `ledger`,
`executor`, `notifier` and `db`.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals import hold
from app.approvals.executor import Executor
from app.approvals.ledger import Ledger
from app.approvals.queue import ApprovalQueue
from app.approvals.signals import Notifier
from app.audit import AuditLog
from app.config import Settings
from app.drain import Drain
from app.gateway.intercept import Interceptor
from app.gateway.limits import HeldLimits
from app.policy.engine import Decision
from app.sessions import SessionRegistry
from app.types import Receive, Scope, Send
from app.upstream import Upstream

MCP_PROTOCOL_VERSION: Final = "mcp-protocol-version"
MCP_SESSION_ID: Final = "mcp-session-id"
LAST_EVENT_ID: Final = "last-event-id"


class StoreReader(Protocol):
    """Read access to the store (`app/store/db.py::Database`), typed here so the gateway imports nothing from it."""

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


@dataclass(frozen=True)
class Gateway:
    """What the gateway's modules use: the policy seam, the audit log, the approvals entry points, limits."""

    settings: Settings
    interceptor: Interceptor
    audit: AuditLog
    held: HeldLimits
    sessions: SessionRegistry
    queue: ApprovalQueue
    ledger: Ledger
    executor: Executor
    notifier: Notifier
    db: StoreReader
    drain: Drain = field(default_factory=Drain)
    """SIGTERM's drain (`app/drain.py`): held requests and GET streams end when it starts."""

    def hold_seconds(self, agent: str, decision: Decision) -> float:
        """How long to hold this agent's request (`app/approvals/hold.py`)."""
        return hold.hold_seconds(self.settings.approvals, agent, decision)


@dataclass
class Exchange:
    scope: Scope
    receive: Receive
    send: Send
    gateway: Gateway
    agent: str
    upstream: Upstream
    headers: dict[str, str]
    """Request headers, names lowercased; a repeated header keeps its last value (see `raw_headers`)."""
    raw_headers: list[tuple[str, str]]
    body: bytes = b""
    started: float = field(default_factory=time.perf_counter)

    @property
    def runtime(self) -> Gateway:
        """Transitional alias of `gateway` (see the module docstring)."""
        return self.gateway

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def protocol_version(self) -> str | None:
        return self.headers.get(MCP_PROTOCOL_VERSION)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0
