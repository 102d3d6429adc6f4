"""Hold a parked call's request on an SSE stream until its outcome, its hold budget, or the agent leaves.

What the agent sees on the stream:

- at once, a first event: in the handshake era (for clients at 2025-11-25 or later) a priming
  event, an id with empty data plus a `retry` hint, so the client can resume the stream with
  `Last-Event-ID` after a dropped connection or an Airlock restart;
- while it waits: `notifications/progress` saying what it waits for (when the request carried a
  progress token), and SSE comment keep-alives at least every `keepalive_seconds` in any case;
- while an approved call runs: the upstream's own notifications and requests, relayed;
- last, one JSON-RPC response: the real result, the refusal, or (when the hold budget runs out
  first) the pending result that tells the model to call again with identical arguments.

Every event with an id is stored before it is sent, so a resumed stream (`Last-Event-ID`, on any
replica) replays exactly what was sent. Event ids are `<stream id>.<seq>`; the stream id is
unguessable, and resuming checks the stream belongs to the agent and session asking. Progress
notifications and keep-alives carry no id and are not stored: they are ephemeral by nature, and
storing one every few seconds for each of thousands of held calls would put the database on the
critical path for nothing.

Deliberate departures, do not "fix" without reading this:

- 2026-07-28 streams carry no event ids at all: that revision removed resumability, and the SDK
  client would otherwise try a GET resumption the spec forbids. A dropped 2026 stream is the
  client's cancellation; the approval is withdrawn after `cancel_grace_seconds` unless an
  identical retry re-attaches first. The withdrawal is scheduled in the database, so it happens
  even if this process dies during the grace period.
- A dropped handshake-era stream is not a cancellation (the spec says so); only
  `notifications/cancelled` withdraws.
- An approved call runs in its own task, not the request's: an agent that disconnects while its
  call runs must not cancel the upstream call half-way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

from app.approvals.outcomes import APPROVAL_META_KEY, final_message, pending_result, waiting_message
from app.gateway.exchange import Exchange, Gateway
from app.gateway.relay import until_disconnect
from app.gateway.respond import Headers, end_stream, send_chunk, start_sse
from app.jsonrpc import dumps, is_response, json_object
from app.sse import comment, encode
from app.store import streams as stream_store
from app.store.approvals import FINISHED, ApprovalRow
from app.store.streams import StreamRow

logger = logging.getLogger("airlock.gateway")

_EVENT_ID_SEPARATOR: Final = "."


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}{_EVENT_ID_SEPARATOR}{seq}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """`(stream id, seq)` of one of Airlock's own event ids, or None."""
    stream_id, _, seq = value.rpartition(_EVENT_ID_SEPARATOR)
    if not stream_id or not seq.isdigit() or len(stream_id) > 40:
        return None
    return stream_id, int(seq)


