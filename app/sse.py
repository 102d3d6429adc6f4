"""Server-sent events on the wire: encode events, and parse an upstream's event stream incrementally.

The format is apart from any response object (as `sse_starlette/event.py` keeps it), because
Airlock both writes events (held calls) and reads them (relaying and executing upstream calls
over aiohttp, which has no SSE parser). Parsing follows the HTML living standard's
"interpret an event stream" rules: `data` lines join with newlines, one leading space after a
colon is dropped, comments are kept (as `comment`) so a relay can pass keep-alives through, and an
event is dispatched at a blank line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

KEEPALIVE: Final = b": keep-alive\r\n\r\n"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str = ""
    event: str = "message"
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    """Set (and nothing else) for a comment line, which carries no event."""


def encode(
    data: str | None = None, *, event_id: str | None = None, event: str | None = "message", retry: int | None = None
) -> bytes:
    """One SSE frame. `data` may be "" (a priming event: an id with empty data)."""
    lines: list[str] = []
    if event:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if data is not None:
        lines.extend(f"data: {line}" if line else "data:" for line in data.split("\n"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def comment(text: str) -> bytes:
    return "".join(f": {line}\r\n" for line in text.split("\n")).encode("utf-8") + b"\r\n"


class EventTooLarge(ValueError):
    """One event (or one line of it) is longer than the parser's `max_event_bytes`."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"SSE event of at least {size} bytes exceeds the size limit ({limit} bytes)")
        self.size = size
        self.limit = limit


class SSEParser:
    """Feed bytes as they arrive; get complete events back.

    Linear in the stream's length however it is chunked: the buffer is a `bytearray` consumed from
    the front, and a line that is still incomplete is not searched again from its start (an event
    of several MB arriving in 64 KB chunks would otherwise be rescanned a hundred times).
    """

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        """How much of `_buffer` is known to hold no line ending."""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self._max = max_event_bytes
        self._after_cr = False
        """The last line ended with a CR: an LF that comes next (maybe in the next chunk) belongs to it."""

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        self._buffer += chunk
        while True:
            line, found = self._next_line()
            if not found:
                if self._size + len(self._buffer) > self._max:
                    raise EventTooLarge(self._size + len(self._buffer), self._max)
                return
            event = self._process(line)
            if event is not None:
                yield event

    def _next_line(self) -> tuple[str, bool]:
        buffer = self._buffer
        if self._after_cr and buffer:
            self._after_cr = False
            if buffer[0] == 10:
                del buffer[0]
        newline, carriage = buffer.find(b"\n", self._scanned), buffer.find(b"\r", self._scanned)
        if newline < 0 and carriage < 0:
            self._scanned = len(buffer)
            return "", False
        if carriage < 0 or 0 <= newline < carriage:
            index, end = newline, newline + 1
        else:
            index, end = carriage, carriage + 1
            if end == len(buffer):
                # A CR ends the line now (waiting for a possible LF would hold a CR-only stream's
                # event back until the next chunk, or forever at its end); that LF is skipped later.
                self._after_cr = True
            elif buffer[end] == 10:
                end += 1
        line = bytes(buffer[:index]).decode("utf-8", errors="replace")
        del buffer[:end]
        self._scanned = 0
        return line, True

    def _process(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return SSEEvent(comment=line[1:].lstrip(" "))
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._size += len(value)
        if self._size > self._max:
            raise EventTooLarge(self._size, self._max)
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():  # str.isdigit() also takes "²" and "١"
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event_id, retry, name = self._data, self._id, self._retry, self._event
        self._data, self._event, self._retry, self._size = [], "", None, 0
        # The last event id persists across events per the standard; we report it per event.
        self._id = None
        if not data and event_id is None and retry is None:
            return None
        return SSEEvent(data="\n".join(data), event=name or "message", id=event_id, retry=retry)
