"""JSON-RPC 2.0 messages as Airlock sees them: parsed once, unambiguously, or refused.

Airlock forwards the agent's original bytes to the upstream, so the policy's view of a message and
the upstream's view must be the same document. That holds only if the bytes cannot be read two
ways, so this parser refuses what conforming JSON parsers disagree on:

- anything but strict UTF-8 (no BOM, no UTF-16/32 sniffing as `json.loads(bytes)` would do);
- duplicate object keys (first-wins and last-wins parsers would see different calls);
- lone UTF-16 surrogate escapes (`"\\ud800"`), which some parsers replace and others keep;
- `NaN`, `Infinity` and numbers that overflow to infinity (not JSON; parsers differ);
- integers beyond ±(2**53 - 1): RFC 8259 §6 names that range the interoperable one, because
  parsers that read numbers as doubles (JavaScript's among them) round larger ones, so a policy
  condition on `9007199254740993` would judge another number than such an upstream acts on.

Pure module: no I/O. It also owns the error and result builders, and the canonical JSON and
SHA-256 that bind an approval to its exact arguments. The JSON-RPC error codes are `app.protocol`'s
(the SDK's), re-exported here for the modules that import them from here; new code imports them
from `app.protocol`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.protocol import HEADER_MISMATCH as HEADER_MISMATCH
from app.protocol import INTERNAL_ERROR as INTERNAL_ERROR
from app.protocol import INVALID_PARAMS as INVALID_PARAMS
from app.protocol import INVALID_REQUEST as INVALID_REQUEST
from app.protocol import METHOD_NOT_FOUND as METHOD_NOT_FOUND
from app.protocol import PARSE_ERROR as PARSE_ERROR
from app.protocol import Era
from app.types import JSON, JSONObject, RequestId

MAX_TOOL_NAME: Final = 256
"""Longer tool names are refused (MCP tool names are meant to be at most 128 characters)."""

_MAX_DEPTH: Final = 64
"""Nesting deeper than this is refused: no real MCP message needs it, and deep input is a DoS vector."""


class MessageError(ValueError):
    """A message Airlock refuses to parse or route. Carries the JSON-RPC error to answer with."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _reject_constant(name: str) -> Any:
    raise MessageError(PARSE_ERROR, f"Parse error: {name} is not valid JSON")


_MAX_EXACT_INT: Final = 2**53 - 1


def _interoperable_int(text: str) -> int:
    # 16 digits can exceed 2**53 - 1 and 17 always do; checking the length first keeps a
    # 4000-digit number from being converted at all.
    value = int(text) if len(text.lstrip("-")) <= 16 else _MAX_EXACT_INT + 1
    if abs(value) > _MAX_EXACT_INT:
        raise MessageError(
            PARSE_ERROR,
            f"Parse error: integer {text[:40]} is beyond ±(2**53 - 1), which not every JSON parser reads exactly",
        )
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise MessageError(PARSE_ERROR, f"Parse error: number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MessageError(PARSE_ERROR, f"Parse error: duplicate key {key[:80]!r} in an object")
            seen.add(key)
    return obj


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_constant=_reject_constant,
    parse_float=_finite_float,
    parse_int=_interoperable_int,
)


def parse_json(raw: bytes) -> JSON:
    """Decode `raw` as one strict JSON document.

    Raises:
        MessageError: with `PARSE_ERROR` when the bytes are not one unambiguous JSON document.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raise MessageError(PARSE_ERROR, "Parse error: a byte-order mark is not allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: body is not UTF-8 ({exc.reason})") from None
    try:
        # raw_decode (unlike json.loads) does not skip leading whitespace, which RFC 8259 allows.
        value, end = _DECODER.raw_decode(text, _skip(text, 0))
    except MessageError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: {_describe(exc)}") from None
    if text[end:].strip(" \t\r\n"):
        raise MessageError(PARSE_ERROR, "Parse error: extra data after the JSON document")
    if "\\u" in text and _has_lone_surrogate(value):
        raise MessageError(PARSE_ERROR, "Parse error: a string holds an unpaired UTF-16 surrogate escape")
    # Counting brackets is C-fast and bounds the depth from above: only a document with more
    # than _MAX_DEPTH of them (strings included, so this can over-count) needs the walk.
    if text.count("{") + text.count("[") > _MAX_DEPTH and _depth_exceeds(value, _MAX_DEPTH):
        raise MessageError(PARSE_ERROR, f"Parse error: nesting deeper than {_MAX_DEPTH} levels")
    return value


def _describe(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    return str(exc)[:200]


def _has_lone_surrogate(value: JSON) -> bool:
    stack: list[JSON] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth_exceeds(value: JSON, limit: int) -> bool:
    stack: list[tuple[JSON, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


MessageKind = Literal["request", "notification", "response"]


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message from a client, classified.

    `raw` is the exact bytes received: that is what gets forwarded, and it is the same document
    as `body` because `parse_json` refuses anything that could be read two ways.
    """

    kind: MessageKind
    body: JSONObject
    raw: bytes

    @property
    def id(self) -> RequestId | None:
        value = self.body.get("id")
        return value if isinstance(value, str | int) else None

    @property
    def method(self) -> str | None:
        method = self.body.get("method")
        return method if isinstance(method, str) else None

    @property
    def params(self) -> JSONObject:
        params = self.body.get("params")
        return params if isinstance(params, dict) else {}


