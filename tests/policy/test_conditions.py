"""Argument conditions (`when`): paths, operators and the three-valued result. Airlock-defined."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.policy import conditions
from app.policy.conditions import (
    MISSING,
    PathSyntaxError,
    Segment,
    as_number,
    compile_condition,
    compile_when,
    equal,
    json_equal,
    parse_path,
    resolve,
)

ORDER = {
    "id": "o-1",
    "bounty_usd": 150,
    "price": "150",
    "note": None,
    "confirm": True,
    "title": "Deliver the parcel",
    "tags": ["urgent", 3, {"k": "v"}],
    "customer": {"address": {"country": "DE"}, "a/b": 1, "m~n": 2},
    "items": [{"sku": "A-1"}, {"sku": "B-2"}],
}


def holds(path: str, spec: Any, arguments: Any = ORDER) -> bool | None:
    return compile_condition(path, spec).evaluate(arguments)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("amount", (Segment("amount", None),)),
        (
            "customer.address.country",
            tuple(Segment(k, None) for k in ["customer", "address", "country"]),
        ),
        ("items.0.sku", (Segment("items", None), Segment("0", 0), Segment("sku", None))),
        ("/items/10/sku", (Segment("items", None), Segment("10", 10), Segment("sku", None))),
        ("/a~1b/m~0n", (Segment("a/b", None), Segment("m~n", None))),
        ("/", (Segment("", None),)),
        ("items.01", (Segment("items", None), Segment("01", None))),
        ("items.-1", (Segment("items", None), Segment("-1", None))),
    ],
)
def test_paths_parse_into_keys_that_also_index_lists_when_canonical_integers(
    path: str, segments: tuple[Segment, ...]
) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", "/a~2b", "/a~"])
def test_malformed_paths_are_refused_with_a_reason(path: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("bounty_usd", 150),
        ("customer.address.country", "DE"),
        ("/customer/address/country", "DE"),
        ("items.1.sku", "B-2"),
        ("/items/0/sku", "A-1"),
        ("/customer/a~1b", 1),
        ("/customer/m~0n", 2),
        ("note", None),
        ("items.2.sku", MISSING),
        ("items.x", MISSING),
        ("items.-1.sku", MISSING),
        ("title.0", MISSING),
        ("note.x", MISSING),
        ("absent", MISSING),
    ],
)
def test_paths_resolve_to_the_value_or_missing(path: str, expected: Any) -> None:
    assert resolve(parse_path(path), ORDER) == expected


def test_a_numeric_segment_is_an_ordinary_key_on_an_object() -> None:
    assert resolve(parse_path("codes.0"), {"codes": {"0": "zero"}}) == "zero"


@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        # shorthand is eq
        ("customer.address.country", "DE", True),
        ("customer.address.country", "FR", False),
        ("note", None, True),
        ("tags", ["urgent", 3, {"k": "v"}], True),
        ("tags", ["urgent"], False),
        # eq / ne with JSON equality
        ("bounty_usd", {"eq": 150.0}, True),
        ("confirm", {"eq": True}, True),
        ("bounty_usd", {"ne": 100}, True),
        ("bounty_usd", {"ne": 150}, False),
        ("customer.address", {"eq": {"country": "DE"}}, True),
        # in / not_in
        ("customer.address.country", {"in": ["DE", "AT"]}, True),
        ("customer.address.country", {"in": []}, False),
        ("customer.address.country", {"not_in": ["FR"]}, True),
        ("customer.address.country", {"not_in": ["DE"]}, False),
        # regex: the whole string must match (re.fullmatch)
        ("title", {"regex": "Deliver the parcel"}, True),
        ("title", {"regex": ".*parcel"}, True),
        ("title", {"regex": "parcel"}, False),
        ("title", {"regex": "^Deliver"}, False),
        ("title", {"regex": "(?i)deliver.*"}, True),
        # numeric comparisons
        ("bounty_usd", {"gt": 100}, True),
        ("bounty_usd", {"gt": 150}, False),
        ("bounty_usd", {"gte": 150}, True),
        ("bounty_usd", {"lt": 150.5}, True),
        ("bounty_usd", {"lte": 149}, False),
        ("bounty_usd", {"gt": 100, "lt": 200}, True),
        ("bounty_usd", {"gt": 100, "lt": 120}, False),
        # exists
        ("id", {"exists": True}, True),
        ("note", {"exists": True}, True),
        ("absent", {"exists": True}, False),
        ("absent", {"exists": False}, True),
        ("items.5", {"exists": False}, True),
        # contains
        ("title", {"contains": "parcel"}, True),
        ("title", {"contains": "Parcel"}, False),
        ("tags", {"contains": "urgent"}, True),
        ("tags", {"contains": 3.0}, True),
        ("tags", {"contains": {"k": "v"}}, True),
        ("tags", {"contains": "absent"}, None),
    ],
)
def test_each_operator_holds_or_fails_on_a_present_value(path: str, spec: Any, expected: bool | None) -> None:
    assert holds(path, spec) is expected


@pytest.mark.parametrize(
    "spec",
    [
        "DE",
        {"eq": 1},
        {"ne": 1},
        {"in": [1]},
        {"not_in": [1]},
        {"regex": "x"},
        {"gt": 1},
        {"gte": 1},
        {"lt": 1},
        {"lte": 1},
        {"contains": "x"},
    ],
)
def test_every_operator_but_exists_is_indeterminate_on_a_missing_path(spec: Any) -> None:
    assert holds("customer.phone", spec) is None


@pytest.mark.parametrize(
    ("path", "spec"),
    [
        ("bounty_usd", {"regex": "1"}),
        ("tags", {"regex": "urgent"}),
        ("customer", {"gt": 1}),
        ("tags", {"lte": 1}),
        ("note", {"gte": 0}),
        ("title", {"lt": 1}),
        ("confirm", {"gt": 0}),
        ("bounty_usd", {"contains": "1"}),
        ("customer", {"contains": "address"}),
        ("title", {"contains": 5}),
    ],
)
def test_an_operator_is_indeterminate_on_a_value_of_a_type_it_cannot_compare(path: str, spec: Any) -> None:
    assert holds(path, spec) is None


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (150, 150),
        (1.5, 1.5),
        ("150", 150),
        ("-2.5", -2.5),
        ("+7", 7),
        (" 42 ", 42),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e999", float("inf")),
        ("99999999999999999999999", 99999999999999999999999),
        (True, None),
        (False, None),
        ("NaN", None),
        ("nan", None),
        ("inf", None),
        ("Infinity", None),
        ("0x10", None),
        ("1_000", None),
        ("", None),
        ("\u0661\u0665\u0660", None),  # Arabic-Indic digits: float() reads them
        ("9" * 5000, None),
        (float("nan"), None),
        (None, None),
        ([1], None),
    ],
)
def test_numbers_and_decimal_strings_compare_as_numbers_but_booleans_never_do(value: Any, number: float | None) -> None:
    assert as_number(value) == number


@pytest.mark.parametrize(
    ("value", "expected"),
    [("150", True), ("1e3", True), ("50", False), ("NaN", None), ("inf", None), (True, None)],
)
def test_a_numeric_string_argument_meets_a_numeric_comparison(value: Any, expected: bool | None) -> None:
    assert holds("bounty_usd", {"gt": 100}, {"bounty_usd": value}) is expected


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        ("1", 1, False),
        (None, None, True),
        (None, False, False),
        ([1, "a"], [1.0, "a"], True),
        ([1], [1, 1], False),
        ([True], [1], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": True}, {"a": 1}, False),
        ([], {}, False),
    ],
)
def test_equality_is_json_equality(left: Any, right: Any, equal: bool) -> None:
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"country": "DE", "amount": 5}, True),
        ({"country": "FR", "amount": 5}, False),
        ({"country": "FR"}, False),
        ({"country": "DE"}, None),
        ({"country": "DE", "amount": "lots"}, None),
    ],
)
def test_a_when_clause_is_the_kleene_and_of_its_conditions(arguments: dict[str, Any], expected: bool | None) -> None:
    when = compile_when({"country": "DE", "amount": {"lt": 10}})
    assert when.evaluate(arguments) is expected


def test_an_empty_when_clause_holds() -> None:
    assert compile_when({}).evaluate({}) is True


def test_evaluation_neither_reparses_paths_nor_recompiles_regexes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    condition = compile_condition("customer.address.country", {"regex": "D.", "ne": "DK"})

    def refuse(*args: object) -> None:
        raise AssertionError("compiled again on the hot path")

    monkeypatch.setattr(re, "compile", refuse)
    monkeypatch.setattr(conditions, "parse_path", refuse)
    assert condition.evaluate(ORDER) is True


# Issue 10: judge the arguments as the upstream may read them. Every row below was decided
# (and decided the permissive way) before the fix.

TRUE_SPELLINGS = ["true", "True", "TRUE", "1", "yes", "on", "t", "y", 1, 1.0]
FALSE_SPELLINGS = ["false", "False", "0", "no", "off", "f", "n", 0, 0.0, ""]
NUMERIC_STRINGS = ["150", " 150 ", "150.0", "1.5e2", "+150"]


@pytest.mark.parametrize("operator", ["eq", "ne", "in", "not_in"])
@pytest.mark.parametrize(
    ("value", "operand"),
    [
        *((spelling, True) for spelling in TRUE_SPELLINGS),
        *((spelling, False) for spelling in FALSE_SPELLINGS),
        *((spelling, 150) for spelling in NUMERIC_STRINGS),
        (150, "150"),
        (True, "true"),
        (None, "null"),
        ("null", None),
        (0, None),
        ([], {}),
        ("[]", []),
    ],
)
def test_issue10_a_value_of_another_json_type_than_the_operand_is_indeterminate(
    operator: str, value: Any, operand: Any
) -> None:
    """A lax upstream may coerce the value into the operand (pydantic reads "yes" as True)."""
    spec = {operator: [operand] if operator in ("in", "not_in") else operand}
    assert holds("force", spec, {"force": value}) is None


@pytest.mark.parametrize(
    ("value", "operand", "expected"),
    [
        (True, True, True),
        (False, True, False),
        (150, 150.0, True),
        (151, 150, False),
        ("abc", "abd", False),
        ([1, "a"], [1.0, "a"], True),
        ([1], [1, 1], False),
        (["1"], [1], None),
        ([True, 2], [False, "2"], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 2, "b": 1}, {"a": 1}, False),
        ({"a": 1, "b": 1}, {"a": 1}, None),
        ({"a": "1"}, {"a": 1}, None),
    ],
)
def test_issue10_equality_is_decided_only_between_values_of_one_json_type_at_every_depth(
    value: Any, operand: Any, expected: bool | None
) -> None:
    assert equal(value, operand) is expected


@pytest.mark.parametrize(
    ("operand", "expected"),
    [("absent", None), ("urgent", True)],
)
def test_issue10_contains_on_a_mixed_list_is_decided_only_by_elements_of_the_operands_type(
    operand: Any, expected: bool | None
) -> None:
    assert holds("tags", {"contains": operand}, {"tags": ["urgent", 1, True]}) is expected


@pytest.mark.parametrize(
    ("path", "spec", "arguments"),
    [
        # contains / not_in / ne / eq / regex on a list or object given as JSON text,
        # its \u escapes hiding the very text a rule looks for
        ("recipients", {"contains": "ceo@corp.com"}, {"recipients": '["ceo\\u0040corp.com"]'}),
        ("recipients", {"not_in": ["ceo@corp.com"]}, {"recipients": '["ceo@corp.com"]'}),
        ("mode", {"ne": "admin"}, {"mode": '["admin"]'}),
        ("options", {"eq": {"force": False}}, {"options": '{"force": true}'}),
        ("tags", {"regex": ".*secret.*"}, {"tags": '["\\u0073ecret"]'}),
        # a path through a JSON-text container
        ("options.force", {"exists": False}, {"options": '{"force": true}'}),
        ("/options/force", {"exists": False}, {"options": '{"force": true}'}),
        ("items.0.sku", {"exists": False}, {"items": '[{"sku": "A-1"}]'}),
        ("a.b.c", {"exists": False}, {"a": {"b": '{"c": 1}'}}),
        # JSON text only a lax parser reads: duplicate keys, NaN, an inexact integer
        ("options.force", {"exists": False}, {"options": '{"force": false, "force": true}'}),
        ("cfg.limit", {"exists": False}, {"cfg": '{"limit": NaN}'}),
        ("cfg", {"ne": "x"}, {"cfg": '{"n": 9007199254740993}'}),
        ("cfg", {"regex": "[^\\[]*"}, {"cfg": "[1, 2] "}),
    ],
)
def test_issue10_a_string_holding_a_json_array_or_object_is_indeterminate_unless_both_readings_agree(
    path: str, spec: Any, arguments: dict[str, Any]
) -> None:
    """The MCP Python SDK parses a JSON string given for a list or object parameter."""
    assert holds(path, spec, arguments) is None


@pytest.mark.parametrize(
    ("path", "spec", "arguments", "expected"),
    [
        ("recipients", {"contains": "x@y.z"}, {"recipients": '["a@b.c"]'}, False),
        ("recipients", {"contains": "a@b.c"}, {"recipients": ' [ "a@b.c" ] '}, True),
        ("options.force", {"exists": False}, {"options": '{"other": 1}'}, True),
        ("note", {"eq": "[not json"}, {"note": "[not json"}, True),
        ("note", {"regex": "\\{.*"}, {"note": "{ nope"}, True),
    ],
)
def test_issue10_json_text_still_decides_when_both_readings_agree_or_it_is_not_json(
    path: str, spec: Any, arguments: dict[str, Any], expected: bool
) -> None:
    assert holds(path, spec, arguments) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", True), ("abc\n", False), ("abc\r\n", False), ("\nabc", False), ("abc1", False)],
)
def test_issue10_an_anchored_regex_matches_the_whole_string_and_no_trailing_newline(value: str, expected: bool) -> None:
    """`re.search("^abc$", "abc\\n")` matches: `$` also matches before a final newline."""
    assert holds("name", {"regex": "^[a-z]+$"}, {"name": value}) is expected
    assert holds("name", {"regex": "[a-z]+"}, {"name": value}) is expected
