"""Arguments checked against a tool's published inputSchema, strictly (issue 10). Airlock-defined.

The schemas are the shapes the MCP Python SDK publishes for typed parameters (bool, int,
list[str], a nested model, Optional[int] as anyOf), as `tools/list` carries them.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from app.policy.arguments import SchemaCache, compile_schema, format_path
from app.upstream import ToolCatalog

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "force": {"type": "boolean", "title": "Force"},
        "limit": {"type": "integer"},
        "recipients": {"type": "array", "items": {"type": "string"}},
        "options": {"$ref": "#/$defs/Options"},
        "retries": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        "mode": {"enum": ["fast", "safe"]},
    },
    "required": ["force"],
    "$defs": {"Options": {"type": "object", "properties": {"dry_run": {"type": "boolean"}},
                          "required": ["dry_run"], "additionalProperties": False}},
}


def problem_of(arguments: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> tuple[str, str] | None:
    compiled = compile_schema(schema)
    assert compiled is not None
    problem = compiled.check(arguments)
    return None if problem is None else (problem.path, problem.text)


@pytest.mark.parametrize(
    ("arguments", "path", "text"),
    [
        *(({"force": spelling}, "force", f'argument "force" must be a boolean, not the {kind} {shown}')
          for spelling, kind, shown in [("true", "string", '"true"'), ("yes", "string", '"yes"'),
                                        (1, "number", "1"), ("1", "string", '"1"')]),
        ({"force": None}, "force", 'argument "force" must be a boolean, not null'),
        ({"force": True, "limit": "150"}, "limit", 'argument "limit" must be an integer, not the string "150"'),
        ({"force": True, "limit": True}, "limit", 'argument "limit" must be an integer, not the boolean true'),
        ({"force": True, "limit": 1.5}, "limit", 'argument "limit" must be an integer, not the number 1.5'),
        ({"force": True, "recipients": '["ceo\\u0040corp.com"]'}, "recipients",
         'argument "recipients" must be an array, not the string "[\\"ceo\\\\u0040corp.com\\"]"'),
        ({"force": True, "recipients": ["a@b.c", 7]}, "recipients.1",
         'argument "recipients.1" must be a string, not the number 7'),
        ({"force": True, "options": '{"dry_run": true}'}, "options",
         'argument "options" must be an object, not the string "{\\"dry_run\\": true}"'),
        ({"force": True, "options": {"dry_run": "false"}}, "options.dry_run",
         'argument "options.dry_run" must be a boolean, not the string "false"'),
        ({"force": True, "options": {}}, "options.dry_run", 'argument "options.dry_run" is required'),
        ({"force": True, "options": {"dry_run": True, "x": 1}}, "options.x",
         'argument "options.x" is not a parameter of this tool'),
        ({"force": True, "retries": "3"}, "retries", 'argument "retries" must be an integer or null, not the string "3"'),
        ({"force": True, "mode": "FAST"}, "mode", 'argument "mode" must be one of "fast", "safe", not the string "FAST"'),
        ({}, "force", 'argument "force" is required'),
    ],
)
def test_issue10_arguments_that_a_lax_upstream_would_coerce_are_refused_naming_the_field_and_type(
    arguments: dict[str, Any], path: str, text: str
) -> None:
    assert problem_of(arguments) == (path, text)


@pytest.mark.parametrize(
    "arguments",
    [
        {"force": True},
        {"force": False, "limit": 150, "recipients": [], "options": {"dry_run": True}, "retries": None},
        {"force": True, "limit": 150.0, "retries": 3, "mode": "safe", "unknown_extra": "kept by the schema's rules"},
    ],
)
def test_conforming_arguments_pass(arguments: dict[str, Any]) -> None:
    assert problem_of(arguments) is None


def test_the_schemas_own_dialect_is_used_and_draft_2020_12_is_the_default() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"n": {"type": "integer", "maximum": 5, "exclusiveMaximum": True}}}
    assert problem_of({"n": 4}, draft4) is None
    assert problem_of({"n": 5}, draft4) is not None
    assert compile_schema({k: v for k, v in draft4.items() if k != "$schema"}) is None  # not valid 2020-12


@pytest.mark.parametrize("schema", [None, "object", [], {"type": "objekt"}, {"properties": {"a": {"minimum": "x"}}}])
def test_a_schema_that_is_not_valid_json_schema_is_not_used(schema: Any) -> None:
    assert compile_schema(schema) is None


def test_a_remote_ref_is_never_fetched_and_the_call_is_left_to_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetched a remote $ref")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    compiled = compile_schema({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/evil.json"}}})
    assert compiled is not None
    assert compiled.check({"a": 1}) is None


def test_a_validator_is_compiled_once_per_published_schema() -> None:
    catalog, cache = ToolCatalog(), SchemaCache()
    catalog.learn([{"name": "t", "inputSchema": dict(SCHEMA)}])
    first = cache.for_tool("t", catalog.input_schemas["t"])
    catalog.learn([{"name": "t", "inputSchema": dict(SCHEMA)}])  # listed again, same schema
    assert cache.for_tool("t", catalog.input_schemas["t"]) is first
    catalog.learn([{"name": "t", "inputSchema": {"type": "object"}}])
    assert cache.for_tool("t", catalog.input_schemas["t"]) is not first


@pytest.mark.parametrize(
    ("parts", "path"),
    [([], ""), (["a", 0, "b"], "a.0.b"), (["a.b", "c"], "/a.b/c"), (["x/y", "~"], "x/y.~"), (["/x", "~"], "/~1x/~0"), ([""], "/")],
)
def test_problem_paths_use_the_policys_path_syntax(parts: list[Any], path: str) -> None:
    assert format_path(parts) == path
