"""One held request's view of its approval: the lifecycle events a holder turns into its answer.

A `Hold` is what `Approvals.hold` (or `.resume`) hands a transport. Iterating `events()` drives
the request's part of the lifecycle and yields, in order:

- `Waiting` once, when the hold begins (with the stored priming event, on resumable streams);
- `Progress` on every tick while nothing changes (the transport sends a progress notification
  or a keep-alive; neither is stored);
- `Relayed` for each message the upstream sends while the approved call runs (progress,
  elicitation, sampling), stored first on a resumable stream;
- last, one `Outcome` (the approval's final JSON-RPC response, recorded as delivered before it is
  yielded) or `Pending` (the hold budget ran out first);
- on resumption (`events(replay_after=…)`), `Replayed` for each stored event after the client's
  `Last-Event-ID`, then the above unless the replay held the answer.

Every event that carries a `seq` was stored before it was yielded (invariant 2 of
docs/architecture.md), so a resumed stream replays exactly what was sent. What it does not do:
framing (SSE ids, comments, retry hints) and the wire shape of a progress notification belong to
the transport (`app/gateway/holding.py`).

The approved call runs in its own task, not the holder's: an agent that disconnects while its
call runs must not cancel the upstream call half-way. The executor publishes the upstream's
in-flight messages to the hold that started it (`_relay`), which stores them even after the agent
left (a resumed stream replays them) and yields them while the agent is still there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from app.approvals.executor import Publish
from app.approvals.ledger import Ledger
from app.approvals.model import FINISHED, Approval, Status
from app.approvals.outcomes import APPROVAL_META_KEY, final_message, pending_result, waiting_message
from app.approvals.queue import ApprovalQueue
from app.clock import Clock
from app.config import ApprovalSettings
from app.jsonrpc import dumps, is_response, json_object
from app.protocol import Era
from app.store.streams import StreamRow
from app.types import RequestId

logger = logging.getLogger("airlock.approvals")


@dataclass(frozen=True, slots=True)
class Waiting:
    """The hold began."""

    approval_id: str
    priming_seq: int | None
    """The stored empty event a resumable stream opens with (so the client can resume from it)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Nothing changed for one tick."""

    elapsed: float
    """Seconds since the hold began."""
    message: str | None
    """What the call waits for, while it waits for a decision; None once it is decided."""


@dataclass(frozen=True, slots=True)
class Relayed:
    """A message the upstream sent while the approved call ran (JSON text)."""

    data: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final JSON-RPC response carrying the approval's outcome, already recorded as delivered."""

    data: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Pending:
    """The hold budget ran out first: the response that tells the agent to call again."""

    data: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Replayed:
    """A stored event sent again on resumption (empty `data`: the priming event)."""

    data: str
    seq: int
    answer: bool
    """It is the request's response: nothing follows it."""


HoldEvent = Waiting | Progress | Relayed | Outcome | Pending | Replayed


class Lifecycle(Protocol):
    """What a hold asks of the approvals service (`app/approvals/service.py::Approvals`).

    A protocol rather than the class, so `hold.py` and `service.py` do not import each other.
    """

    @property
    def clock(self) -> Clock: ...
    @property
    def queue(self) -> ApprovalQueue: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def settings(self) -> ApprovalSettings: ...
    @property
    def public_url(self) -> str: ...
    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...
    async def withdraw_after_grace(self, stream: StreamRow, *, attach_seq: int) -> None: ...
    async def mark_delivered(self, approval_id: str, *, stream_id: str) -> None: ...
    def execute(self, approval_id: str, *, publish: Publish | None = None) -> asyncio.Task[bool]: ...
    async def get(self, approval_id: str) -> Approval | None: ...


