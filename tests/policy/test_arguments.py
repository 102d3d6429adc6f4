"""Arguments checked against a tool's published inputSchema, strictly (issue 10). Airlock-defined.

The schemas are the shapes the MCP Python SDK publishes for typed parameters (bool, int,
list[str], a nested model, Optional[int] as anyOf), as `tools/list` carries them.
"""

from __future__ import annotations

import random
import urllib.request
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

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
    "$defs": {
        "Options": {
            "type": "object",
            "properties": {"dry_run": {"type": "boolean"}},
            "required": ["dry_run"],
            "additionalProperties": False,
        }
    },
}


def problem_of(arguments: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> tuple[str, str] | None:
    compiled = compile_schema(schema)
    assert compiled is not None
    problem = compiled.check(arguments)
    return None if problem is None else (problem.path, problem.text)


@pytest.mark.parametrize(
    ("arguments", "path", "text"),
    [
        *(
            ({"force": spelling}, "force", f'argument "force" must be a boolean, not the {kind} {shown}')
            for spelling, kind, shown in [
                ("true", "string", '"true"'),
                ("yes", "string", '"yes"'),
                (1, "number", "1"),
                ("1", "string", '"1"'),
            ]
        ),
        ({"force": None}, "force", 'argument "force" must be a boolean, not null'),
        ({"force": True, "limit": "150"}, "limit", 'argument "limit" must be an integer, not the string "150"'),
        ({"force": True, "limit": True}, "limit", 'argument "limit" must be an integer, not the boolean true'),
        ({"force": True, "limit": 1.5}, "limit", 'argument "limit" must be an integer, not the number 1.5'),
        (
            {"force": True, "recipients": '["ceo\\u0040corp.com"]'},
            "recipients",
            'argument "recipients" must be an array, not the string "[\\"ceo\\\\u0040corp.com\\"]"',
        ),
        (
            {"force": True, "recipients": ["a@b.c", 7]},
            "recipients.1",
            'argument "recipients.1" must be a string, not the number 7',
        ),
        (
            {"force": True, "options": '{"dry_run": true}'},
            "options",
            'argument "options" must be an object, not the string "{\\"dry_run\\": true}"',
        ),
        (
            {"force": True, "options": {"dry_run": "false"}},
            "options.dry_run",
            'argument "options.dry_run" must be a boolean, not the string "false"',
        ),
        ({"force": True, "options": {}}, "options.dry_run", 'argument "options.dry_run" is required'),
        (
            {"force": True, "options": {"dry_run": True, "x": 1}},
            "options.x",
            'argument "options.x" is not a parameter of this tool',
        ),
        (
            {"force": True, "retries": "3"},
            "retries",
            'argument "retries" must be an integer or null, not the string "3"',
        ),
        (
            {"force": True, "mode": "FAST"},
            "mode",
            'argument "mode" must be one of "fast", "safe", not the string "FAST"',
        ),
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
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 5, "exclusiveMaximum": True}},
    }
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
    [
        ([], ""),
        (["a", 0, "b"], "a.0.b"),
        (["a.b", "c"], "/a.b/c"),
        (["x/y", "~"], "x/y.~"),
        (["/x", "~"], "/~1x/~0"),
        ([""], "/"),
    ],
)
def test_problem_paths_use_the_policys_path_syntax(parts: list[Any], path: str) -> None:
    assert format_path(parts) == path


# Fast path for flat object schemas (issue 12): it may only ever say "conforms", and says it exactly
# when jsonschema does. Generated schemas and arguments; a fixed seed keeps failures reproducible.

_FAST_TYPES = ["string", "boolean", "integer", "number", "null"]
_VALUES: list[Any] = [
    "",
    "x",
    "1",
    "true",
    "null",
    0,
    1,
    -7,
    2**70,
    1.0,
    1.5,
    -0.0,
    1e300,
    True,
    False,
    None,
    [],
    [1],
    {},
    {"a": 1},
]


