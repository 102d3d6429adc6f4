"""The history page's filters: parse the query string into one typed value, or say what is wrong.

    ?status=decided|all|<status>&agent=NAME&tool=NAME&since=2026-11-24T10:00&until=2026-11-25T00:00

`status` filters approvals (`decided`, the default, is every status but `pending`); agent, tool
and the time range filter both the approvals (by when they were parked) and the audit log (by when
the entry was written). Times are `datetime-local` values, read as UTC (the pages show UTC too).

Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from app.approvals.model import Status

DECIDED: Final = "decided"
EVERY: Final = "all"
STATUS_CHOICES: Final = (DECIDED, EVERY, *(status.value for status in Status))
LIMIT: Final = 100
"""Rows per table: the newest this many."""


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    status: str = DECIDED
    agent: str = ""
    tool: str = ""
    since: str = ""
    until: str = ""
    """The values as typed, to fill the form again."""

    @property
    def statuses(self) -> tuple[str, ...]:
        """The approval statuses to list (empty: all of them)."""
        if self.status == EVERY:
            return ()
        if self.status == DECIDED:
            return tuple(status.value for status in Status if status is not Status.PENDING)
        return (self.status,)

    @property
    def since_at(self) -> float | None:
        return _timestamp(self.since)

    @property
    def until_at(self) -> float | None:
        return _timestamp(self.until)


def parse_filter(query: Mapping[str, str]) -> tuple[HistoryFilter, list[str]]:
    """The filter a query string asks for, and one sentence per value that was ignored as invalid."""
    problems: list[str] = []
    status = query.get("status", DECIDED) or DECIDED
    if status not in STATUS_CHOICES:
        problems.append(f"Unknown status {status!r}; showing decided approvals.")
        status = DECIDED
    since, until = query.get("since", "").strip(), query.get("until", "").strip()
    for label, value in (("From", since), ("Until", until)):
        if value and _timestamp(value) is None:
            problems.append(f"{label} must be a date and time like 2026-11-24T10:30; it was ignored.")
    return HistoryFilter(
        status=status,
        agent=query.get("agent", "").strip()[:200],
        tool=query.get("tool", "").strip()[:200],
        since=since if _timestamp(since) is not None else "",
        until=until if _timestamp(until) is not None else "",
    ), problems


def _timestamp(value: str) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
