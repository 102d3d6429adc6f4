"""Agent OAuth: validate a JWT access token (RFC 9068) for one MCP endpoint and name its agent.

`ResourceServer.authenticate(token, upstream)` returns the agent's name (the value of the
configured identity claim, used as is by policies, rate limits, approvals, self-approval checks
and the audit log, exactly like a static token's agent name) or a `Refusal` the gateway sends:

- 401 with `WWW-Authenticate: Bearer resource_metadata=…, scope=…` when no token was sent, plus
  `error="invalid_token"` when one was sent and refused (not a JWT access token, an algorithm off
  the allowlist, an unknown key, a bad signature, another issuer, expired or not yet valid beyond
  the leeway, no identity claim, or an audience other than this endpoint's URL, RFC 8707);
- 403 `error="insufficient_scope"` with the scopes the endpoint requires, for a valid token
  lacking some (the challenge lists all of them, as the 2026-07-28 spec asks);
- 503 when the issuer's keys cannot be fetched and none are cached (the token may be good).

The token's own checks (`typ`, `alg`, issuer before any key lookup, key, signature, `exp`/`nbf`
with the leeway) are `app/oauth/access_token.py`'s, shared with reviewers' tokens; `aud` and
scopes are checked here, per endpoint.

A validated token is cached (by its text, at most `_CACHE_SIZE`, until its `exp` or
`_CACHE_SECONDS` after validation, whichever is first), so an allowed call's path does a dict
lookup and two set checks, no signature check. Refusals are not cached: a refused token costs one
signature check at most, and forged `kid`s cannot cost fetches (`app/oauth/jwks.py`).

Opaque tokens (anything but three dot-separated parts) are looked up at the authorization
server's introspection endpoint when `[oauth] introspection_endpoint` is set
(`app/oauth/introspection.py`, RFC 7662), and then checked like a JWT's claims: audience, scopes,
identity claim. Without it they are refused as not JWTs.

What this module does not do: reviewer sign-in, or anything with the upstream: the agent's token never leaves Airlock (`app/upstream.py` forwards
an allowlist of headers that excludes `Authorization` and cookies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from app.config import OAuthSettings
from app.oauth import access_token
from app.oauth.access_token import InvalidToken
from app.oauth.introspection import InactiveToken, Introspector
from app.oauth.jwks import IssuerUnavailable, KeySet
from app.oauth.metadata import challenge, resource_url

_CACHE_SECONDS: Final = 60.0
_CACHE_SIZE: Final = 10_000
_MAX_IDENTITY_LENGTH: Final = 256

Headers = list[tuple[bytes, bytes]]

logger = logging.getLogger("airlock.oauth")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The answer to send instead of serving the request."""

    status: int
    message: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class Grant:
    """What a validated token says, whichever endpoint it is shown to."""

    agent: str
    audiences: frozenset[str]
    scopes: frozenset[str]
    until: float
    """Wall-clock time after which it must be validated again."""


