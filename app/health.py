"""Health for load balancers and operators: `/livez` (the process serves) and `/readyz` (it can do its job).

`/readyz` runs named checks and answers 200 when every required one passes, else 503; the JSON
body lists each check with `ok` and, when it failed, why:

- `database`: a write transaction opens and answers within `CHECK_TIMEOUT` seconds, and the
  database accepts writes (PostgreSQL: not a read-only transaction or a standby; SQLite: not
  `query_only`). Required: without it no call can be parked and no decision recorded.
- `policy:<upstream>`: the policy in force was loaded, and the file on disk is still valid (an
  edit that broke it is reported here, while the last good policy stays in force). Required: the
  operator's latest intent is not what runs.
- `upstream:<upstream>`: a TCP connection to the upstream's host and port opens. Reported, but
  not required: one upstream down must not take Airlock (and every other upstream) out of the
  load balancer. Checked at most every `UPSTREAM_CHECK_SECONDS`, so frequent probes do not
  become traffic to the upstreams.

`/healthz` stays what it was (an alias of `/livez`, plus the policy versions in force), for
existing load balancer configurations.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import __version__
from app.policy.reloader import PolicyReloader
from app.store.db import Database

CHECK_TIMEOUT: Final = 2.0
UPSTREAM_CHECK_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    required: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "required": self.required}
        if self.error is not None:
            body["error"] = self.error
        return body


class Health:
    """The checks behind `/livez` and `/readyz`, for one process."""

    def __init__(self, db: Database, policies: PolicyReloader, upstream_urls: dict[str, str]) -> None:
        self._db = db
        self._policies = policies
        self._upstream_urls = upstream_urls
        self._reachable: dict[str, tuple[float, Check]] = {}
        self._database_check: asyncio.Task[bool] | None = None

    async def livez(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(self, _request: Request) -> JSONResponse:
        checks = [
            await self._database(),
            *self._policy_checks(),
            *await asyncio.gather(*(self._upstream(name, url) for name, url in self._upstream_urls.items())),
        ]
        ready = all(check.ok for check in checks if check.required)
        body = {
            "status": "ready" if ready else "not ready",
            "version": __version__,
            "checks": {check.name: check.as_json() for check in checks},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _database(self) -> Check:
        # The check runs as its own task, and we stop waiting for it after CHECK_TIMEOUT rather
        # than cancel it: cancelling a query stuck on a lock still waits for the connection's
        # rollback behind that lock (SQLite's busy_timeout is 30 s), so the probe would hang
        # instead of answering. One check at a time: a stuck one is reported, not piled onto.
        if self._database_check is None or self._database_check.done():
            self._database_check = asyncio.create_task(self._read_only())
            self._database_check.add_done_callback(_retrieve)
        check = self._database_check
        done, _ = await asyncio.wait({check}, timeout=CHECK_TIMEOUT)
        if not done:
            return Check("database", False, True, f"no answer within {CHECK_TIMEOUT:g} s")
        if (exc := check.exception()) is not None:
            return Check("database", False, True, _one_line(exc))
        if check.result():
            return Check("database", False, True, "the database accepts no writes (read-only)")
        return Check("database", True, True)

    async def _read_only(self) -> bool:
        async with self._db.write() as conn:
            if self._db.is_postgres:
                setting = (await conn.execute(text("SHOW transaction_read_only"))).scalar_one()
                return str(setting).lower() == "on"
            return bool((await conn.execute(text("PRAGMA query_only"))).scalar_one())

    def _policy_checks(self) -> list[Check]:
        checks = []
        for upstream in self._upstream_urls:
            problem = self._policies.problem(upstream)
            checks.append(
                Check(
                    f"policy:{upstream}",
                    problem is None,
                    True,
                    None if problem is None else f"the file on disk is not in force: {problem}",
                )
            )
        return checks

    async def _upstream(self, name: str, url: str) -> Check:
        if not url:  # a stdio upstream: its processes start per session (app/stdio/bridge.py)
            return Check(f"upstream:{name}", True, False)
        cached = self._reachable.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < UPSTREAM_CHECK_SECONDS:
            return cached[1]
        check = await _tcp_check(f"upstream:{name}", url)
        self._reachable[name] = (now, check)
        return check


async def _tcp_check(name: str, url: str) -> Check:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            _reader, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError) as exc:
        return Check(name, False, False, f"cannot connect to {parts.hostname}:{port} ({_one_line(exc)})")
    writer.close()
    return Check(name, True, False)


def _retrieve(task: asyncio.Task[bool]) -> None:
    # A check nobody waits for any more still has its exception read, so it is not logged as lost.
    if not task.cancelled():
        task.exception()


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
