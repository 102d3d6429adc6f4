"""The issuer's signing keys: found through its metadata, fetched, cached, and refetched sparingly.

`KeySet.key(kid)` answers from memory. The network is used only:

- on first use: the issuer's metadata (RFC 8414 `/.well-known/oauth-authorization-server`, then
  OpenID `/.well-known/openid-configuration`; its `issuer` must equal the configured one) names
  `jwks_uri`, unless `jwks_url` is configured; then the key set itself;
- when the cached set is older than `_MAX_AGE` (so a key the issuer withdrew stops working);
- for a `kid` it does not hold (the issuer rotated its keys), at most once per
  `_UNKNOWN_KID_COOLDOWN`, however many requests carry unknown kids: a client cannot make Airlock
  fetch keys per request. The price: a key that first appears within that time after another
  unknown kid was looked for is refused until the cooldown ends;
- after a failed fetch, not again for `_FAILURE_COOLDOWN`. A stale set keeps serving meanwhile;
  with no set at all, `IssuerUnavailable` (the gateway answers 503, not 401: the token may be good).

One fetch runs at a time (a lock); requests that queued behind it use its result.

Each fetch opens its own aiohttp session: fetches are rare, and this keeps the key set free of a
lifecycle (nothing to start or close with the app).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import jwt

from app.errors import AirlockError

logger = logging.getLogger("airlock.oauth")

_MAX_AGE: Final = 3600.0
_UNKNOWN_KID_COOLDOWN: Final = 30.0
_FAILURE_COOLDOWN: Final = 5.0
_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)
_MAX_DOCUMENT_BYTES: Final = 1_048_576
_ALGORITHMS_BY_KEY_TYPE: Final = {
    "RSA": frozenset({"RS256", "PS256"}),
    "EC": frozenset({"ES256"}),
    "OKP": frozenset({"EdDSA"}),
}
"""Never `oct`: a published symmetric key would let anyone who read it sign tokens."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: Any
    """The public key, as PyJWT's `decode` takes it."""
    algorithms: frozenset[str]
    """What it may verify: its JWK's `alg` if given, else what its key type allows."""


class IssuerUnavailable(AirlockError):
    """The issuer's keys cannot be had now (no cached set, and fetching failed): try again later."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order tried (RFC 8414 §3.1, then OpenID Discovery §4)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


class KeySet:
    """The signing keys of one issuer, by `kid` (see the module docstring for when it fetches)."""

    def __init__(
        self, issuer: str, jwks_url: str | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._clock = clock
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched_at = -math.inf
        self._failed_at = -math.inf
        self._unknown_kid_at = -math.inf
        self._lock = asyncio.Lock()
        self._attempts = 0
        """Fetches ended (or skipped) under the lock: a waiter that sees it change uses that outcome."""
        self.fetches = 0
        """Key-set downloads attempted (tests and the benchmark count them)."""

    async def key(self, kid: str | None) -> SigningKey | None:
        """The key for `kid` (for no `kid`: the only key, if there is one), or None.

        Raises:
            IssuerUnavailable: no key set was ever fetched and fetching fails now.
        """
        now = self._clock()
        stale = now - self._fetched_at >= _MAX_AGE
        if stale:
            await self._refresh()
        found = self._lookup(kid)
        if found is None and not stale:
            if now - self._unknown_kid_at >= _UNKNOWN_KID_COOLDOWN:
                self._unknown_kid_at = now
                await self._refresh()
            elif self._lock.locked():
                async with self._lock:
                    pass  # a fetch is under way (perhaps for this very kid): use its result
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> SigningKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        """Fetch the set, unless another fetch ended while this one waited for the lock, or one failed lately."""
        attempts = self._attempts
        async with self._lock:
            if self._attempts != attempts:
                self._fail_if_empty("fetching them failed moments ago")
                return
            try:
                if self._clock() - self._failed_at < _FAILURE_COOLDOWN:
                    self._fail_if_empty("fetching them failed moments ago")
                    return
                self._keys = await self._fetch()
                self._fetched_at = self._clock()
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
                self._failed_at = self._clock()
                logger.warning("cannot fetch the signing keys of %s: %s", self._issuer, exc)
                self._fail_if_empty(str(exc))
            finally:
                self._attempts += 1

    def _fail_if_empty(self, why: str) -> None:
        if not self._keys:
            raise IssuerUnavailable(f"cannot fetch the signing keys of the token issuer ({why})")

    async def _fetch(self) -> dict[str | None, SigningKey]:
        self.fetches += 1
        async with aiohttp.ClientSession(timeout=_TIMEOUT, trust_env=False) as http:
            if self._jwks_url is None:
                self._jwks_url = await self._discover(http)
            document = await _get_json(http, self._jwks_url)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise ValueError(f"{self._jwks_url} is not a JWK Set")
        usable = [
            key
            for key in keys
            if isinstance(key, dict) and key.get("use", "sig") == "sig" and key.get("kty") in _ALGORITHMS_BY_KEY_TYPE
        ]
        return {
            key.key_id: SigningKey(key.key, _algorithms(data))
            for key, data in ((jwt.PyJWK(data), data) for data in _parseable(usable))
        }

    async def _discover(self, http: aiohttp.ClientSession) -> str:
        """The issuer's `jwks_uri`, from the first metadata document that exists."""
        for url in metadata_urls(self._issuer):
            try:
                metadata = await _get_json(http, url)
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    continue
                raise
            if metadata.get("issuer") != self._issuer:
                raise ValueError(f"{url} names the issuer {metadata.get('issuer')!r}, not {self._issuer!r}")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError(f"{url} names no jwks_uri")
            return jwks_uri
        raise ValueError(f"{self._issuer} publishes no authorization server metadata")


def _parseable(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The keys PyJWT can load (others are skipped, as `PyJWKSet` does); none at all is an error."""
    loadable = []
    for data in keys:
        try:
            jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue
        loadable.append(data)
    if not loadable:
        raise jwt.PyJWKSetError("the JWK Set holds no usable signing key")
    return loadable


def _algorithms(data: dict[str, Any]) -> frozenset[str]:
    by_type = _ALGORITHMS_BY_KEY_TYPE[data["kty"]]
    declared = data.get("alg")
    return by_type & {declared} if isinstance(declared, str) else by_type


async def _get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url, headers={"accept": "application/json"}, allow_redirects=False) as response:
        response.raise_for_status()
        body = await response.content.read(_MAX_DOCUMENT_BYTES + 1)
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document