def _generated_property(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return {"type": rng.choice(_FAST_TYPES), "title": "T"}
    if kind == 1:
        return {"type": rng.sample(_FAST_TYPES, rng.randint(1, 3))}
    if kind == 2:
        return {"anyOf": [{"type": rng.choice(_FAST_TYPES)}, {"type": "null"}], "default": None}
    if kind == 3:
        return rng.choice([True, {}, {"description": "anything"}])
    if kind == 4:
        return {"type": "string", "format": "date-time"}
    if kind == 5:  # not flat: the fast path must step aside
        return rng.choice(
            [
                {"type": "array", "items": {"type": "string"}},
                {"enum": ["a", 1]},
                {"type": "integer", "minimum": 0},
                {"type": "object"},
                {"const": 1.0},
            ]
        )
    return {"type": rng.choice(_FAST_TYPES)}


def _generated_schema(rng: random.Random) -> dict[str, Any]:
    names = rng.sample(["a", "b", "c", "d", "e"], rng.randint(0, 5))
    schema: dict[str, Any] = {"type": "object", "properties": {n: _generated_property(rng) for n in names}}
    if names and rng.random() < 0.7:
        schema["required"] = rng.sample(names, rng.randint(1, len(names)))
    if rng.random() < 0.5:
        schema["additionalProperties"] = rng.random() < 0.5
    if rng.random() < 0.2:
        schema["$schema"] = rng.choice(
            [
                "http://json-schema.org/draft-07/schema#",
                "http://json-schema.org/draft-04/schema#",
                "https://json-schema.org/draft/2020-12/schema",
            ]
        )
    if rng.random() < 0.1:
        del schema["type"]
    return schema


def _generated_arguments(rng: random.Random, schema: dict[str, Any]) -> dict[str, Any]:
    names = [*schema["properties"], "z"]
    return {n: rng.choice(_VALUES) for n in rng.sample(names, rng.randint(0, len(names)))}


def test_the_fast_path_agrees_with_jsonschema_on_generated_flat_schemas_and_arguments() -> None:
    rng = random.Random(12)
    fast_schemas = fast_answers = 0
    for _ in range(400):
        schema = _generated_schema(rng)
        compiled = compile_schema(schema)
        if compiled is None:  # e.g. a boolean subschema under draft-04: no validator, nothing to compare
            continue
        validator = validator_for(schema, default=Draft202012Validator)(schema)
        conforms = compiled._conforms
        fast_schemas += conforms is not None
        for _ in range(40):
            arguments = _generated_arguments(rng, schema)
            expected = validator.is_valid(arguments)
            assert (compiled.check(arguments) is None) == expected, (schema, arguments)
            if conforms is not None:
                assert conforms(arguments) == expected, (schema, arguments)
                fast_answers += 1
    assert fast_schemas > 200 and fast_answers > 8000  # the generator mostly exercises the fast path


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "$schema": "http://json-schema.org/draft-04/schema#",
        },
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "$defs": {"N": {"type": "integer"}}},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False},
        {"type": "object", "properties": {"n": {"anyOf": [{}, {"type": "null"}]}}},
    ],
    ids=["draft-04 integers", "a bound", "a ref", "patternProperties", "anyOf with anything"],
)
def test_schemas_beyond_flat_primitive_properties_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    compiled = compile_schema(schema)
    assert compiled is not None and compiled._conforms is None


def test_the_fast_path_refuses_the_issue10_coercions_with_jsonschemas_wording() -> None:
    schema = {
        "type": "object",
        "properties": {"force": {"type": "boolean"}, "limit": {"type": "integer"}},
        "required": ["force"],
        "additionalProperties": False,
    }
    assert problem_of({"force": "true"}, schema) == (
        "force",
        'argument "force" must be a boolean, not the string "true"',
    )
    assert problem_of({"force": True, "limit": 1.5}, schema) == (
        "limit",
        'argument "limit" must be an integer, not the number 1.5',
    )
    assert problem_of({"force": True, "limit": 2.0}, schema) is None
    assert problem_of({"force": True, "extra": 1}, schema) == (
        "extra",
        'argument "extra" is not a parameter of this tool',
    )
    assert problem_of({}, schema) == ("force", 'argument "force" is required')
