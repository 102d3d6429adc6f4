"""How many requests one agent may hold open at once (`[approvals] max_held_per_agent`).

A held request keeps a socket and a task for up to the hold budget; identical calls attach to one
approval without limit, so the cap on distinct pending approvals (`TooManyPending`) does not bound
them (issue 10: one agent held 1,000 sockets in 30 s). This counts held requests per agent and
refuses the one over the cap before anything is parked.

The count is per process: with N replicas an agent may hold up to N × the cap. A shared count
would cost a database write per held request and a lease to recover counts of a dead replica;
the per-process bound is what protects each replica's sockets, which is the point. Pure module:
no I/O.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType


class TooManyHeld(Exception):
    def __init__(self, agent: str, limit: int) -> None:
        super().__init__(f"agent {agent} already holds {limit} request{'' if limit == 1 else 's'} open")
        self.agent = agent
        self.limit = limit


class HeldSlot:
    """One held request's place in its agent's count; leaving the `with` block gives it back."""

    def __init__(self, limits: HeldLimits, agent: str) -> None:
        self._limits = limits
        self._agent = agent

    def __enter__(self) -> HeldSlot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._limits._release(self._agent)


class HeldLimits:
    def __init__(self, max_per_agent: int) -> None:
        if max_per_agent <= 0:
            raise ValueError("max_per_agent must be a positive number")
        self._max = max_per_agent
        self._held: Counter[str] = Counter()

    def acquire(self, agent: str) -> HeldSlot:
        """Take a slot for `agent`; use the result as `with slot:` around the whole hold.

        Raises:
            TooManyHeld: the agent already holds `max_per_agent` requests in this process.
        """
        if self._held[agent] >= self._max:
            raise TooManyHeld(agent, self._max)
        self._held[agent] += 1
        return HeldSlot(self, agent)

    def count(self, agent: str) -> int:
        return self._held[agent]

    def total(self) -> int:
        return sum(self._held.values())

    def _release(self, agent: str) -> None:
        self._held[agent] -= 1
        if self._held[agent] <= 0:
            del self._held[agent]
