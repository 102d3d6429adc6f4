"""One authenticated HTTP exchange on `/mcp/{upstream}`: who is asking, of which upstream, with what.

Built by `endpoint.py` after the checks every request passes (origin, credentials, size), and
handed to the era module that serves it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.protocol import MCP_PROTOCOL_VERSION
from app.types import Receive, Scope, Send
from app.upstream import Upstream

if TYPE_CHECKING:
    from app.runtime import Runtime


@dataclass
class Exchange:
    scope: Scope
    receive: Receive
    send: Send
    runtime: Runtime
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
