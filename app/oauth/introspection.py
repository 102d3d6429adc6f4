"""Agent OAuth for opaque access tokens: ask the authorization server about them (RFC 7662).

`Introspector.claims(token)` POSTs `token` (with `token_type_hint=access_token`) to the configured
introspection endpoint, authenticated as Airlock's own client (HTTP Basic, `client_secret_basic`),
and returns the answer's claims when the token is `active`. `app/oauth/resource_server.py` then
checks them as it checks a JWT's: `aud` names the endpoint (RFC 8707), the scopes, the identity
claim.

Refused here (`InvalidToken`): an inactive token; an answer whose `iss` is another issuer; a
`token_type` other than Bearer (a refresh token is not an access token); no `exp`, or an `exp`
past. The endpoint failing (unreachable, not 200, not JSON) raises `IssuerUnavailable`: the
gateway answers 503, since the token may be good.

Bounded cost:

- an active answer is cached by the token's SHA-256 (the token itself is not kept), for
  `_CACHE_SECONDS` and never past its `exp`, so a revocation at the server takes at most that long
  to be honoured; an inactive one for `_INACTIVE_SECONDS`; each cache holds at most `_CACHE_SIZE`;
- one request per token at a time (single flight): concurrent requests with the same token wait
  for the one lookup;
- at most `_CONCURRENT` requests to the endpoint at once, whatever tokens arrive.

What this module does not do: JWTs (the resource server validates them itself, with no request).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_plus

import aiohttp

from app.errors import AirlockError
from app.oauth.jwks import IssuerUnavailable

logger = logging.getLogger("airlock.oauth")

_CACHE_SECONDS: Final = 60.0
_INACTIVE_SECONDS: Final = 10.0
_CACHE_SIZE: Final = 10_000
_CONCURRENT: Final = 16
_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)
_MAX_ANSWER_BYTES: Final = 65_536


class InactiveToken(AirlockError):
    """The authorization server does not vouch for the token (the message says why)."""


@dataclass(frozen=True, slots=True)
class Introspected:
    """An introspection answer: its claims when active, else why not; kept until `until`."""

    claims: dict[str, Any] | None
    refusal: str
    until: float


class Introspector:
    """Looks opaque tokens up at one introspection endpoint (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        client_id: str,
        client_secret: str,
        *,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint
        # RFC 6749 §2.3.1: form-encode both before Basic (secrets may hold ':' and the like).
        self._authorization = aiohttp.encode_basic_auth(quote_plus(client_id), quote_plus(client_secret))
        self._issuer = issuer
        self._clock = clock
        self._cache: OrderedDict[str, Introspected] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[Introspected]] = {}
        self._slots = asyncio.Semaphore(_CONCURRENT)
        self.requests = 0
        """Requests sent to the endpoint (tests count them)."""

    async def claims(self, token: str) -> dict[str, Any]:
        """The active token's claims.

        Raises:
            InactiveToken: the server says it is not active, or its answer refuses it.
            IssuerUnavailable: the endpoint cannot answer now.
        """
        digest = hashlib.sha256(token.encode()).hexdigest()
        known = self._cache.get(digest)
        if known is None or self._clock() >= known.until:
            known = await self._lookup_once(digest, token)
        if known.claims is None:
            raise InactiveToken(known.refusal)
        return known.claims

    async def _lookup_once(self, digest: str, token: str) -> Introspected:
        running = self._lookups.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        lookup = asyncio.ensure_future(self._lookup(token))
        self._lookups[digest] = lookup
        try:
            answer = await asyncio.shield(lookup)
        finally:
            if self._lookups.get(digest) is lookup:
                del self._lookups[digest]
        self._remember(digest, answer)
        return answer

    def _remember(self, digest: str, answer: Introspected) -> None:
        self._cache.pop(digest, None)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.popitem(last=False)
        self._cache[digest] = answer

    async def _lookup(self, token: str) -> Introspected:
        async with self._slots:
            self.requests += 1
            answer = await self._post(token)
        now = self._clock()
        refusal = self._refusal(answer, now)
        if refusal is not None:
            return Introspected(None, refusal, now + _INACTIVE_SECONDS)
        return Introspected(answer, "", min(float(answer["exp"]), now + _CACHE_SECONDS))

    async def _post(self, token: str) -> dict[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT, trust_env=False) as http:
                headers = {"accept": "application/json", "authorization": self._authorization}
                async with http.post(self._endpoint, data=form, headers=headers) as response:
                    response.raise_for_status()
                    body = await response.content.read(_MAX_ANSWER_BYTES + 1)
            if len(body) > _MAX_ANSWER_BYTES:
                raise ValueError("the answer is too large")
            answer = _json_object(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("token introspection at %s failed: %s", self._endpoint, exc)
            raise IssuerUnavailable(f"cannot introspect the token at the authorization server ({exc})") from None
        return answer

    def _refusal(self, answer: dict[str, Any], now: float) -> str | None:
        if answer.get("active") is not True:
            return "the authorization server says the token is not active"
        issuer = answer.get("iss")
        if issuer is not None and issuer != self._issuer:
            return f"the token was not issued by {self._issuer}"
        token_type = answer.get("token_type")
        if token_type is not None and str(token_type).lower() != "bearer":
            return "the token is not an access token"
        expires = answer.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool) or expires <= now:
            return "the token has expired" if isinstance(expires, int | float) else "the token has no exp claim"
        return None


def _json_object(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("the answer is not a JSON object")
    return document
