"""Tool arguments checked against the tool's published `inputSchema`, strictly, before the policy judges them.

Issue 10: upstream servers read arguments leniently (the MCP Python SDK's pydantic lax mode turns
`"true"` into `True` and parses a JSON string given for a list), so a policy condition could judge
a different value than the tool receives. When the upstream published an input schema in
`tools/list`, Airlock therefore refuses a call whose arguments do not conform to it *as written*:
JSON Schema has no coercion, so `"true"` is not a boolean and `"[1]"` is not an array. The model
reads one sentence naming the argument and the expected type, and can correct itself.

Contract:
- `SchemaCache.for_tool(name, schema)` compiles a tool's validator once per published schema
  (the catalog keeps an unchanged schema as the same object, so identity is the cache key) and
  returns None when the schema cannot be used (not an object, or not a valid JSON Schema).
- `ArgumentSchema.check(arguments)` returns None (conforms, or cannot be checked) or an
  `ArgumentProblem`. It never raises for JSON-shaped input.

Deliberate choices, DO NOT "fix" without reading why:
- The validator class follows the schema's `$schema`; without one it is Draft 2020-12, the
  dialect MCP specifies for `inputSchema`. An unknown `$schema` also gets Draft 2020-12.
- `$ref`s resolve only inside the schema: the validator gets an empty `referencing.Registry`.
  jsonschema's default registry would *fetch* a remote `$ref` over HTTP, letting an upstream make
  Airlock request any URL. A schema whose `$ref` cannot be resolved cannot be checked: the call is
  judged by the policy alone, whose conditions fail closed on their own.
- `format` is not asserted (JSON Schema's default: an annotation), since servers disagree on it.
- Fast path (issue 12): most tools publish a flat object of primitive-typed properties, for which
  jsonschema's general machinery costs several microseconds per call. `_flat_checker` compiles
  such a schema, and only such a schema (every keyword is on a short list, `$schema` absent or a
  dialect from draft 6 on, where `1.0` is an integer), into a plain function that may only answer
  "conforms". Anything else it meets (another keyword, another Python type) sends the call to
  jsonschema, which also words the refusal; so the fast path is exactly as strict, and
  `tests/policy/test_arguments.py` compares the two on generated schemas and arguments.

Pure module: no I/O. Which upstream, and what to do with a problem, is `app/gateway/intercept.py`'s.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from app.policy.conditions import json_type

logger = logging.getLogger("airlock.policy")

_SHOWN_VALUE: Final = 60
"""At most this many characters of an offending value are quoted back to the model."""
_COMBINATORS: Final = frozenset({"anyOf", "oneOf"})
_TYPE_NAMES: Final = {
    "array": "an array",
    "boolean": "a boolean",
    "integer": "an integer",
    "null": "null",
    "number": "a number",
    "object": "an object",
    "string": "a string",
}


@dataclass(frozen=True, slots=True)
class ArgumentProblem:
    """Why a call's arguments do not conform to the tool's input schema.

    Attributes:
        path: the offending argument in the policy's dotted path form (`options.force`,
            `recipients.0`), or a JSON Pointer when a key contains a dot; "" for the whole object.
        text: one sentence for the model, naming the argument and what the schema expects.
    """

    path: str
    text: str


class ArgumentSchema:
    """One tool's input schema, compiled: check a call's arguments against it."""

    __slots__ = ("_conforms", "_validator")

    def __init__(self, validator: Validator, conforms: Callable[[Any], bool] | None = None) -> None:
        """Args:
        conforms: a fast check that answers True only for arguments the validator accepts.
        """
        self._validator = validator
        self._conforms = conforms

    def check(self, arguments: Mapping[str, Any]) -> ArgumentProblem | None:
        """The most relevant problem with `arguments`, or None when they conform (or cannot be checked)."""
        if self._conforms is not None and self._conforms(arguments):
            return None
        try:
            error = best_match(self._validator.iter_errors(arguments))
        except (Unresolvable, RecursionError):
            logger.warning("an input schema could not be evaluated (unresolvable $ref?); judging by policy alone")
            return None
        return None if error is None else describe(error)


def compile_schema(schema: Any) -> ArgumentSchema | None:
    """Compile a published `inputSchema`, or None when it is not a usable JSON Schema."""
    if not isinstance(schema, dict):
        return None
    with warnings.catch_warnings():
        # jsonschema warns (DeprecationWarning) on an unknown $schema before falling back to the default.
        warnings.simplefilter("ignore", DeprecationWarning)
        cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        logger.warning("ignoring an input schema that is not valid JSON Schema: %s", exc.message[:200])
        return None
    return ArgumentSchema(cls(schema, registry=Registry()), _flat_checker(schema))


_FAST_DIALECTS: Final = frozenset(
    {
        None,
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-06/schema",
    }
)
_ANNOTATIONS: Final = frozenset(
    {"title", "description", "default", "examples", "format", "deprecated", "readOnly", "writeOnly", "$comment"}
)
_OBJECT_KEYWORDS: Final = _ANNOTATIONS | {"$schema", "type", "properties", "required", "additionalProperties"}
_PRIMITIVES: Final[dict[str, Callable[[Any], bool]]] = {
    # Exact Python types of parsed JSON; a subclass or another type is left to jsonschema.
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "number": lambda v: type(v) is int or type(v) is float,
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
}


def _flat_checker(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A fast "conforms" check for a flat object schema of primitive-typed properties, else None."""
    if (
        not set(schema) <= _OBJECT_KEYWORDS
        or schema.get("$schema") not in _FAST_DIALECTS
        or schema.get("type", "object") != "object"
    ):
        return None
    properties, required = schema.get("properties", {}), schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list) or not isinstance(additional, bool):
        return None
    checks: dict[str, tuple[Callable[[Any], bool], ...]] = {}
    for name, subschema in properties.items():
        types = _primitive_types(subschema)
        if types is None:
            return None
        checks[name] = tuple(_PRIMITIVES[t] for t in types)
    required_keys = frozenset(required)
    return lambda arguments: _conforms_flat(arguments, checks, required_keys, additional)