def parse_message(raw: bytes) -> Message:
    """Parse and classify one client message (request, notification or response).

    Raises:
        MessageError: `PARSE_ERROR` for bad JSON, `INVALID_REQUEST` for valid JSON that is not one
            JSON-RPC 2.0 message (batches included: no protocol revision Airlock serves allows
            them any more).
    """
    body = parse_json(raw)
    if isinstance(body, list):
        raise MessageError(INVALID_REQUEST, "Invalid Request: batches are not supported; send one message per POST")
    if not isinstance(body, dict):
        raise MessageError(INVALID_REQUEST, "Invalid Request: the body must be a JSON-RPC object")
    request_id = body.get("id")
    has_id = "id" in body
    if has_id and not _valid_id(request_id):
        raise MessageError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    valid_id = request_id if has_id else None
    if body.get("jsonrpc") != "2.0":
        raise MessageError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', valid_id)
    if "method" in body:
        return _classify_call(body, raw, has_id, valid_id)
    if not has_id or ("result" in body) == ("error" in body):
        raise MessageError(INVALID_REQUEST, "Invalid Request: not a request, notification or response", valid_id)
    return Message("response", body, raw)


def _classify_call(body: JSONObject, raw: bytes, has_id: bool, request_id: RequestId | None) -> Message:
    if not isinstance(body["method"], str) or not body["method"]:
        raise MessageError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string", request_id)
    if "result" in body or "error" in body:
        raise MessageError(INVALID_REQUEST, "Invalid Request: a request cannot carry result or error", request_id)
    if "params" in body and not isinstance(body["params"], dict):
        raise MessageError(INVALID_PARAMS, "Invalid params: params must be an object", request_id)
    return Message("request" if has_id else "notification", body, raw)


def _valid_id(value: object) -> bool:
    # Booleans are ints in Python but not JSON-RPC ids; floats and null are not allowed as MCP ids.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The `tools/call` a policy judges: the tool's name and its exact arguments."""

    name: str
    arguments: JSONObject
    progress_token: str | int | None


def tool_call_of(message: Message) -> ToolCall:
    """Read the tool call out of a `tools/call` request.

    Raises:
        MessageError: `INVALID_PARAMS` when the name or arguments are missing or of the wrong type.
    """
    params = message.params
    name = params.get("name")
    if not isinstance(name, str) or not name:
        raise MessageError(INVALID_PARAMS, "Invalid params: tools/call needs a tool name", message.id)
    if len(name) > MAX_TOOL_NAME:
        raise MessageError(
            INVALID_PARAMS, f"Invalid params: tool names are at most {MAX_TOOL_NAME} characters", message.id
        )
    arguments = params.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise MessageError(INVALID_PARAMS, "Invalid params: tools/call arguments must be an object", message.id)
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if not (isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool))):
        token = None
    return ToolCall(name=name, arguments=arguments, progress_token=token)


def json_object(raw: str | bytes) -> JSONObject | None:
    """`raw` as a JSON object, or None (lenient: for reading upstream answers, where garbage is the
    upstream's failure to answer, not a reason for Airlock to crash)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def is_response(message: JSONObject) -> bool:
    """Whether a decoded message is a JSON-RPC response (a result or an error for some id)."""
    return "id" in message and ("result" in message or "error" in message) and "method" not in message


def canonical_json(value: JSON) -> str:
    """A stable text form of `value`: sorted keys, no insignificant whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def arguments_hash(arguments: JSON) -> str:
    """The SHA-256 (hex) of the canonical JSON of a call's arguments: what an approval is bound to."""
    return hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()


def dumps(value: JSON) -> bytes:
    """Compact JSON bytes for the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_response(request_id: RequestId | None, code: int, message: str, data: JSON = None) -> JSONObject:
    """A JSON-RPC error response (with `id: null` when the request's id is unknown)."""
    error: JSONObject = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_response(request_id: RequestId | None, result: JSONObject) -> JSONObject:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def tool_error_result(
    text: str, *, meta: JSONObject | None = None, era: Era = Era.HANDSHAKE, modern: bool | None = None
) -> JSONObject:
    """A `CallToolResult` with `isError: true`: how refusals reach the model, which can act on them.

    Args:
        text: what the model reads.
        meta: `_meta` entries for machines (e.g. the pending approval's id and review URL).
        era: the era of the request answered; `Era.MODERN` adds `resultType: "complete"`, which
            2026-07-28 requires on every result.
        modern: the former spelling of `era`; when given, it wins.
    """
    # TODO(h-protocol, issue 11): drop `modern` once gateway/calls.py, gateway/handshake.py,
    # approvals/executor.py and approvals/outcomes.py pass `era`.
    if modern is not None:
        era = Era.MODERN if modern else Era.HANDSHAKE
    result: JSONObject = {"content": [{"type": "text", "text": text}], "isError": True}
    if era is Era.MODERN:
        result["resultType"] = "complete"
    if meta:
        result["_meta"] = meta
    return result


_WHITESPACE: Final = " \t\r\n"


def member_text(raw: bytes, key: str) -> str | None:
    """The exact JSON text of the top-level member `key` of an object, or None if it has none.

    This is how an approval keeps "byte for byte what was approved": the `params` of a parked
    `tools/call` are stored as the agent sent them, and the executor splices them into the
    request it sends upstream. `raw` must already have passed `parse_json`.
    """
    text = raw.decode("utf-8")
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        return None
    index = _skip(text, index + 1)
    while index < len(text) and text[index] != "}":
        name, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
        index = _skip(text, index)
        index = _skip(text, index + 1)  # past ':'
        start = index
        _, index = _DECODER.raw_decode(text, start)
        if name == key:
            return text[start:index]
        index = _skip(text, index)
        if text[index : index + 1] == ",":
            index = _skip(text, index + 1)
    return None


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index
