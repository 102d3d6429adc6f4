"""The SSE wire format: Airlock's incremental event-stream parser and its frame encoder.

Provenance: the HTML living standard, "Interpreting an event stream" (line endings, fields,
comments, dispatch at a blank line), plus Airlock-defined choices documented in `app/sse.py`
(comments surface as events; the event id is reported per event; a size limit).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from app.sse import KEEPALIVE, SSEEvent, SSEParser, comment, encode


def parse(*chunks: bytes, limit: int = 16 * 1024 * 1024) -> list[SSEEvent]:
    parser = SSEParser(max_event_bytes=limit)
    return [event for chunk in chunks for event in parser.feed(chunk)]


def split_everywhere(stream: bytes) -> Iterable[list[bytes]]:
    """The stream cut into two chunks at every position, then byte by byte."""
    for cut in range(len(stream) + 1):
        yield [stream[:cut], stream[cut:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


TWO_EVENTS = [SSEEvent(data="one"), SSEEvent(data="two")]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: one\n\ndata: two\n\n",
        b"data: one\r\n\r\ndata: two\r\n\r\n",
        b"data: one\r\rdata: two\r\r",
        b"data: one\r\n\ndata: two\n\r\n",
        b"data: one\r\n\rdata: two\r\r\n",
    ],
)
def test_lf_crlf_and_cr_line_endings_all_end_lines(stream: bytes) -> None:
    assert parse(stream) == TWO_EVENTS


@pytest.mark.parametrize(
    "stream",
    [
        b"data: one\n\ndata: two\n\n",
        b"data: one\r\n\r\ndata: two\r\n\r\n",
        b"data: one\r\rdata: two\r\r",
    ],
)
def test_events_split_across_chunks_at_any_byte_parse_the_same(stream: bytes) -> None:
    for chunks in split_everywhere(stream):
        assert parse(*chunks) == TWO_EVENTS, chunks


@pytest.mark.parametrize("stream", [b"data: one\n\n", b"data: one\r\n\r\n", b"data: one\r\r"])
def test_an_event_is_dispatched_as_soon_as_its_blank_line_arrives(stream: bytes) -> None:
    """A relay must not hold an event back waiting for the next chunk (CR-only streams included)."""
    parser = SSEParser()
    assert list(parser.feed(stream)) == [SSEEvent(data="one")]


def test_a_crlf_split_between_chunks_is_one_line_ending_not_two() -> None:
    parser = SSEParser()
    assert list(parser.feed(b"data: a\r")) == []
    assert list(parser.feed(b"\ndata: b\r")) == []
    assert list(parser.feed(b"\n\r")) == [SSEEvent(data="a\nb")]


def test_an_unfinished_event_is_not_dispatched() -> None:
    assert parse(b"data: one\n") == []
    assert parse(b"data: one") == []


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\ndata: b\ndata:\ndata: c\n\n", "a\nb\n\nc"),
        (b"data:no-space\n\n", "no-space"),
        (b"data:  two spaces\n\n", " two spaces"),
        (b"data: has: colons: inside\n\n", "has: colons: inside"),
        (b"data\n\n", ""),
        (b"data:\n\n", ""),
        ("data: é 😀\n\n".encode(), "é 😀"),
        (b'data: {"jsonrpc":"2.0"}\n\n', '{"jsonrpc":"2.0"}'),
    ],
)
def test_data_lines_join_with_newlines_and_lose_one_leading_space(stream: bytes, expected: str) -> None:
    assert [event.data for event in parse(stream)] == [expected]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b": keep-alive\n", [SSEEvent(comment="keep-alive")]),
        (b":\n", [SSEEvent(comment="")]),
        (b":no space\n", [SSEEvent(comment="no space")]),
        (b"data: a\n: between\ndata: b\n\n", [SSEEvent(comment="between"), SSEEvent(data="a\nb")]),
        (KEEPALIVE, [SSEEvent(comment="keep-alive")]),
    ],
)
def test_comments_surface_as_comment_events_and_do_not_break_an_event(stream: bytes, expected: list[SSEEvent]) -> None:
    assert parse(stream) == expected


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"event: message\nid: 7\ndata: x\n\n", SSEEvent(data="x", event="message", id="7")),
        (b"event: custom\ndata: x\n\n", SSEEvent(data="x", event="custom")),
        (b"event:\ndata: x\n\n", SSEEvent(data="x", event="message")),
        (b"id: s.1\ndata:\nretry: 5000\n\n", SSEEvent(data="", id="s.1", retry=5000)),
        (b"id: 5\n\n", SSEEvent(id="5")),
        (b"retry: 1000\n\n", SSEEvent(retry=1000)),
        (b"id\ndata: x\n\n", SSEEvent(data="x", id="")),
        (b"id: a\x00b\ndata: x\n\n", SSEEvent(data="x")),
        (b"retry: 1.5\ndata: x\n\n", SSEEvent(data="x")),
        (b"retry: -1\ndata: x\n\n", SSEEvent(data="x")),
        (b"retry: \n\ndata: x\n\n", SSEEvent(data="x")),
        ("retry: \u00b2\ndata: x\n\n".encode(), SSEEvent(data="x")),  # superscript two: a digit, not ASCII
        ("retry: \u0661\u0662\ndata: x\n\n".encode(), SSEEvent(data="x")),  # Arabic-Indic digits
        (b"unknown: field\ndata: x\n\n", SSEEvent(data="x")),
        (b"Data: x\ndata: y\n\n", SSEEvent(data="y")),
    ],
)
def test_event_id_and_retry_fields_follow_the_standard(stream: bytes, expected: SSEEvent) -> None:
    assert parse(stream) == [expected]


def test_a_blank_line_with_nothing_buffered_dispatches_nothing() -> None:
    assert parse(b"\n\n\r\n\r\r") == []
    assert parse(b"event: lonely\n\n") == []


def test_fields_do_not_leak_from_one_event_into_the_next() -> None:
    assert parse(b"event: a\nid: 1\nretry: 10\ndata: x\n\ndata: y\n\n") == [
        SSEEvent(data="x", event="a", id="1", retry=10),
        SSEEvent(data="y"),
    ]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert parse(b"data: \xff\n\n") == [SSEEvent(data="\ufffd")]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"x" * 200],
        [b"data: " + b"x" * 60 + b"\n", b"data: " + b"x" * 60 + b"\n"],
        [b"x" * 150],
        [b"x" * 60, b"x" * 60],
    ],
)
def test_an_event_or_line_over_the_size_limit_is_refused(chunks: list[bytes]) -> None:
    with pytest.raises(ValueError, match="size limit"):
        parse(*chunks, limit=100)


def test_the_size_limit_applies_per_event_not_per_stream() -> None:
    event = b"data: " + b"x" * 60 + b"\n\n"
    assert len(parse(event * 10, limit=100)) == 10


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (encode("x"), b"event: message\r\ndata: x\r\n\r\n"),
        (encode("a\nb"), b"event: message\r\ndata: a\r\ndata: b\r\n\r\n"),
        (encode("a\n\nb"), b"event: message\r\ndata: a\r\ndata:\r\ndata: b\r\n\r\n"),
        (encode("", event_id="s.0", retry=5000), b"event: message\r\nid: s.0\r\nretry: 5000\r\ndata:\r\n\r\n"),
        (encode("x", event=None), b"data: x\r\n\r\n"),
        (encode(None, event_id="7", event=None), b"id: 7\r\n\r\n"),
        (comment("waiting"), b": waiting\r\n\r\n"),
        (comment("two\nlines"), b": two\r\n: lines\r\n\r\n"),
    ],
)
def test_encode_writes_crlf_frames(frame: bytes, expected: bytes) -> None:
    assert frame == expected


@pytest.mark.parametrize(
    "event",
    [
        SSEEvent(data='{"jsonrpc":"2.0","id":1,"result":{}}'),
        SSEEvent(data="multi\nline\n\ndata"),
        SSEEvent(data="", id="stream.0", retry=5000),
        SSEEvent(data=" leading space", event="custom", id="u.9"),
        SSEEvent(data="é 😀"),
    ],
)
def test_encode_round_trips_through_the_parser(event: SSEEvent) -> None:
    frame = encode(event.data, event_id=event.id, event=event.event, retry=event.retry)
    assert parse(frame) == [event]
