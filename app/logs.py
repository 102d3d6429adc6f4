"""Log lines: the `text` or `json` format (`[logging] format`), and the request fields they carry.

Every log line written while Airlock serves a request can carry that request's correlation fields
(`request_id`, `agent`, `upstream`, `tool`, `decision`, `approval_id`): the access-log middleware
(`app/access_log.py`) opens a field set per request with `request_fields()`, and the code that
learns a field adds it with `bind()` (the endpoint once the agent is authenticated, the call
path once the tool and its decision are known, parking once the approval exists). Tasks spawned
while serving the request (an approved call's execution) copy the context and keep the fields.

In the `json` format each record is one JSON object on one line: `time` (UTC, ISO 8601 with `Z`),
`level`, `logger`, `message`, the request's fields, the record's own fields (`extra={"fields":
{...}}`, as the access log passes them), and `exception` (the formatted traceback) when there is
one. The `text` format is the CLI's usual line; it does not append the fields (a reader of text
logs greps the message, and the access log line names its fields in its message).

This module does not decide what is logged, and never reads settings at import: `apply()` is
called once by `airlock serve` after the settings are loaded. Outside a request `bind()` is a
no-op, so library code may call it unconditionally.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
FIELDS_ATTRIBUTE: Final = "fields"
"""`logger.info(..., extra={"fields": {...}})`: fields of this one record (the access log's)."""

_request_fields: ContextVar[dict[str, Any] | None] = ContextVar("airlock_request_fields", default=None)


@contextmanager
def request_fields(**fields: Any) -> Iterator[dict[str, Any]]:
    """Open the field set of one request for the duration of the block; yields it (mutable)."""
    bound: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}
    token = _request_fields.set(bound)
    try:
        yield bound
    finally:
        _request_fields.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current request's set (ignored outside a request, and for None values)."""
    bound = _request_fields.get()
    if bound is not None:
        bound.update((key, value) for key, value in fields.items() if value is not None)


def current_fields() -> Mapping[str, Any]:
    return _request_fields.get() or {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current_fields(),
        }
        own = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(own, Mapping):
            line.update(own)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter for `log_format` (`text`: the CLI's usual line, in UTC)."""
    if log_format == "json":
        return JsonFormatter()
    text = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%SZ")
    text.converter = time.gmtime
    return text


def apply(log_format: LogFormat) -> None:
    """Put `log_format` on the root logger's handlers (installed by the CLI); uvicorn's lines join them.

    In the `json` format uvicorn's own loggers are routed to the root handlers too (their
    handlers removed), so that every line of the process is JSON: see `uvicorn_options`.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))


def uvicorn_options(log_format: LogFormat) -> dict[str, Any]:
    """uvicorn.Config options for `log_format`: in `json`, no logging config of uvicorn's own.

    uvicorn's default config gives its loggers their own text handlers; with `log_config=None`
    they propagate to the root logger and its JSON formatter instead.
    """
    return {"log_config": None} if log_format == "json" else {}
