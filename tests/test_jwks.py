"""The issuer's key set: discovery, caching, and how rarely it is fetched (`app/oauth/jwks.py`).

Provenance: spec (RFC 8414 metadata, then OpenID Discovery; the metadata's `issuer` must be the
configured one, RFC 8414 §3.3); Airlock-defined (issue 15: keys "fetched, cached, refreshed on an
unknown kid, never on every request"; the cooldowns are this module's). Virtual clock, real HTTP.
"""

from __future__ import annotations

import asyncio

import pytest

from app.oauth.jwks import _FAILURE_COOLDOWN, _MAX_AGE, _UNKNOWN_KID_COOLDOWN, IssuerUnavailable, KeySet, metadata_urls
from tests.keyserver import Key, key_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_metadata_is_looked_for_where_rfc_8414_then_openid_discovery_put_it() -> None:
    assert metadata_urls("https://idp.example/tenant/") == [
        "https://idp.example/.well-known/oauth-authorization-server/tenant",
        "https://idp.example/tenant/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://idp.example") == [
        "https://idp.example/.well-known/oauth-authorization-server",
        "https://idp.example/.well-known/openid-configuration",
    ]


async def test_keys_are_found_through_openid_discovery_when_there_is_no_rfc_8414_metadata() -> None:
    async with key_server(Key("a")) as server:
        server.oauth_metadata = False
        keys = KeySet(server.issuer)
        assert await keys.key("a") is not None
    assert server.hits == {"oauth-authorization-server": 1, "openid-configuration": 1, "jwks": 1}


async def test_metadata_naming_another_issuer_is_not_used() -> None:
    async with key_server(Key("a")) as server:
        server.metadata_issuer = "https://evil.example"
        with pytest.raises(IssuerUnavailable, match=r"names the issuer 'https://evil\.example'"):
            await KeySet(server.issuer).key("a")
        assert server.hits["jwks"] == 0


async def test_concurrent_first_uses_share_one_fetch_and_later_ones_use_the_cache() -> None:
    async with key_server(Key("a")) as server:
        keys = KeySet(server.issuer)
        found = await asyncio.gather(*(keys.key("a") for _ in range(20)))
        assert all(key is not None for key in found)
        await keys.key("a")
    assert (server.hits["jwks"], keys.fetches) == (1, 1)


async def test_an_unknown_kid_refetches_at_most_once_per_cooldown() -> None:
    clock = Clock()
    async with key_server(Key("a")) as server:
        keys = KeySet(server.issuer, clock=clock)
        await keys.key("a")
        assert [await keys.key(f"forged-{i}") for i in range(10)] == [None] * 10
        assert server.hits["jwks"] == 2
        server.keys.append(Key("b").public_jwk())
        assert await keys.key("b") is None  # published meanwhile, but the cooldown is on
        clock.now += _UNKNOWN_KID_COOLDOWN
        assert await keys.key("b") is not None
    assert server.hits["jwks"] == 3


async def test_keys_older_than_the_maximum_age_are_fetched_again() -> None:
    clock = Clock()
    async with key_server(Key("a")) as server:
        keys = KeySet(server.issuer, clock=clock)
        await keys.key("a")
        clock.now += _MAX_AGE - 1
        await keys.key("a")
        assert server.hits["jwks"] == 1
        server.keys = [Key("b").public_jwk()]
        clock.now += 1
        assert await keys.key("a") is None  # withdrawn by the issuer
    assert server.hits["jwks"] == 2


async def test_a_failed_fetch_keeps_the_old_keys_and_is_not_retried_at_once() -> None:
    clock = Clock()
    async with key_server(Key("a")) as server:
        keys = KeySet(server.issuer, clock=clock)
        await keys.key("a")
        server.jwks_status = 500
        clock.now += _MAX_AGE
        assert await keys.key("a") is not None
        assert await keys.key("a") is not None
        assert server.hits["jwks"] == 2
        server.jwks_status = 200
        clock.now += _FAILURE_COOLDOWN
        assert await keys.key("a") is not None
    assert server.hits["jwks"] == 3


async def test_with_no_keys_yet_an_unreachable_issuer_is_unavailable_and_not_hammered() -> None:
    clock = Clock()
    async with key_server(Key("a")) as server:
        server.jwks_status = 503
        keys = KeySet(server.issuer, clock=clock)
        for _ in range(5):
            with pytest.raises(IssuerUnavailable):
                await keys.key("a")
        assert server.hits["jwks"] == 1


async def test_symmetric_and_encryption_keys_are_never_used_to_verify() -> None:
    async with key_server(Key("a")) as server:
        server.keys += [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
            {**Key("enc").public_jwk(), "use": "enc"},
        ]
        keys = KeySet(server.issuer)
        assert (await keys.key("shared"), await keys.key("enc")) == (None, None)
        found = await keys.key("a")
    assert found is not None and found.algorithms == {"RS256"}


async def test_a_key_without_alg_verifies_what_its_type_allows() -> None:
    async with key_server(Key("rsa", declare_alg=False), Key("ec", "ES256", declare_alg=False)) as server:
        keys = KeySet(server.issuer)
        rsa_key, ec_key = await keys.key("rsa"), await keys.key("ec")
    assert rsa_key is not None and rsa_key.algorithms == {"RS256", "PS256"}
    assert ec_key is not None and ec_key.algorithms == {"ES256"}
