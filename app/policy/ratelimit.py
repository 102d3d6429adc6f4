"""Per-agent rate limits, counted in the database so every replica shares one exact count.

Fixed windows aligned to multiples of the window length: a rule's `{"max": 10, "window": 60}`
allows 10 calls per agent in each minute (00:00-00:59, 01:00-01:59, …). Only rules that carry a
`rate_limit` pay for the counter's one upsert; other calls never touch the database here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.policy.engine import RateLimit
from app.store import ratelimit as rate_store
from app.store.db import Database


@dataclass(frozen=True, slots=True)
class RateCheck:
    allowed: bool
    retry_after: float
    """Seconds until the current window ends (when a refused call may be tried again)."""


class RateLimiter:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(self, *, upstream: str, key: str, agent: str, limit: RateLimit, now: float) -> RateCheck:
        """Count one call by `agent` against the rule `key`; refuse it if the window is full."""
        window_start = math.floor(now / limit.window) * limit.window
        window_end = window_start + limit.window
        counter = f"{upstream}\x1f{key}\x1f{agent}\x1f{window_start:.3f}"
        async with self._db.write() as conn:
            count = await rate_store.take(conn, key=counter, limit=limit.max, expires_at=window_end)
        return RateCheck(allowed=count is not None, retry_after=max(0.0, window_end - now))
