"""Aliases shared across Airlock's layers: names, JSON values and ASGI callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

ReviewerName: TypeAlias = str
UpstreamName: TypeAlias = str

JSON: TypeAlias = Any
"""A value decoded from JSON: dict, list, str, int, float, bool or None."""

JSONObject: TypeAlias = dict[str, Any]
RequestId: TypeAlias = str | int
"""A JSON-RPC request id, kept with its JSON type ("1" is not 1)."""

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
