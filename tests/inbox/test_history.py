"""The history page's filters: a query string in, one typed filter (and what was ignored) out.

Provenance: Airlock-defined (issue: web approval inbox, "filterable by status, agent, tool and time"); pure.
"""

from __future__ import annotations

from app.inbox.history import HistoryFilter, parse_filter


def test_no_filters_means_every_decided_approval_at_any_time() -> None:
    chosen, problems = parse_filter({})
    assert chosen == HistoryFilter() and problems == []
    assert "pending" not in chosen.statuses and "rejected" in chosen.statuses
    assert chosen.since_at is None and chosen.until_at is None


def test_status_agent_tool_and_times_are_read_with_times_in_utc() -> None:
    chosen, problems = parse_filter(
        {
            "status": "rejected",
            "agent": " agent-1 ",
            "tool": "em_cancel_task",
            "since": "2026-11-24T10:30",
            "until": "2026-11-25T00:00",
        }
    )
    assert problems == []
    assert chosen.statuses == ("rejected",) and chosen.agent == "agent-1" and chosen.tool == "em_cancel_task"
    assert chosen.since_at == 1795516200.0 and chosen.until_at == 1795564800.0
    assert parse_filter({"status": "all"})[0].statuses == ()


def test_invalid_values_are_ignored_and_reported() -> None:
    chosen, problems = parse_filter({"status": "bogus", "since": "yesterday", "until": "2026-13-01T00:00"})
    assert chosen == HistoryFilter()
    assert problems == [
        "Unknown status 'bogus'; showing decided approvals.",
        "From must be a date and time like 2026-11-24T10:30; it was ignored.",
        "Until must be a date and time like 2026-11-24T10:30; it was ignored.",
    ]
