"""The audit log: every `tools/call` decision and every step of every approval.

Two write paths, because they carry different promises:

- Call decisions (allow, deny, hidden, rate limited, invalid) are on the hot path. They go into an
  in-memory queue that a background task writes in small batches (every 200 ms or 200 entries),
  so an allowed call never waits for a database write, nor for hashing its arguments: the batch
  writer does that. A crash can lose the last batch; nothing else is lost, and the calls
  themselves are unaffected.
- Approval steps (parked, notified, decided, executed, delivered, expired, withdrawn) are written
  inside the transaction that makes the step, so the timeline is exactly as durable as the state.

Argument values are not stored unless `audit.store_arguments` is set: an entry keeps the argument
keys and the SHA-256 of their canonical JSON, which is enough to match a call without keeping
what may be sensitive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.jsonrpc import arguments_hash, canonical_json
from app.metrics import Metrics
from app.store import audit as audit_store
from app.store.db import Database
from app.store.models import audit_log

logger = logging.getLogger("airlock.audit")

_BATCH_SIZE: Final = 200
_FLUSH_SECONDS: Final = 0.2
_MAX_QUEUE: Final = 100_000
_COLUMN_LENGTHS: Final[dict[str, int]] = {
    column.name: length
    for column in audit_log.columns
    if isinstance(length := getattr(column.type, "length", None), int)
}


def _fit(entry: dict[str, Any]) -> dict[str, Any]:
    """Clip text to its column's length.

    The tool name is the agent's to choose (and rule ids the policy author's). PostgreSQL refuses a
    value longer than its column, and a batch it refuses is retried forever: one long name would
    stop the whole audit log. SQLite ignores lengths, so both databases now store the same text.
    """
    for name, length in _COLUMN_LENGTHS.items():
        value = entry.get(name)
        if isinstance(value, str) and len(value) > length:
            entry[name] = value[:length]
    return entry


class AuditLog:
    """Records audit entries. `run()` must be running for call entries to reach the database."""

    def __init__(self, db: Database, *, store_arguments: bool = False, metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = metrics
        self._store_arguments = store_arguments
        self._queue: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._dropped = 0
        self._writing = asyncio.Lock()
        """Held while a batch is out of the queue but not yet committed: `flush()` waits for it too."""

    def describe_arguments(self, arguments: Any) -> dict[str, Any]:
        """The audit columns that describe a call's arguments (keys, hash, values only if configured)."""
        keys = sorted(arguments) if isinstance(arguments, dict) else []
        return {
            "argument_keys": json.dumps(keys),
            "args_hash": arguments_hash(arguments),
            "arguments": canonical_json(arguments) if self._store_arguments else None,
        }

    def record_call(
        self,
        *,
        agent: str,
        upstream: str,
        tool: str,
        decision: str,
        rule: str | None,
        policy_version: str | None,
        latency_ms: float | None,
        outcome: str | None,
        arguments: Any,
        approval_id: str | None = None,
        detail: str | None = None,
        upstream_ms: float | None = None,
    ) -> None:
        """Queue one call decision for the next batch (never blocks, never raises); count it in the metrics.

        `upstream_ms` is the part of `latency_ms` spent on the upstream's request and the relay of its
        answer, for a forwarded call (the metrics' split of upstream and gateway-added time).
        """
        if self._metrics is not None:
            self._metrics.call(upstream, tool, decision, outcome, latency_ms, upstream_ms)
        if len(self._queue) >= _MAX_QUEUE:
            self._dropped += 1
            return
        # The arguments object is kept as parsed (nothing mutates it); the writer describes it.
        self._queue.append(
            {
                "at": time.time(),
                "event": "call",
                "agent": agent,
                "upstream": upstream,
                "tool": tool,
                "decision": decision,
                "rule": rule,
                "policy_version": policy_version,
                "latency_ms": latency_ms,
                "outcome": outcome,
                "approval_id": approval_id,
                "actor": None,
                "detail": detail,
                "arguments": arguments,
            }
        )
        if len(self._queue) >= _BATCH_SIZE:
            self._wake.set()

    async def record_step(
        self,
        conn: AsyncConnection,
        *,
        event: str,
        approval: Any,
        now: float,
        actor: str | None = None,
        outcome: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Write one approval step inside the caller's transaction."""
        await audit_store.insert_many(
            conn,
            [
                _fit(
                    {
                        "at": now,
                        "event": event,
                        "agent": approval.agent,
                        "upstream": approval.upstream,
                        "tool": approval.tool,
                        "decision": "approve",
                        "rule": approval.policy_rule,
                        "policy_version": approval.policy_version,
                        "latency_ms": None,
                        "outcome": outcome,
                        "argument_keys": json.dumps(sorted(json.loads(approval.arguments))),
                        "args_hash": approval.args_hash,
                        "arguments": approval.arguments if self._store_arguments else None,
                        "approval_id": approval.id,
                        "actor": actor,
                        "detail": detail,
                    }
                )
            ],
        )

    async def flush(self) -> None:
        """Write everything queued so far; when it returns, every entry recorded before is committed."""
        async with self._writing:
            while self._queue:
                batch, self._queue = self._queue[:_BATCH_SIZE], self._queue[_BATCH_SIZE:]
                try:
                    async with self._db.write() as conn:
                        await audit_store.insert_many(conn, [self._row(entry) for entry in batch])
                except Exception:
                    logger.exception("could not write %d audit entries; retrying", len(batch))
                    self._queue[:0] = batch
                    raise
        if self._dropped:
            logger.error("audit queue overflowed: %d call entries were dropped", self._dropped)
            self._dropped = 0

    def _row(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A queued call entry as its audit_log row (arguments described, text fitted to its columns)."""
        return _fit({**entry, **self.describe_arguments(entry["arguments"])})

    async def run(self) -> None:
        """Write queued entries in batches until cancelled (the owner calls `flush()` after that)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(1.0)