class ResourceServer:
    """Validates agents' access tokens for every `/mcp/<name>` endpoint (see the module docstring)."""

    def __init__(
        self,
        settings: OAuthSettings,
        public_url: str,
        *,
        keys: KeySet | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Args:
        clock: wall-clock seconds (compared with `exp`); tests pass their own.
        """
        self.settings = settings
        self.keys = keys or KeySet(settings.issuer, settings.jwks_url)
        self.introspector = (
            None
            if settings.introspection_endpoint is None or settings.introspection_client_id is None
            else Introspector(
                settings.introspection_endpoint,
                settings.introspection_client_id,
                settings.introspection_client_secret,
                issuer=settings.issuer,
                clock=clock,
            )
        )
        self._public_url = public_url
        self._clock = clock
        self._cache: dict[str, Grant] = {}
        self._resources: dict[str, str] = {}
        """Resource URL by upstream name, computed once (the allowed path reads it on every call)."""

    def challenge(self, upstream: str, *, error: str | None = None, description: str | None = None) -> str:
        """The `WWW-Authenticate` value for a 401 or 403 from `upstream`'s endpoint."""
        return challenge(
            self._resource(upstream), self.settings.scopes_for(upstream), error=error, description=description
        )

    async def authenticate(self, token: str | None, upstream: str) -> str | Refusal:
        """The agent `token` names, if it may use `upstream`'s endpoint; else the `Refusal` to send."""
        if token is None:
            return self._refusal(
                401, upstream, "send an Airlock agent token or an OAuth access token as 'Authorization: Bearer <token>'"
            )
        try:
            grant = await self.grant(token)
        except InvalidToken as exc:
            logger.debug("access token refused at /mcp/%s: %s", upstream, exc)  # debug: anyone can cause these
            return self._refusal(401, upstream, str(exc), error="invalid_token")
        except IssuerUnavailable as exc:
            return Refusal(503, f"Service Unavailable: {exc}", [(b"retry-after", b"5")])
        if self._resource(upstream) not in grant.audiences:
            return self._refusal(401, upstream, "the token was not issued for this endpoint", error="invalid_token")
        required = self.settings.scopes_for(upstream)
        if not grant.scopes.issuperset(required):
            return self._refusal(
                403, upstream, "the token lacks a scope this endpoint requires", error="insufficient_scope"
            )
        return grant.agent

    def _resource(self, upstream: str) -> str:
        resource = self._resources.get(upstream)
        if resource is None:
            resource = resource_url(self._public_url, upstream)
            if len(self._resources) < _CACHE_SIZE:
                self._resources[upstream] = resource
        return resource

    def _refusal(self, status: int, upstream: str, sentence: str, *, error: str | None = None) -> Refusal:
        value = self.challenge(upstream, error=error, description=None if error is None else sentence)
        reason = "Unauthorized" if status == 401 else "Forbidden"
        return Refusal(status, f"{reason}: {sentence}", [(b"www-authenticate", value.encode())])

    async def grant(self, token: str) -> Grant:
        """The validated token, from the cache when it is there.

        Raises:
            InvalidToken: the token is refused (the message says why, in words safe for a header).
            IssuerUnavailable: the issuer's keys cannot be fetched and none are cached.
        """
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None and now < cached.until:
            return cached
        grant = await self._validate(token, now)
        self._cache.pop(token, None)
        if len(self._cache) >= _CACHE_SIZE:
            del self._cache[next(iter(self._cache))]  # the oldest validation
        self._cache[token] = grant
        return grant

    async def _validate(self, token: str, now: float) -> Grant:
        if self.introspector is not None and token.count(".") != 2:
            return await self._introspect(self.introspector, token, now)
        claims = await access_token.claims(
            token, self.keys, issuer=self.settings.issuer, leeway=self.settings.leeway_seconds
        )
        return Grant(
            agent=self._identity(claims),
            audiences=_strings(claims.get("aud")),
            scopes=frozenset(_scope_list(claims)),
            until=min(float(claims["exp"]), now + _CACHE_SECONDS),
        )

    async def _introspect(self, introspector: Introspector, token: str, now: float) -> Grant:
        """An opaque token, as the authorization server describes it (RFC 7662, `app/oauth/introspection.py`)."""
        try:
            claims = await introspector.claims(token)
        except InactiveToken as exc:
            raise InvalidToken(str(exc)) from None
        return Grant(
            agent=self._identity(claims),
            audiences=_strings(claims.get("aud")),
            scopes=frozenset(_scope_list(claims)),
            until=min(float(claims["exp"]), now + _CACHE_SECONDS),
        )

    def _identity(self, claims: dict[str, Any]) -> str:
        claim = self.settings.identity_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_IDENTITY_LENGTH:
            raise InvalidToken(f"the token has no usable {claim} claim to name its agent")
        return value


def _strings(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def _scope_list(claims: dict[str, Any]) -> list[str]:
    """RFC 9068 §2.2.3: `scope` is a space-separated string (a list is accepted too)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    return sorted(_strings(scope))
