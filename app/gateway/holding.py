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
  call runs must not cancel the upstream call half-way (`app/approvals/hold.py`).

This module is transport only: what happens when is the approvals service's (`app/approvals/
service.py`, `hold.py`), which stores each event before yielding it; this module frames the
events it is handed as SSE, and tells the service when the agent left before its answer.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Final

from app.approvals.service import Hold, HoldEvent, Outcome, Pending, Progress, Relayed, Replayed, Waiting
from app.gateway.exchange import Exchange
from app.gateway.relay import until_disconnect
from app.gateway.respond import Headers, end_stream, send_chunk, start_sse
from app.jsonrpc import dumps
from app.sse import comment, encode

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
    """One held request's SSE response: the hold's lifecycle events, framed."""

    def __init__(self, exchange: Exchange, hold: Hold, *, headers: Headers = ()) -> None:
        self._exchange = exchange
        self._hold = hold
        self._headers = headers
        self._retry_ms = exchange.gateway.settings.approvals.sse_retry_ms
        self._answered = False

    async def serve(self, *, replay_after: int | None = None) -> None:
        """Answer the request with the held stream; returns when it is answered or the agent left."""
        await start_sse(self._exchange.send, self._headers)
        with self._exchange.gateway.drain.on_begin(self._hold.hand_back):  # SIGTERM (app/drain.py)
            completed = await until_disconnect(self._exchange.receive, self._stream(replay_after))
        if completed:
            await end_stream(self._exchange.send)
        elif not self._answered:
            self._hold.abandon()

    async def _stream(self, replay_after: int | None) -> None:
        async with aclosing(self._hold.events(replay_after=replay_after)) as events:
            async for event in events:
                await send_chunk(self._exchange.send, self._frame(event))
                if isinstance(event, Outcome | Pending) or (isinstance(event, Replayed) and event.answer):
                    self._answered = True

    def _frame(self, event: HoldEvent) -> bytes:
        match event:
            case Waiting(approval_id=approval_id, priming_seq=None):
                return comment(f"held for human approval {approval_id}")
            case Waiting(priming_seq=int(seq)):
                return self._event("", seq)
            case Progress(elapsed=elapsed, message=str(message)) if self._hold.progress_token is not None:
                return encode(dumps(self._progress(elapsed, message)).decode("utf-8"))
            case Progress():
                return comment("waiting for approval")
            case Relayed(data=data, seq=seq) | Outcome(data=data, seq=seq) | Pending(data=data, seq=seq):
                return self._event(data, seq)
            case Replayed(data=data, seq=seq):
                return self._event(data, seq)
        raise AssertionError(f"unexpected hold event {event!r}")

    def _progress(self, elapsed: float, message: str) -> dict[str, object]:
        return {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": self._hold.progress_token, "progress": round(elapsed, 3), "message": message},
        }

    def _event(self, data: str, seq: int | None) -> bytes:
        """One SSE event; a stored one carries its id (an empty one, the priming event, a retry hint too)."""
        if seq is None:
            return encode(data)
        if not data:
            return encode("", event_id=event_id(self._hold.stream_id, seq), retry=self._retry_ms)
        return encode(data, event_id=event_id(self._hold.stream_id, seq))
