"""The fake clock the lifecycle tests run on: time moves only when advanced, and sleepers wake on time.

Provenance: Airlock-defined (`app/clock.py`).
"""

from __future__ import annotations

import asyncio

import pytest

from app.clock import FakeClock
from tests.approvals.unit.conftest import bounded


async def test_a_sleeper_wakes_when_time_reaches_its_deadline_and_not_before() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep(10))
    await bounded(clock.sleeping())
    clock.advance(9.5)
    await asyncio.sleep(0)  # a yield, not a wait: the sleeper would be runnable now if it were due
    assert not sleeper.done() and clock.sleepers == 1
    clock.advance(0.5)
    await bounded(sleeper)
    assert clock.sleepers == 0


async def test_a_timed_wait_returns_true_when_the_event_is_set_and_false_at_its_deadline() -> None:
    clock = FakeClock()
    event = asyncio.Event()
    set_in_time = asyncio.create_task(clock.wait(event, 5))
    await bounded(clock.sleeping())
    event.set()
    assert await bounded(set_in_time) is True
    assert clock.sleepers == 0, "the deadline is dropped with the wait"

    event.clear()
    timed_out = asyncio.create_task(clock.wait(event, 5))
    await bounded(clock.sleeping())
    clock.advance(5)
    assert await bounded(timed_out) is False


def test_time_only_moves_forward_and_both_clocks_move_together() -> None:
    clock = FakeClock(start=100.0)
    clock.advance(2.5)
    assert (clock.now(), clock.monotonic()) == (102.5, 2.5)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