class HeldRequest:
    """One held request: drives its SSE response and relays an approved call's in-flight messages."""

    def __init__(
        self,
        runtime: Gateway,
        exchange: Exchange,
        approval: ApprovalRow,
        stream: StreamRow,
        *,
        modern: bool,
        resumable: bool,
        attach_seq: int,
        headers: Headers = (),
        replay: bool = False,
    ) -> None:
        self._runtime = runtime
        self._exchange = exchange
        self._approval_id = approval.id
        self._stream = stream
        self._modern = modern
        self._resumable = resumable
        self._attach_seq = attach_seq
        self._headers = headers
        self._replayed_outcome = replay
        """The outcome was delivered before: it is sent again, marked as a replay (`queue.py`)."""
        self._request_id = json.loads(stream.request_id)
        self._progress_token = None if stream.progress_token is None else json.loads(stream.progress_token)
        self._answered = False
        self._closed = False
        self._execution: asyncio.Task[Any] | None = None
        self._started = time.monotonic()

    async def serve(self, *, priming_seq: int | None = None, replay_after: int | None = None) -> None:
        """Answer the request with the held stream; returns when it is answered or the agent left."""
        await start_sse(self._exchange.send, self._headers)
        try:
            completed = await until_disconnect(self._exchange.receive, self._hold(priming_seq, replay_after))
        finally:
            self._closed = True
        if completed:
            await end_stream(self._exchange.send)
        elif not self._answered:
            self._agent_left()

    async def relay(self, message: dict[str, Any]) -> None:
        """Relay one upstream message of the running call (the executor's `EventSink`)."""
        data = dumps(message).decode("utf-8")
        seq = await self._runtime.queue.store_event(self._stream.id, data) if self._resumable else None
        if not self._closed:
            await self._emit(data, seq)

    async def _hold(self, priming_seq: int | None, replay_after: int | None) -> None:
        if replay_after is not None:
            if await self._replay(replay_after):
                return
        elif priming_seq is not None:
            await self._send(
                encode(
                    "",
                    event_id=event_id(self._stream.id, priming_seq),
                    retry=self._runtime.settings.approvals.sse_retry_ms,
                )
            )
        else:
            await self._send(comment(f"held for human approval {self._approval_id}"))
        await self._wait_for_outcome()

    async def _replay(self, after: int) -> bool:
        """Send the stored events after `after`; True when they include the request's answer."""
        async with self._runtime.db.read() as conn:
            events = await stream_store.events_after(conn, self._stream.id, after)
        for stored in events:
            await self._emit(stored.data, stored.seq)
            message = json_object(stored.data) if stored.data else None
            if message is not None and is_response(message):
                self._answered = True
                if _is_outcome(message):
                    row = await self._runtime.ledger.get(self._approval_id)
                    if row is not None and row.is_finished:
                        await self._runtime.queue.mark_delivered(row, stream_id=self._stream.id)
                return True
        return False

    async def _wait_for_outcome(self) -> None:
        settings = self._runtime.settings.approvals
        tick = settings.keepalive_seconds
        if self._progress_token is not None:
            tick = min(tick, settings.progress_interval_seconds)
        # The row is re-read only when a signal says it changed: a keep-alive tick needs no
        # database round trip (10,000 held calls would otherwise cost ~700 reads a second), and
        # the sweeper's safety poll turns any missed cross-process change into a signal.
        with self._runtime.notifier.waiter(self._approval_id) as changed, self._runtime.drain.waking(changed):
            row = await self._read()
            while True:
                if row.is_finished:
                    await self._answer_outcome(row)
                    return
                if self._runtime.drain.started:
                    await self._hand_back(row)
                    return
                if row.status == "approved" and self._execution is None:
                    self._execution = self._runtime.ledger.spawn(self._runtime.executor.execute(row.id, sink=self))
                left = self._stream.hold_until - time.time()
                if left <= 0:
                    await self._answer_pending(row)
                    return
                if await _signalled(changed, min(left, tick)):
                    changed.clear()
                    row = await self._read()
                else:
                    await self._tick(row)

    async def _read(self) -> ApprovalRow:
        row = await self._runtime.ledger.get(self._approval_id)
        if row is None:
            raise RuntimeError(f"approval {self._approval_id} vanished")
        return row

    async def _tick(self, row: ApprovalRow) -> None:
        if self._progress_token is not None and row.status == "pending":
            notification = {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {
                    "progressToken": self._progress_token,
                    "progress": round(time.monotonic() - self._started, 3),
                    "message": waiting_message(row, self._runtime.settings.public_url),
                },
            }
            await self._send(encode(dumps(notification).decode("utf-8")))
        else:
            await self._send(comment("waiting for approval"))

    async def _answer_outcome(self, row: ApprovalRow) -> None:
        message = {
            "jsonrpc": "2.0",
            "id": self._request_id,
            **final_message(row, self._runtime.settings.public_url, modern=self._modern, replay=self._replayed_outcome),
        }
        await self._answer(message, delivering=row)

    async def _hand_back(self, row: ApprovalRow) -> None:
        """The process is shutting down (`app/drain.py`): a resumable stream ends unanswered, for its
        client to resume elsewhere; any other held request gets the pending result to retry."""
        if not self._resumable:
            await self._answer_pending(row)

    async def _answer_pending(self, row: ApprovalRow) -> None:
        result = pending_result(row, self._runtime.settings.public_url, modern=self._modern)
        await self._answer({"jsonrpc": "2.0", "id": self._request_id, "result": result})

    async def _answer(self, message: dict[str, Any], *, delivering: ApprovalRow | None = None) -> None:
        data = dumps(message).decode("utf-8")
        seq = await self._runtime.queue.record_answer(
            self._stream.id, data, store=self._resumable, delivering=delivering
        )
        await self._emit(data, seq)
        self._answered = True

    async def _emit(self, data: str, seq: int | None) -> None:
        if seq is not None and not data:
            await self._send(
                encode("", event_id=event_id(self._stream.id, seq), retry=self._runtime.settings.approvals.sse_retry_ms)
            )
            return
        await self._send(encode(data, event_id=None if seq is None else event_id(self._stream.id, seq)))

    async def _send(self, frame: bytes) -> None:
        await send_chunk(self._exchange.send, frame)

    def _agent_left(self) -> None:
        """The agent closed the stream before its answer (2026-07-28: that is a cancellation)."""
        if not self._modern:
            return
        self._runtime.ledger.spawn(self._withdraw_after_grace())

    async def _withdraw_after_grace(self) -> None:
        queue = self._runtime.queue
        due = await queue.schedule_withdrawal(self._approval_id, attach_seq=self._attach_seq)
        if due is None:
            return
        # On time from here; were this process to die first, a sweeper finds the row due.
        await asyncio.sleep(max(0.0, due - time.time()))
        withdrawn = await queue.withdraw_abandoned(
            self._approval_id, agent=self._stream.agent, attach_seq=self._attach_seq
        )
        if withdrawn:
            logger.info("approval %s withdrawn: its 2026-07-28 client went away", self._approval_id)


async def _signalled(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds (without the task `asyncio.wait_for` would create)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


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
