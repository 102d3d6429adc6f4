"""Argument validation cost: microseconds per call to check arguments against a tool's inputSchema.

Issue 10 puts this check on every judged call's path. The schema is the shape the MCP Python
SDK publishes for a realistic tool (strings with bounds, a number, an Optional int as `anyOf`, an
enum, a list of strings and a nested model through `$defs`/`$ref`). Timed: a conforming call (the
common case), a non-conforming one (the refusal, with its message built), and compiling the
validator (once per published schema, so off the per-call path). CPU time, not wall time: the
figure is what a call costs the gateway's process.
"""

from __future__ import annotations

import time
import timeit
from typing import Any

from app.policy.arguments import compile_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "publish_taskArguments",
    "properties": {
        "title": {"type": "string", "minLength": 1, "title": "Title"},
        "description": {"type": "string", "title": "Description"},
        "bounty_usd": {"type": "number", "exclusiveMinimum": 0, "title": "Bounty Usd"},
        "deadline_hours": {"type": "integer", "minimum": 1, "maximum": 720, "default": 24},
        "agent_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "category": {"enum": ["photo", "delivery", "survey", "other"], "default": "other"},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "location": {"anyOf": [{"$ref": "#/$defs/Location"}, {"type": "null"}], "default": None},
    },
    "required": ["title", "description", "bounty_usd"],
    "$defs": {
        "Location": {
            "type": "object",
            "title": "Location",
            "required": ["lat", "lon"],
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "radius_m": {"type": "integer", "minimum": 0, "default": 500},
            },
        }
    },
}
VALID: dict[str, Any] = {
    "title": "Photograph the corner bakery",
    "description": "Front and inside, daylight.",
    "bounty_usd": 12.5,
    "deadline_hours": 48,
    "agent_id": "agent-7",
    "category": "photo",
    "tags": ["photo", "retail", "urgent"],
    "location": {"lat": 52.52, "lon": 13.405},
}
INVALID: dict[str, Any] = {**VALID, "location": {"lat": "52.52", "lon": 13.405}}
ONE_STRING: dict[str, Any] = {"type": "object", "properties": {"task_id": {"type": "string"}}, "required": ["task_id"]}


def time_check(arguments: dict[str, Any], *, number: int, published: dict[str, Any] = SCHEMA) -> float:
    """CPU microseconds per check (best of 5 repeats; CPU time, so a loaded machine does not inflate it)."""
    schema = compile_schema(published)
    assert schema is not None
    repeats = timeit.repeat(lambda: schema.check(arguments), number=number, repeat=5, timer=time.process_time)
    return min(repeats) / number * 1e6


def run() -> dict[str, Any]:
    compile_us = (
        min(timeit.repeat(lambda: compile_schema(SCHEMA), number=10, repeat=3, timer=time.process_time)) / 10 * 1e6
    )
    return {
        "valid_call_us": round(time_check(VALID, number=1000), 1),
        "invalid_call_us": round(time_check(INVALID, number=300), 1),
        "one_string_call_us": round(time_check({"task_id": "t-1"}, number=5000, published=ONE_STRING), 1),
        "compile_us": round(compile_us, 1),
    }


if __name__ == "__main__":
    print(run())
