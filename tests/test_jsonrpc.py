"""Parsing a client message once, unambiguously, or refusing it; canonical JSON and argument hashes.

Provenance: JSON-RPC 2.0 and RFC 8259 (error codes, what JSON is, the interoperable integer range),
plus Airlock-defined strictness (refuse what conforming parsers read differently: duplicate keys,
lone surrogates, NaN, overflow, integers a double cannot hold).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from app.jsonrpc import (
    MessageError,
    arguments_hash,
    canonical_json,
    member_text,
    parse_json,
    parse_message,
    tool_call_of,
)
from app.protocol import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR


def refusal(raw: bytes, parse: Any = parse_json) -> MessageError:
    with pytest.raises(MessageError) as refused:
        parse(raw)
    return refused.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":1}', {"a": 1}),
        (b' \t\r\n{"a":1}', {"a": 1}),
        (b'{"a":1} \t\r\n', {"a": 1}),
        (b'{"a":"\\u00e9\\ud83d\\ude00"}', {"a": "é😀"}),
        ('{"a":"é"}'.encode(), {"a": "é"}),
        (b'{"a":"\\u0000"}', {"a": "\x00"}),
        (b"[1e-400, 1.5e308, -0]", [0.0, 1.5e308, 0]),
        (
            b"[9007199254740991, -9007199254740991, 1e300, 9007199254740993.0]",
            [2**53 - 1, -(2**53 - 1), 1e300, 9007199254740992.0],
        ),
        (b'{"a":' + b"[" * 63 + b"]" * 63 + b"}", {"a": json.loads(b"[" * 63 + b"]" * 63)}),
    ],
)
def test_parse_json_accepts_strict_json(raw: bytes, expected: Any) -> None:
    assert parse_json(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"{'a': 1}", "Expecting property name"),
        (b'{"a":1} x', "extra data"),
        (b'{"a":1}{"b":2}', "extra data"),
        (b'{"a":1}\x00', "extra data"),
        (b'\xef\xbb\xbf{"a":1}', "byte-order mark"),
        (b'{"a":"\xff"}', "not UTF-8"),
        (b'{"a":"\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 (CESU-8)
        ('{"a":1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a":"\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"a":"\\ude00\\ud83d"}', "unpaired UTF-16 surrogate"),
        (b'{"\\udfff":1}', "unpaired UTF-16 surrogate"),
        (b'{"a":NaN}', "NaN is not valid JSON"),
        (b'{"a":Infinity}', "Infinity is not valid JSON"),
        (b'{"a":-Infinity}', "-Infinity is not valid JSON"),
        (b'{"a":1e400}', "out of range"),
        (b'{"a":-1E+400}', "out of range"),
        (b'{"a":' + b"1" * 5000 + b"}", "beyond ±(2**53 - 1)"),
        (b'{"a":9007199254740992}', "integer 9007199254740992 is beyond ±(2**53 - 1)"),
        (b'{"a":-9007199254740993}', "beyond ±(2**53 - 1)"),
        (b'{"a":[18446744073709551615]}', "beyond ±(2**53 - 1)"),
        (b'{"jsonrpc":"2.0","id":99999999999999999,"method":"x"}', "beyond ±(2**53 - 1)"),
        (b'{"a":1,"a":1}', "duplicate key 'a'"),
        (b'{"a":{"b":1,"b":2}}', "duplicate key 'b'"),
        (b'{"name":"x","na\\u006de":"y"}', "duplicate key 'name'"),
        (b"[" * 65 + b"]" * 65, "nesting deeper than 64"),
        (b"[" * 200_000, "nesting too deep"),
        (b'"a\tb"', "Invalid control character"),
        (b'{"a":01}', "Expecting ','"),
        (b'{"a":.5}', "Expecting value"),
        (b'{"a":true,}', "Expecting property name"),
        (b"\x0c{}", "Expecting value"),  # form feed is not JSON whitespace
        (b"{}\xc2\xa0", "extra data"),  # nor is a no-break space
    ],
)
def test_parse_json_refuses_what_is_not_one_unambiguous_document(raw: bytes, why: str) -> None:
    error = refusal(raw)
    assert error.code == PARSE_ERROR
    assert error.message.startswith("Parse error: ") and why in error.message
    assert error.request_id is None


@pytest.mark.parametrize(
    ("raw", "kind", "request_id", "method"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "request", 1, "tools/list"),
        (b'{"jsonrpc":"2.0","id":"a","method":"x","params":{}}', "request", "a", "x"),
        (b'{"jsonrpc":"2.0","id":-7,"method":"x"}', "request", -7, "x"),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', "notification", None, "notifications/initialized"),
        (b'{"jsonrpc":"2.0","id":3,"result":{"action":"accept"}}', "response", 3, None),
        (b'{"jsonrpc":"2.0","id":"e","error":{"code":-1,"message":"no"}}', "response", "e", None),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","extra":{"kept":true}}', "request", 1, "x"),
    ],
)
def test_parse_message_classifies_requests_notifications_and_responses(
    raw: bytes, kind: str, request_id: Any, method: str | None
) -> None:
    message = parse_message(raw)
    assert (message.kind, message.id, message.method) == (kind, request_id, method)
    assert message.raw is raw


@pytest.mark.parametrize(
    ("raw", "code", "request_id", "why"),
    [
        (b"[]", INVALID_REQUEST, None, "batches are not supported"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"x"}]', INVALID_REQUEST, None, "batches are not supported"),
        (b"1", INVALID_REQUEST, None, "must be a JSON-RPC object"),
        (b'"x"', INVALID_REQUEST, None, "must be a JSON-RPC object"),
        (b"null", INVALID_REQUEST, None, "must be a JSON-RPC object"),
        (b"{}", INVALID_REQUEST, None, '"jsonrpc" must be "2.0"'),
        (b'{"id":1,"method":"x"}', INVALID_REQUEST, 1, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"1.0","id":1,"method":"x"}', INVALID_REQUEST, 1, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":2.0,"id":1,"method":"x"}', INVALID_REQUEST, 1, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"2.0","id":null,"method":"x"}', INVALID_REQUEST, None, "id must be a string or an integer"),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"x"}', INVALID_REQUEST, None, "id must be a string or an integer"),
        (b'{"jsonrpc":"2.0","id":true,"method":"x"}', INVALID_REQUEST, None, "id must be a string or an integer"),
        (b'{"jsonrpc":"2.0","id":[1],"method":"x"}', INVALID_REQUEST, None, "id must be a string or an integer"),
        (b'{"jsonrpc":"2.0","id":{},"method":"x"}', INVALID_REQUEST, None, "id must be a string or an integer"),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', INVALID_REQUEST, 1, "method must be a non-empty string"),
        (b'{"jsonrpc":"2.0","id":1,"method":7}', INVALID_REQUEST, 1, "method must be a non-empty string"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","result":{}}', INVALID_REQUEST, 1, "cannot carry result or error"),
        (b'{"jsonrpc":"2.0","method":"x","error":{}}', INVALID_REQUEST, None, "cannot carry result or error"),
        (b'{"jsonrpc":"2.0","id":1}', INVALID_REQUEST, 1, "not a request, notification or response"),
        (b'{"jsonrpc":"2.0","result":{}}', INVALID_REQUEST, None, "not a request, notification or response"),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', INVALID_REQUEST, 1, "not a request"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}', INVALID_PARAMS, 1, "params must be an object"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":null}', INVALID_PARAMS, 1, "params must be an object"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}', INVALID_PARAMS, 1, "params must be an object"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","id":2}', PARSE_ERROR, None, "duplicate key 'id'"),
    ],
)
def test_parse_message_refuses_what_is_not_one_json_rpc_message(
    raw: bytes, code: int, request_id: Any, why: str
) -> None:
    error = refusal(raw, parse_message)
    assert (error.code, error.request_id) == (code, request_id)
    assert why in error.message


def call(params: Any, request_id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


@pytest.mark.parametrize(
    ("params", "name", "arguments", "token"),
    [
        ({"name": "t", "arguments": {"a": 1}}, "t", {"a": 1}, None),
        ({"name": "t"}, "t", {}, None),
        ({"name": "t", "arguments": None}, "t", {}, None),
        ({"name": "t", "_meta": {"progressToken": "p"}}, "t", {}, "p"),
        ({"name": "t", "_meta": {"progressToken": 5}}, "t", {}, 5),
        ({"name": "t", "_meta": {"progressToken": True}}, "t", {}, None),
        ({"name": "t", "_meta": {"progressToken": 1.5}}, "t", {}, None),
        ({"name": "t", "_meta": "not an object"}, "t", {}, None),
    ],
)
def test_tool_call_of_reads_name_arguments_and_progress_token(
    params: Any, name: str, arguments: Any, token: Any
) -> None:
    tool_call = tool_call_of(parse_message(call(params)))
    assert (tool_call.name, tool_call.arguments, tool_call.progress_token) == (name, arguments, token)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({}, "needs a tool name"),
        ({"name": ""}, "needs a tool name"),
        ({"name": 7}, "needs a tool name"),
        ({"name": None}, "needs a tool name"),
        ({"name": "t", "arguments": []}, "arguments must be an object"),
        ({"name": "t", "arguments": "a=1"}, "arguments must be an object"),
        ({"name": "t", "arguments": 1}, "arguments must be an object"),
    ],
)
def test_tool_call_of_refuses_invalid_params_naming_the_request(params: Any, why: str) -> None:
    with pytest.raises(MessageError) as refused:
        tool_call_of(parse_message(call(params, "req-9")))
    assert (refused.value.code, refused.value.request_id) == (INVALID_PARAMS, "req-9")
    assert why in refused.value.message


def test_tool_call_of_a_request_without_params_needs_a_name() -> None:
    with pytest.raises(MessageError) as refused:
        tool_call_of(parse_message(b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}'))
    assert refused.value.code == INVALID_PARAMS


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        (b'{"params":{"a":1}}', "params", '{"a":1}'),
        (b' { "id" : 1 ,\n "params" :\t{ "a" : [ 1 , 2 ] } , "z" : null } ', "params", '{ "a" : [ 1 , 2 ] }'),
        (b'{"id":"{\\"params\\":1}","params":"\\u00e9"}', "params", '"\\u00e9"'),
        (b'{"a":{"params":1},"params":2}', "params", "2"),
        (b'{"p\\u0061rams":[1]}', "params", "[1]"),
        (b'{"a":1}', "params", None),
        (b"{}", "params", None),
        (b"[1]", "params", None),
        (b'"params"', "params", None),
        ('{"params":{"t":"é"}}'.encode(), "params", '{"t":"é"}'),
    ],
)
def test_member_text_is_the_exact_text_of_a_top_level_member(raw: bytes, key: str, expected: str | None) -> None:
    parse_json(raw)  # member_text's precondition
    assert member_text(raw, key) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [1, {"d": None, "c": True}]}, '{"a":[1,{"c":true,"d":null}],"b":1}'),
        ({"é": "ü", "emoji": "😀"}, '{"emoji":"😀","é":"ü"}'),
        ({}, "{}"),
        ([], "[]"),
        ({"n": 1.0, "m": 10**20}, '{"m":100000000000000000000,"n":1.0}'),
        ({"s": 'line\nbreak\t"q"'}, '{"s":"line\\nbreak\\t\\"q\\""}'),
    ],
)
def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_unicode(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected


def test_arguments_hash_is_the_sha256_of_the_canonical_json() -> None:
    arguments = {"task_id": "t-1", "reason": "dupé"}
    expected = hashlib.sha256('{"reason":"dupé","task_id":"t-1"}'.encode()).hexdigest()
    assert arguments_hash(arguments) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b'{"a":1,"b":[1,2]}', b'{ "b" : [1, 2], "a" : 1 }'),
        (b'{"s":"\\u00e9"}', '{"s":"é"}'.encode()),
        (b'{"s":"\\/"}', b'{"s":"/"}'),
    ],
)
def test_arguments_hash_is_the_same_however_the_same_arguments_are_spelled(first: bytes, second: bytes) -> None:
    assert arguments_hash(parse_json(first)) == arguments_hash(parse_json(second))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"a": 1}, {"a": "1"}),
        ({"a": 1}, {"a": 1, "b": None}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ({"a": True}, {"a": 1}),
    ],
)
def test_arguments_hash_tells_different_arguments_apart(first: Any, second: Any) -> None:
    assert arguments_hash(first) != arguments_hash(second)