class Hold:
    """One held request of an approval (see the module docstring)."""

    def __init__(
        self,
        approvals: Lifecycle,
        stream: StreamRow,
        *,
        era: Era,
        resumable: bool,
        attach_seq: int,
        replay: bool = False,
        priming_seq: int | None = None,
    ) -> None:
        """Args:
        attach_seq: the approval's attach sequence when this request attached (-1: unknown, a
            resumption); a withdrawal after the client left happens only if nobody attached since.
        replay: the outcome was delivered before: it is sent again, marked as a replay (`queue.py`).
        """
        self._approvals = approvals
        self._stream = stream
        self.era = era
        self._resumable = resumable
        self._attach_seq = attach_seq
        self._replay = replay
        self._priming_seq = priming_seq
        self.request_id: RequestId = json.loads(stream.request_id)
        self.progress_token: str | int | None = (
            None if stream.progress_token is None else json.loads(stream.progress_token)
        )
        self._relayed: deque[Relayed] = deque()
        self._wake: asyncio.Event | None = None
        self._executing = False
        self._handing_back = False
        self._closed = False
        self._started = approvals.clock.monotonic()

    @property
    def approval_id(self) -> str:
        return self._stream.approval_id

    @property
    def stream_id(self) -> str:
        return self._stream.id

    async def events(self, *, replay_after: int | None = None) -> AsyncGenerator[HoldEvent, None]:
        """The lifecycle events of this request until its answer (see the module docstring).

        Use it inside `contextlib.aclosing`, so a holder that stops listening closes the hold.
        """
        try:
            if replay_after is not None:
                answered = False
                async for replayed in self._replayed(replay_after):
                    answered = replayed.answer
                    yield replayed
                if answered:
                    return
            else:
                yield Waiting(self.approval_id, self._priming_seq)
            async for event in self._wait():
                yield event
        finally:
            self._closed = True

    def hand_back(self) -> None:
        """The process is shutting down (`app/drain.py`): a resumable stream ends now without its answer,
        for the client to resume elsewhere; any other request is answered pending, to retry."""
        self._handing_back = True
        if self._wake is not None:
            self._wake.set()

    def abandon(self) -> asyncio.Task[None] | None:
        """The agent left before its answer. A 2026-07-28 client thereby cancels: withdraw after the grace period.

        Returns:
            The task that withdraws (None in the handshake era, where leaving is no cancellation).
        """
        self._closed = True
        if not self.era.is_modern:
            return None
        return self._approvals.spawn(self._approvals.withdraw_after_grace(self._stream, attach_seq=self._attach_seq))

    async def _replayed(self, after: int) -> AsyncIterator[Replayed]:
        for stored in await self._approvals.queue.events_after(self._stream.id, after):
            message = json_object(stored.data) if stored.data else None
            answer = message is not None and is_response(message)
            yield Replayed(stored.data, stored.seq, answer)
            if message is not None and answer:
                if _is_outcome(message):
                    await self._approvals.mark_delivered(self.approval_id, stream_id=self._stream.id)
                return

    async def _wait(self) -> AsyncIterator[HoldEvent]:
        approvals = self._approvals
        settings = approvals.settings
        tick = settings.keepalive_seconds
        if self.progress_token is not None:
            tick = min(tick, settings.progress_interval_seconds)
        # The row is re-read only when a signal says it changed: a keep-alive tick needs no
        # database round trip (10,000 held calls would otherwise cost ~700 reads a second), and
        # the sweeper's safety poll turns any missed cross-process change into a signal.
        with approvals.ledger.notifier.waiter(self.approval_id) as changed:
            self._wake = changed
            approval = await self._read()
            while True:
                while self._relayed:
                    yield self._relayed.popleft()
                if approval.is_finished:
                    yield await self._answer_outcome(approval)
                    return
                if self._handing_back:
                    if not self._resumable:
                        yield await self._answer_pending(approval)
                    return
                if approval.status is Status.APPROVED and not self._executing:
                    self._executing = True
                    approvals.execute(approval.id, publish=self._relay)
                left = self._stream.hold_until - approvals.clock.now()
                if left <= 0:
                    yield await self._answer_pending(approval)
                    return
                if await approvals.clock.wait(changed, min(left, tick)):
                    changed.clear()
                    approval = await self._read()
                else:
                    yield self._progress(approval)

    async def _relay(self, message: dict[str, Any]) -> None:
        """Store one upstream message of the running call, and pass it on while the agent listens.

        Runs in the execution's task (the executor publishes here), so it stores what the upstream
        sent even after the agent left: a resumed stream replays it.
        """
        data = dumps(message).decode("utf-8")
        seq = await self._approvals.queue.store_event(self._stream.id, data) if self._resumable else None
        if not self._closed:
            self._relayed.append(Relayed(data, seq))
            if self._wake is not None:
                self._wake.set()

    async def _read(self) -> Approval:
        approval = await self._approvals.get(self.approval_id)
        if approval is None:
            raise RuntimeError(f"approval {self.approval_id} vanished")
        return approval

    def _progress(self, approval: Approval) -> Progress:
        approvals = self._approvals
        elapsed = approvals.clock.monotonic() - self._started
        if approval.status is not Status.PENDING:
            return Progress(elapsed, None)
        return Progress(elapsed, waiting_message(approval, approvals.public_url, approvals.clock.now()))

    async def _answer_outcome(self, approval: Approval) -> Outcome:
        body = final_message(approval, self._approvals.public_url, modern=self.era.is_modern, replay=self._replay)
        data, seq = await self._record({"jsonrpc": "2.0", "id": self.request_id, **body}, delivering=approval.id)
        return Outcome(data, seq)

    async def _answer_pending(self, approval: Approval) -> Pending:
        result = pending_result(approval, self._approvals.public_url, modern=self.era.is_modern)
        data, seq = await self._record({"jsonrpc": "2.0", "id": self.request_id, "result": result})
        return Pending(data, seq)

    async def _record(self, message: dict[str, Any], *, delivering: str | None = None) -> tuple[str, int | None]:
        data = dumps(message).decode("utf-8")
        seq = await self._approvals.queue.record_answer(
            self._stream.id, data, store=self._resumable, delivering=delivering
        )
        return data, seq


def _is_outcome(message: dict[str, Any]) -> bool:
    """Whether a stored answer carried the approval's outcome (not the "still pending" notice).

    Only Airlock writes these answers: the pending notice is a result whose approval metadata says
    the approval is still open; anything else (the upstream's result or error) is the outcome.
    """
    result = message.get("result")
    meta = result.get("_meta") if isinstance(result, dict) else None
    approval = meta.get(APPROVAL_META_KEY) if isinstance(meta, dict) else None
    status = approval.get("status") if isinstance(approval, dict) else None
    return status is None or status in FINISHED
