"""Access-token validation details a real provider cannot be made to show on cue (`app/oauth/resource_server.py`).

Provenance: spec (RFC 9068 `typ` and algorithms, RFC 7517 `alg` on a key, RFC 6750 challenges);
Airlock-defined (issue 15: validations are cached so the allowed-call path stays cheap, bounded;
an unreachable issuer is "try again", not "your token is bad"). The provider-backed tests are in
`tests/test_oauth.py`.
"""

from __future__ import annotations

import time

import pytest

from app.config import OAuthSettings
from app.oauth import resource_server as oauth_module
from app.oauth.resource_server import Refusal, ResourceServer
from tests.keyserver import Key, KeyServer, key_server
from tests.net import free_port

PUBLIC_URL = "http://airlock.test:8080"
AUDIENCE = f"{PUBLIC_URL}/mcp/market"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return time.time() + self.now


def resource_server(server: KeyServer, clock: Clock | None = None, **settings: object) -> ResourceServer:
    oauth = OAuthSettings(issuer=server.issuer, **settings)  # type: ignore[arg-type]
    return ResourceServer(oauth, PUBLIC_URL, clock=clock or Clock())


@pytest.mark.parametrize(
    "key",
    [Key("r"), Key("p", "PS256"), Key("p2", "PS256", declare_alg=False), Key("e", "ES256"), Key("d", "EdDSA")],
    ids=["RS256", "PS256", "PS256 with an RSA key that declares no alg", "ES256", "EdDSA"],
)
async def test_tokens_signed_with_each_allowed_algorithm_are_accepted(key: Key) -> None:
    async with key_server(key) as server:
        agent = await resource_server(server).authenticate(key.sign(server.claims(AUDIENCE)), "market")
    assert agent == "agent-1"


async def test_a_key_published_for_one_algorithm_does_not_verify_another() -> None:
    """RFC 7517 §4.4: a JWK's `alg` names the algorithm it is for (no RS256 → PS256 switch)."""
    key = Key("r")
    async with key_server(key) as server:
        refusal = await resource_server(server).authenticate(key.sign(server.claims(AUDIENCE), alg="PS256"), "market")
    assert isinstance(refusal, Refusal) and refusal.status == 401
    assert "the token is signed with a key its issuer does not publish" in refusal.message


async def test_a_validated_token_is_served_from_the_cache_until_its_ttl() -> None:
    key, clock = Key("r"), Clock()
    async with key_server(key) as server:
        verifier = resource_server(server, clock)
        token = key.sign(server.claims(AUDIENCE))
        first = await verifier.grant(token)
        assert await verifier.grant(token) is first
        clock.now += oauth_module._CACHE_SECONDS
        assert await verifier.grant(token) is not first


async def test_a_cached_validation_ends_at_the_tokens_exp() -> None:
    key, clock = Key("r"), Clock()
    async with key_server(key) as server:
        verifier = resource_server(server, clock)
        claims = server.claims(AUDIENCE)
        claims["exp"] = claims["iat"] + 5
        grant = await verifier.grant(key.sign(claims))
    assert grant.until == claims["exp"]


async def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth_module, "_CACHE_SIZE", 3)
    key = Key("r")
    async with key_server(key) as server:
        verifier = resource_server(server)
        tokens = [key.sign(server.claims(AUDIENCE, jti=str(i))) for i in range(5)]
        for token in tokens:
            await verifier.grant(token)
    assert list(verifier._cache) == tokens[2:]


async def test_an_unreachable_issuer_gets_503_with_retry_after_not_401() -> None:
    key = Key("r")
    dead = KeyServer(issuer=f"http://127.0.0.1:{free_port()}")
    verifier = resource_server(dead)
    token = key.sign(dead.claims(AUDIENCE))
    refusal = await verifier.authenticate(token, "market")
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.headers) == (503, [(b"retry-after", b"5")])
    assert refusal.message.startswith("Service Unavailable: cannot fetch the signing keys of the token issuer")


async def test_challenges_never_echo_a_requested_name_unescaped() -> None:
    verifier = ResourceServer(OAuthSettings(issuer="https://idp.example"), PUBLIC_URL)
    assert verifier.challenge('x", error="forged\r\n') == (
        'Bearer resource_metadata="http://airlock.test:8080/.well-known/oauth-protected-resource/mcp/'
        'x%22%2C%20error%3D%22forged%0D%0A"'
    )
