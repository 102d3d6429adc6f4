"""One authenticated HTTP exchange on `/mcp/{upstream}`: who is asking, of which upstream, with what.

Built by `endpoint.py` after the checks every request passes (origin, credentials, size), and
handed to the era module that serves it, with `Gateway`: the parts the gateway's modules use,
which the composition root (`app/runtime.py`) hands to `McpEndpoint`. The gateway never sees the
root, and reaches the approval lifecycle only through the approvals service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.approvals import budget
from app.approvals.service import Approvals
from app.audit import AuditLog
from app.config import Settings
from app.drain import Drain
from app.gateway.intercept import Interceptor
from app.gateway.limits import HeldLimits
from app.policy.engine import Decision
from app.protocol import MCP_PROTOCOL_VERSION
from app.sessions import SessionRegistry
from app.tasks.service import Tasks
from app.types import Receive, Scope, Send
from app.upstream import Upstream


@dataclass(frozen=True)
class Gateway:
    """What the gateway's modules use: the policy seam, the audit log, the approvals entry points, limits."""

    settings: Settings
    interceptor: Interceptor
    audit: AuditLog
    held: HeldLimits
    sessions: SessionRegistry
    approvals: Approvals
    drain: Drain = field(default_factory=Drain)
    """SIGTERM's drain (`app/drain.py`): held requests and GET streams end when it starts."""
    tasks: Tasks | None = None
    """MCP tasks (2025-11-25) for task-augmented calls (`app/tasks/`); None: never offered."""

    def hold_seconds(self, agent: str, decision: Decision) -> float:
        """How long to hold this agent's request (`app/approvals/budget.py`)."""
        return budget.hold_seconds(self.settings.approvals, agent, decision)


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
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def protocol_version(self) -> str | None:
        return self.headers.get(MCP_PROTOCOL_VERSION)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0
