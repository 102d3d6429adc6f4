"""Agent authentication cost per call: a JWT access token (warm and cold) against a static token (warm).

Issue 15: "cache validations so the allowed-call path stays inside the benchmark goals". This
times the function each MCP request awaits to learn its agent, in a tight loop, in one process:

- `static, warm`: `Credentials.agent_for` on a cached `alk_agent_` token (the path today);
- `jwt, warm`: `ResourceServer.authenticate` on a token validated before (cache hit: a dict
  lookup, the audience and the scopes);
- `jwt, cold`: the same with the validation cache emptied before each call (header checks and
  one signature verification; RS256 and ES256), what a token's first use, or a token refused,
  costs.

The keys come from memory (a `KeySet` whose fetch returns them), so no fetch is timed: fetches
are counted and rate-limited by `app/oauth/jwks.py`, not per call. `make bench` runs it too
(`agent_authentication` in the JSON, a line under the tables); alone:

    .venv/bin/python -m bench.oauth_cost [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.auth import Credentials
from app.config import OAuthSettings
from app.oauth.jwks import KeySet, SigningKey
from app.oauth.resource_server import ResourceServer
from app.store.db import Database
from app.store.migrate import upgrade

ISSUER = "https://idp.bench.example"
PUBLIC_URL = "https://airlock.bench.example"
AUDIENCE = f"{PUBLIC_URL}/mcp/market"


class MemoryKeys(KeySet):
    """The issuer's keys without the network."""

    def __init__(self, keys: dict[str | None, SigningKey]) -> None:
        super().__init__(ISSUER)
        self._memory = keys

    async def _fetch(self) -> dict[str | None, SigningKey]:
        self.fetches += 1
        return self._memory


async def per_call_us(
    call: Callable[[], Awaitable[Any]], calls: int, before: Callable[[], None] | None = None
) -> float:
    for _ in range(min(calls, 200)):
        await call()  # warm up
    elapsed = 0.0
    for _ in range(calls):
        if before is not None:
            before()
        start = time.perf_counter()
        await call()
        elapsed += time.perf_counter() - start
    return round(elapsed / calls * 1e6, 2)


async def static_token_us(calls: int) -> float:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='airlock-oauth-bench-')) / 'airlock.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        token = (await Credentials(db, cache_seconds=0).issue_agent_token("bench-agent")).token
        credentials = Credentials(db, cache_seconds=3600)
        return await per_call_us(lambda: credentials.agent_for(token), calls)
    finally:
        await db.dispose()


async def jwt_us(calls: int, algorithm: str) -> dict[str, float]:
    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    keys = MemoryKeys({"k1": SigningKey(private.public_key(), frozenset({algorithm}))})
    server = ResourceServer(OAuthSettings(issuer=ISSUER, required_scopes=("mcp:tools",)), PUBLIC_URL, keys=keys)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "bench-agent", "aud": AUDIENCE, "iat": now, "exp": now + 3600, "scope": "mcp:tools"}
    token = jwt.encode(claims, private, algorithm=algorithm, headers={"kid": "k1", "typ": "at+jwt"})
    assert await server.authenticate(token, "market") == "bench-agent"
    warm = await per_call_us(lambda: server.authenticate(token, "market"), calls)
    cold = await per_call_us(lambda: server.authenticate(token, "market"), max(calls // 10, 100), server._cache.clear)
    assert keys.fetches == 1
    return {"warm": warm, "cold": cold}


async def measure(calls: int) -> dict[str, Any]:
    rs256 = await jwt_us(calls, "RS256")
    es256 = await jwt_us(calls, "ES256")
    return {
        "calls": calls,
        "us_per_call": {
            "static, warm": await static_token_us(calls),
            "jwt RS256, warm": rs256["warm"],
            "jwt RS256, cold": rs256["cold"],
            "jwt ES256, warm": es256["warm"],
            "jwt ES256, cold": es256["cold"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oauth_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.calls)), indent=2))


if __name__ == "__main__":
    main()
