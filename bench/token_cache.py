"""Token verification under concurrency: database reads and CPU per `agent_for`, across cache expiries.

Issue 12: the 5 s token cache expired for every in-flight request at once, and each re-read the
database (opening overflow connections). This drives `Credentials.agent_for` directly with N
concurrent workers on one valid token, with a short cache time so that a few seconds cross many
expiries, and counts the `agent_tokens` reads with SQLAlchemy's `before_cursor_execute` event.
It runs against whatever `app` is importable, so the same file measures the code before and after.

    .venv/bin/python -m bench.token_cache [--concurrency 32] [--seconds 3] [--cache 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from app.auth import Credentials
from app.store.db import Database
from app.store.migrate import upgrade


async def measure(*, concurrency: int, seconds: float, cache_seconds: float) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='airlock-token-bench-')) / 'airlock.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    reads = 0

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal reads
        reads += statement.lstrip().upper().startswith("SELECT") and "agent_tokens" in statement

    try:
        token = (await Credentials(db, cache_seconds=0).issue_agent_token("bench-agent")).token
        credentials = Credentials(db, cache_seconds=cache_seconds)
        assert await credentials.agent_for(token) == "bench-agent"
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        calls = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal calls
            while time.monotonic() < deadline:
                await credentials.agent_for(token)
                calls += 1
                await asyncio.sleep(0)  # a request yields to the loop elsewhere (body, upstream, relay)

        cpu = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
    finally:
        await db.dispose()
    expiries = seconds / cache_seconds
    return {
        "concurrency": concurrency,
        "cache_seconds": cache_seconds,
        "calls": calls,
        "reads": reads,
        "reads_per_expiry": round(reads / expiries, 2),
        "cpu_us_per_call": round(cpu / calls * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.token_cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cache", type=float, default=0.2, help="token_cache_seconds")
    args = parser.parse_args()
    print(
        json.dumps(asyncio.run(measure(concurrency=args.concurrency, seconds=args.seconds, cache_seconds=args.cache)))
    )


if __name__ == "__main__":
    main()