def _primitive_types(subschema: Any) -> list[str] | None:
    """The types a property allows when its schema is only primitive types ([] = anything), else None."""
    if subschema is True:
        return []
    if not isinstance(subschema, dict):
        return None
    keys = set(subschema) - _ANNOTATIONS
    if not keys:
        return []
    if keys == {"type"}:
        types = subschema["type"]
        names = [types] if isinstance(types, str) else types
        return names if isinstance(names, list) and names and all(n in _PRIMITIVES for n in names) else None
    if keys == {"anyOf"} and isinstance(subschema["anyOf"], list) and subschema["anyOf"]:
        # pydantic's Optional[X]: anyOf [{type: X}, {type: null}]
        names = []
        for branch in subschema["anyOf"]:
            branch_types = _primitive_types(branch)
            if not branch_types:  # None (not primitive) or [] (anything: keep it to jsonschema)
                return None
            names.extend(branch_types)
        return names
    return None


def _conforms_flat(
    arguments: Any, checks: Mapping[str, tuple[Callable[[Any], bool], ...]], required: frozenset[str], additional: bool
) -> bool:
    if type(arguments) is not dict or not required <= arguments.keys():
        return False
    for key, value in arguments.items():
        check = checks.get(key)
        if check is None:
            if not additional:
                return False
            continue
        if check and not any(allowed(value) for allowed in check):
            return False
    return True


class SchemaCache:
    """Each tool's compiled schema, recompiled only when the tool publishes a different schema object."""

    __slots__ = ("_compiled",)

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[Any, ArgumentSchema | None]] = {}

    def for_tool(self, name: str, schema: Any) -> ArgumentSchema | None:
        cached = self._compiled.get(name)
        if cached is not None and cached[0] is schema:
            return cached[1]
        compiled = compile_schema(schema)
        self._compiled[name] = (schema, compiled)
        return compiled


def describe(error: ValidationError) -> ArgumentProblem:
    """Turn a jsonschema error into one sentence a model can act on (JSON spellings, not Python reprs)."""
    error = _combinator_of(error)
    path = format_path(error.absolute_path)
    where = f'argument "{path}"' if path else "the arguments"
    rule: Any = error.validator_value
    types = _expected_types(error)
    if types:
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        return ArgumentProblem(path, f"{where} must be {expected}, not {_shown(error.instance)}")
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = next((key for key in rule if key not in error.instance), "?")
        inner = format_path([*error.absolute_path, missing])
        return ArgumentProblem(inner, f'argument "{inner}" is required')
    extra = _extra_key(error)
    if extra is not None:
        inner = format_path([*error.absolute_path, extra])
        return ArgumentProblem(inner, f'argument "{inner}" is not a parameter of this tool')
    if error.validator in ("enum", "const"):
        allowed = rule if error.validator == "enum" else [rule]
        choices = ", ".join(_json_text(choice) for choice in allowed[:10])
        return ArgumentProblem(path, f"{where} must be one of {choices}, not {_shown(error.instance)}")
    return ArgumentProblem(path, f"{where} is invalid: {error.message[:200]}")


def _combinator_of(error: ValidationError) -> ValidationError:
    """For `anyOf: [{type: integer}, {type: null}]` (pydantic's Optional) report the union, not one branch."""
    parent = error.parent
    if isinstance(parent, ValidationError) and _expected_types(parent):
        return parent
    return error


def _expected_types(error: ValidationError) -> list[str]:
    """The types a `type` error, or an anyOf/oneOf made only of type mismatches here, asks for ([] if neither)."""
    if error.validator == "type":
        types: Any = error.validator_value
        return [types] if isinstance(types, str) else [str(t) for t in types]
    children = list(error.context or ()) if error.validator in _COMBINATORS else []
    if not children or any(child.validator != "type" or child.relative_path for child in children):
        return []
    names: list[str] = []
    for child in children:
        names.extend(t for t in _expected_types(child) if t not in names)
    return names


def _extra_key(error: ValidationError) -> str | None:
    """The unexpected key behind an `additionalProperties: false` error (None if it is another error)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if (
        error.validator != "additionalProperties"
        or schema.get("patternProperties")
        or not isinstance(error.instance, Mapping)
    ):
        return None
    known = schema.get("properties", {})
    return next((str(key) for key in error.instance if key not in known), None)


def format_path(parts: Iterable[Any]) -> str:
    """A path in the policy's syntax: dotted, or a JSON Pointer when a key is empty or holds a dot or `/`."""
    keys = [str(part) for part in parts]
    if any(not key or "." in key or key.startswith("/") for key in keys):
        return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in keys)
    return ".".join(keys)


def _shown(value: Any) -> str:
    kind = json_type(value)
    if kind == "null":
        return "null"
    if kind in ("array", "object"):
        return f"an {kind}"
    return f"the {kind} {_json_text(value)}"


def _json_text(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "…"
