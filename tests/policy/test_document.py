"""Policy documents: strict JSON, the published schema, and located, readable errors.

Airlock-defined; the schema must be valid JSON Schema draft 2020-12.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from app.errors import PolicyError, PolicyProblem
from app.policy.document import POLICY_SCHEMA, compile_policy, format_location, load_policy, parse_policy_text

DOCS = Path(__file__).parents[2] / "docs" / "policy.md"


def problems_of(document: Any) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        compile_policy(document, "p.json")
    assert caught.value.source == "p.json"
    return [str(problem) for problem in caught.value.problems]


def text_problems(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        parse_policy_text(text, "p.json")
    return caught.value.problems


def rule(**fields: Any) -> dict[str, Any]:
    return {"version": "1", "rules": [{"tool": "t", "action": "allow", **fields}]}


# --- the schema -----------------------------------------------------------------------------


def test_the_published_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(POLICY_SCHEMA)
    assert POLICY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(schema: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for name, child in schema.get("properties", {}).items():
            if child != {"not": {}}:  # the approve-only switch-offs, not properties
                yield f"{where}.{name}", child
        for key, child in schema.items():
            if key != "if":  # a condition on the rule, not a documented property
                yield from _properties(child, f"{where}/{key}")
    elif isinstance(schema, list):
        for child in schema:
            yield from _properties(child, where)


def test_every_property_in_the_schema_has_a_title_and_a_description() -> None:
    undocumented = [
        where for where, child in _properties(POLICY_SCHEMA) if not (child.get("title") and child.get("description"))
    ]
    assert undocumented == []


def test_every_example_policy_in_the_docs_is_valid() -> None:
    examples = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    policies = [text for text in examples if '"version"' in text]
    assert len(policies) >= 3
    for text in policies:
        compile_policy(parse_policy_text(text, "docs/policy.md"))


# --- documents that load --------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"version": "1"},
        {"version": "1", "default": "deny", "hide": ["em_cancel_task"]},
        {"$schema": "./policy.schema.json", "version": "1", "rules": [], "hide": []},
        {"version": "1", "annotation_defaults": {}},
        rule(when={}),
        rule(when={"a": {"eq": {"nested": [1, None]}}, "/b~1c": [1, 2], "d": None}),
        rule(tool=["a", "b*"], rate_limit={"max": 1, "window": 0.25}),
        rule(action="approve", timeout=1, hold=0.5, reviewers=["a"], slack={}),
        rule(action="deny", id="no", reason="because"),
    ],
)
def test_valid_documents_compile(document: Any) -> None:
    compile_policy(document)


def test_load_policy_reads_compiles_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('\ufeff{"version": "1", "hide": ["em_cancel_task"]}', encoding="utf-8")
    loaded = load_policy(path)
    assert loaded.source == str(path)
    assert loaded.is_hidden("em_cancel_task")
    assert loaded.evaluate("em_get_task", {}, "x").action == "deny"


# --- located structural errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "the policy must be an object, not a list"),
        ({}, 'missing required key "version"'),
        ({"version": 1}, 'version: must be "1", not 1'),
        ({"version": "1", "rule": []}, 'rule: unknown key "rule"; did you mean "rules"?'),
        (
            {"version": "1", "default": "block"},
            'default: "block" is not one of allow, deny, approve',
        ),
        ({"version": "1", "hide": "em_*"}, 'hide: must be a list, not the string "em_*"'),
        ({"version": "1", "hide": [""]}, "hide[0]: must not be empty"),
        (
            {"version": "1", "rules": [{"tool": "t", "action": "allow", "acton": "allow"}]},
            'rules[0].acton: unknown key "acton"; did you mean "action"?',
        ),
        (
            {
                "version": "1",
                "rules": [{"tool": "t", "action": "allow"}, {"tool": "t", "action": "aprove"}],
            },
            'rules[1].action: "aprove" is not one of allow, deny, approve',
        ),
        (rule(tool=[]), "rules[0].tool: must not be empty"),
        (rule(tool=7), "rules[0].tool: must be a string or a list, not the number 7"),
        (
            rule(agents=[]),
            'rules[0].agents: must not be empty (omit "agents" to apply the rule to every agent)',
        ),
        (
            rule(when={"amount": {"gt": "100"}}),
            'rules[0].when.amount.gt: must be a number, not the string "100"',
        ),
        (
            rule(when={"amount": {"gt": True}}),
            "rules[0].when.amount.gt: must be a number, not true",
        ),
        (
            rule(when={"amount": {"in": 5}}),
            "rules[0].when.amount.in: must be a list, not the number 5",
        ),
        (
            rule(when={"amount": {"exists": "yes"}}),
            'rules[0].when.amount.exists: must be true or false, not the string "yes"',
        ),
        (
            rule(when={"amount": {"gtt": 1}}),
            'rules[0].when.amount.gtt: unknown key "gtt"; did you mean "gt"?',
        ),
        (
            rule(when={"amount": {}}),
            "rules[0].when.amount: needs at least one operator: "
            "eq, ne, in, not_in, regex, gt, gte, lt, lte, exists, contains",
        ),
        (
            rule(when={"a.b": {"regex": 1}}),
            'rules[0].when["a.b"].regex: must be a string, not the number 1',
        ),
        (
            rule(rate_limit={"max": 0, "window": 60}),
            "rules[0].rate_limit.max: must be at least 1, not 0",
        ),
        (
            rule(rate_limit={"max": 1.5, "window": 60}),
            "rules[0].rate_limit.max: must be a whole number, not the number 1.5",
        ),
        (
            rule(rate_limit={"max": 1, "window": 0}),
            "rules[0].rate_limit.window: must be greater than 0, not 0",
        ),
        (rule(rate_limit={"max": 1}), 'rules[0].rate_limit: missing required key "window"'),
        (
            rule(action="deny", rate_limit={"max": 1, "window": 1}),
            "rules[0].rate_limit: has no effect on a deny rule; "
            "put it on the allow or approve rule whose calls it should limit",
        ),
        (rule(action="approve", timeout=0), "rules[0].timeout: must be greater than 0, not 0"),
        (rule(action="approve", hold=-1), "rules[0].hold: must be greater than 0, not -1"),
        (
            rule(action="approve", reviewers=[]),
            'rules[0].reviewers: must not be empty (omit "reviewers" to let any reviewer decide)',
        ),
        (
            rule(action="approve", reviewer_groups=[]),
            'rules[0].reviewer_groups: must not be empty (omit "reviewer_groups" to let any reviewer decide)',
        ),
        (rule(action="approve", approvals=0), "rules[0].approvals: must be at least 1, not 0"),
        (rule(action="approve", approvals=1.5), "rules[0].approvals: must be a whole number, not the number 1.5"),
        (
            rule(action="approve", slack={"chanel": "#ops"}),
            'rules[0].slack.chanel: unknown key "chanel"; did you mean "channel"?',
        ),
        (
            {"version": "1", "annotation_defaults": {"readonly": "allow"}},
            'annotation_defaults.readonly: unknown key "readonly"; did you mean "read_only"?',
        ),
    ],
)
def test_a_structural_mistake_is_reported_at_its_location_in_plain_words(document: Any, problem: str) -> None:
    assert problems_of(document) == [problem]


def test_a_misspelt_required_key_is_reported_both_as_missing_and_as_unknown() -> None:
    assert problems_of({"version": "1", "rules": [{"tool": "t", "acton": "allow"}]}) == [
        'rules[0]: missing required key "action"',
        'rules[0].acton: unknown key "acton"; did you mean "action"?',
    ]


@pytest.mark.parametrize("field", ["timeout", "hold", "reviewers", "reviewer_groups", "approvals", "slack"])
@pytest.mark.parametrize("action", ["allow", "deny"])
def test_approve_only_fields_on_another_rule_are_an_error(field: str, action: str) -> None:
    value = {
        "timeout": 60,
        "hold": 5,
        "reviewers": ["alice"],
        "reviewer_groups": ["sre"],
        "approvals": 2,
        "slack": {"channel": "#ops"},
    }[field]
    assert problems_of(rule(action=action, **{field: value})) == [
        f'rules[0].{field}: "{field}" is only allowed on approve rules (this rule\'s action is "{action}")'
    ]


# --- located semantic errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        (
            {"title": {"regex": "[unclosed"}},
            "rules[0].when.title.regex: invalid regular expression: unterminated character set at position 0",
        ),
        (
            {"a..b": 1},
            'rules[0].when["a..b"]: "a..b" has an empty segment; write a.b.c, '
            "or a JSON Pointer (/a/b) for keys that contain dots",
        ),
        (
            {"/a~2": 1},
            'rules[0].when["/a~2"]: "/a~2" has a "~" that is not ~0 or ~1; '
            'in a JSON Pointer write ~0 for "~" and ~1 for "/"',
        ),
        ({"": 1}, 'rules[0].when[""]: the argument path is empty; name an argument such as amount'),
    ],
)
def test_a_condition_that_cannot_compile_is_reported_at_its_location(when: dict[str, Any], problem: str) -> None:
    assert problems_of(rule(when=when)) == [problem]


def test_duplicate_rule_ids_name_the_rule_that_used_the_id_first() -> None:
    document = {
        "version": "1",
        "rules": [
            {"id": "r", "tool": "a", "action": "allow"},
            {"id": "other", "tool": "b", "action": "allow"},
            {"id": "r", "tool": "c", "action": "deny"},
        ],
    }
    assert problems_of(document) == ['rules[2].id: "r" is already the id of rules[0]; rule ids must be unique']


def test_every_problem_is_reported_together_in_document_order() -> None:
    document = {
        "version": "2",
        "rule": [],
        "rules": [{"tool": "t", "action": "allow"}] * 10
        + [
            {"id": "x", "tool": "t", "action": "aprove", "when": {"t": {"regex": "("}}},
            {"id": "x", "tool": "t", "action": "allow", "timeout": 5},
        ],
    }
    assert problems_of(document) == [
        'rule: unknown key "rule"; did you mean "rules"?',
        'rules[10].action: "aprove" is not one of allow, deny, approve',
        "rules[10].when.t.regex: invalid regular expression: missing ), unterminated subpattern at position 0",
        'rules[11].id: "x" is already the id of rules[10]; rule ids must be unique',
        'rules[11].timeout: "timeout" is only allowed on approve rules (this rule\'s action is "allow")',
        'version: must be "1", not "2"',
    ]


def test_the_error_message_lists_the_source_and_every_problem() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy({"version": "1", "default": "nope", "hide": [1]}, "airlock/policy.json")
    assert str(caught.value) == (
        "airlock/policy.json: invalid policy\n"
        '  - default: "nope" is not one of allow, deny, approve\n'
        "  - hide[0]: must be a string, not the number 1"
    )


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ((), ""),
        (("rules", 2, "when", "bounty_usd", "gt"), "rules[2].when.bounty_usd.gt"),
        (("rules", 0, "when", "/items/0"), 'rules[0].when["/items/0"]'),
        (("$schema",), '["$schema"]'),
    ],
)
def test_locations_read_as_json_paths(path: tuple[str | int, ...], location: str) -> None:
    assert format_location(path) == location


# --- strict JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{\n  "version": "1",\n}',
            PolicyProblem("line 3, column 1", "expected a key in double quotes (a trailing comma before '}'?)"),
        ),
        (
            '{"version": "1"',
            PolicyProblem("line 1, column 16", "expected ',' between two items, or the closing bracket"),
        ),
        ('{"version" "1"}', PolicyProblem("line 1, column 12", "expected ':' after the key")),
        (
            '{"version": "1",\n "rules": [,]}',
            PolicyProblem(
                "line 2, column 12",
                "expected a JSON value here (a trailing comma, a comment or an unquoted word?)",
            ),
        ),
        (
            '{"version": "1"} {}',
            PolicyProblem("line 1, column 18", "unexpected text after the end of the JSON document"),
        ),
        ("  \n", PolicyProblem("", 'the file is empty; a policy needs at least {"version": "1"}')),
    ],
)
def test_a_json_syntax_error_is_located_by_line_and_column(text: str, problem: PolicyProblem) -> None:
    assert text_problems(text) == [problem]


def test_duplicate_keys_are_errors_wherever_they_are() -> None:
    text = '{"version": "1", "rules": [{"tool": "t", "action": "deny", "action": "allow"}], "version": "1"}'
    assert [str(p) for p in text_problems(text)] == [
        "rules[0].action: this key appears more than once in the same object; "
        "keep only one (JSON readers disagree on which one wins)",
        "version: this key appears more than once in the same object; "
        "keep only one (JSON readers disagree on which one wins)",
    ]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected_at_their_location(token: str) -> None:
    text = f'{{"version": "1", "rules": [{{"tool": "t", "action": "allow", "when": {{"n": {{"lt": {token}}}}}}}]}}'
    assert [str(p) for p in text_problems(text)] == [
        f"rules[0].when.n.lt: {token} is not a JSON number; write a finite number"
    ]


def test_an_integer_too_long_to_convert_is_rejected_at_its_location() -> None:
    text = '{"version": "1", "hide": [], "rules": [{"tool": "t", "action": "allow", '
    text += f'"rate_limit": {{"max": {"9" * 5000}, "window": 1}}}}]}}'
    assert [str(p) for p in text_problems(text)] == [
        "rules[0].rate_limit.max: this number has 5000 digits, too many to use"
    ]


@pytest.mark.parametrize("depth", [40, 500, 5000])
def test_a_deeply_nested_document_is_refused_not_a_crash(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = '{"version": "1", "rules": [{"tool": "t", "action": "allow", '
    text += f'"when": {{"a": {{"eq": {nested}}}}}}}]}}'
    with pytest.raises(PolicyError) as caught:
        compile_policy(parse_policy_text(text, "p.json"))
    (problem,) = caught.value.problems
    assert problem.message in {"nested more than 32 levels deep", "the JSON is nested too deeply"}


def test_strict_parsing_returns_plain_json_values() -> None:
    text = '{"version": "1", "rules": [{"tool": "t", "action": "allow", "when": {"n": {"lt": 1.5}}}]}'
    assert parse_policy_text(text, "p.json") == json.loads(text)


# --- files ----------------------------------------------------------------------------------


def test_a_file_that_cannot_be_read_gives_one_problem_naming_the_os_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(PolicyError) as caught:
        load_policy(missing)
    assert caught.value.source == str(missing)
    assert caught.value.problems == [PolicyProblem("", "cannot read the file: No such file or directory (ENOENT)")]


def test_a_file_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"version": "1",\n "hide": ["caf\xe9"]}')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [PolicyProblem("line 2, column 15", "the file is not UTF-8 text")]


def test_load_policy_reports_schema_problems_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"version": "1", "rules": [{"tool": "t", "acton": "allow"}]}', encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: invalid policy\n")
    assert len(caught.value.problems) == 2


def test_a_quorum_rule_compiles_to_a_decision_needing_that_many_approvals_from_its_names_and_groups() -> None:
    """Issue 18, item 2: `approvals` defaults to 1, so rules written before quorums decide as before."""
    compiled = compile_policy(
        {
            "version": "1",
            "rules": [
                {
                    "tool": "drop_*",
                    "action": "approve",
                    "approvals": 2,
                    "reviewers": ["alice"],
                    "reviewer_groups": ["sre"],
                },
                {"tool": "*", "action": "approve"},
            ],
        }
    )
    quorum, single = (rule.decision for rule in compiled.rules)
    assert (quorum.approvals, quorum.reviewers, quorum.reviewer_groups) == (2, ("alice",), ("sre",))
    assert (single.approvals, single.reviewers, single.reviewer_groups) == (1, None, None)
