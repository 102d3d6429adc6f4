"""Restart backoff after crashes in a row, and the stderr line budget (pure: no process is started).

Provenance: Airlock-defined (issue 14, item 1: "a crashed process is restarted with backoff").
"""

from __future__ import annotations

from app.stdio.pool import HEALTHY_SECONDS, Backoff
from app.stdio.process import LineBudget


def test_the_first_crash_restarts_at_once_and_each_next_one_waits_twice_as_long_up_to_30_seconds() -> None:
    backoff = Backoff()
    delays = [backoff.crashed(lifetime=0.1) for _ in range(10)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_child_that_ran_long_enough_before_crashing_starts_the_count_again() -> None:
    backoff = Backoff()
    backoff.crashed(lifetime=0.1)
    backoff.crashed(lifetime=0.1)
    assert backoff.crashed(lifetime=HEALTHY_SECONDS) == 0.0


def test_a_line_budget_takes_its_limit_per_window_and_counts_the_rest() -> None:
    budget = LineBudget(limit=2, window=10)
    assert [budget.take(now) for now in (0, 1, 2, 3)] == [True, True, False, False]
    assert budget.skipped == 2
    assert budget.take(10.5) is True
    assert budget.skipped == 0
