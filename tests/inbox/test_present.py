"""How approvals read to a person: sentences for each outcome, and arguments shown exactly, invisible characters included.

Provenance: Airlock-defined (issue: web approval inbox: "the arguments pretty-printed", escaped);
pure functions over approval rows, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.inbox import present
from app.reveal import reveal
from tests.rows import T0, approval

row = approval


@pytest.mark.parametrize(
    ("changes", "viewer", "sentence"),
    [
        ({}, None, "Waiting for a decision; expires 2026-11-18 11:36:40 UTC."),
        (
            {"status": "completed", "decided_by": "bob", "decided_via": "slack", "decided_at": T0 + 60},
            "alice",
            "Approved by bob via Slack at 2026-11-18 11:07:40 UTC. It ran and succeeded.",
        ),
        (
            {
                "status": "completed",
                "decided_by": "bob",
                "decided_via": "slack",
                "decided_at": T0 + 60,
                "result": json.dumps(
                    {"result": {"content": [{"type": "text", "text": "Task 't1' not found\nmore"}], "isError": True}}
                ),
            },
            "alice",
            "Approved by bob via Slack at 2026-11-18 11:07:40 UTC. It ran, and the tool reported an error: "
            "Task 't1' not found.",
        ),
        (
            {"status": "executing", "decided_by": "alice", "decided_via": "inbox", "decided_at": T0 + 60},
            "alice",
            "Approved by you (alice) via the inbox at 2026-11-18 11:07:40 UTC. It is running now.",
        ),
        (
            {
                "status": "rejected",
                "decided_by": "bob",
                "decided_via": "api",
                "decided_at": T0 + 60,
                "decision_reason": "not today",
            },
            None,
            "Rejected by bob via the API at 2026-11-18 11:07:40 UTC. Reason: not today. It did not run.",
        ),
        (
            {"status": "expired", "finished_at": T0 + 1800},
            None,
            "Expired at 2026-11-18 11:36:40 UTC: nobody decided in time. It did not run.",
        ),
        (
            {"status": "outcome_unknown", "decided_by": "bob", "decided_via": "cli", "decided_at": T0 + 60},
            None,
            (
                "Approved by bob via the CLI at 2026-11-18 11:07:40 UTC. Airlock lost track of the upstream while it ran; "
                "it may or may not have taken effect, and Airlock will not re-send it."
            ),
        ),
    ],
)
def test_outcome_says_what_happened_who_decided_how_and_when(
    changes: dict[str, Any], viewer: str | None, sentence: str
) -> None:
    assert present.outcome(row(**changes), viewer) == sentence


def test_a_late_decision_names_who_was_first() -> None:
    first = row(status="approved", decided_by="bob", decided_via="slack", decided_at=T0 + 5)
    assert (
        present.conflict(first, "alice")
        == "Too late: bob already approved this call via Slack at 2026-11-18 11:06:45 UTC."
    )
    assert present.conflict(row(status="expired"), "alice").startswith("Too late: this call expired at")


def test_arguments_are_pretty_printed_and_revealed_they_read_as_the_exact_arguments() -> None:
    arguments = {"note": "pay \u202eevil\u202c\u200b now", "tab": "a\tb", "emoji": "ok \U0001f600", "accent": "café"}
    text = reveal(present.pretty_json(arguments))
    assert "\u202e" not in text and "\u200b" not in text
    assert '"note": "pay \\u202eevil\\u202c\\u200b now"' in text
    assert '"tab": "a\\tb"' in text
    assert "\U0001f600" in text and "café" in text, "ordinary characters stay readable"
    assert json.loads(text) == arguments, "what is shown is still exactly the arguments"


def test_a_long_preview_is_cut_and_says_so() -> None:
    text = present.pretty_json({"blob": "x" * 10_000}, limit=100)
    assert len(text) < 200 and text.endswith("(cut here; the detail page shows everything)")


def test_the_result_shows_text_items_pretty_printed_or_the_error() -> None:
    result = {"result": {"content": [{"type": "text", "text": '{"status":"cancelled"}'}], "isError": False}}
    error = {"error": {"code": -32603, "message": "upstream broke"}}
    assert present.result_parts(row(result=json.dumps(result))) == [("Text", '{\n  "status": "cancelled"\n}')]
    assert present.result_parts(row(result=json.dumps(error))) == [("Error", "-32603: upstream broke")]
    assert present.result_parts(row()) == []


def test_a_tool_description_is_flattened_and_cut_at_300_characters() -> None:
    assert present.tool_description(None) == "" and present.tool_description("") == ""
    assert present.tool_description("Cancel a task.\n\n  For good.") == "Cancel a task. For good."
    long = present.tool_description("word " * 200)
    assert len(long) == present.DESCRIPTION_CHARS and long.endswith("…")
