"""A minimal issuer on loopback for key-handling tests: metadata and a JWK Set the test controls, with hit counts.

The provider-backed tests (`tests/test_oauth.py`) use the real oidc-provider; this one exists for
what a real provider cannot be made to do on cue: fail, answer slowly, publish odd keys, and for
tests that run a virtual clock.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.net import serve


@dataclass
class Key:
    kid: str
    alg: str = "RS256"
    private: Any = None
    declare_alg: bool = True

    def __post_init__(self) -> None:
        if self.private is None:
            self.private = {
                "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "PS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
                "EdDSA": ed25519.Ed25519PrivateKey.generate,
            }[self.alg]()

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.alg in ("RS256", "PS256"):
            text = RSAAlgorithm.to_jwk(public)
        elif self.alg == "ES256":
            text = ECAlgorithm.to_jwk(public)
        else:
            text = OKPAlgorithm.to_jwk(public)
        jwk: dict[str, Any] = json.loads(text)
        return {**jwk, "kid": self.kid, "use": "sig", **({"alg": self.alg} if self.declare_alg else {})}

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, **header: Any) -> str:
        headers = {"kid": self.kid, "typ": "at+jwt", **header}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


@dataclass
class KeyServer:
    issuer: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    jwks_status: int = 200
    oauth_metadata: bool = True
    """False: only OpenID discovery answers (RFC 8414's URL gives 404)."""
    metadata_issuer: str | None = None
    """What the metadata says the issuer is (default: the real one)."""
    hits: Counter[str] = field(default_factory=Counter)

    def claims(self, audience: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "sub": "agent-1", "aud": audience, "iat": now, "exp": now + 600, **extra}

    def app(self) -> Starlette:
        async def oauth(request: Request) -> Response:
            self.hits["oauth-authorization-server"] += 1
            return self._metadata() if self.oauth_metadata else Response(status_code=404)

        async def openid(request: Request) -> Response:
            self.hits["openid-configuration"] += 1
            return self._metadata()

        async def jwks(request: Request) -> Response:
            self.hits["jwks"] += 1
            if self.jwks_status != 200:
                return Response(status_code=self.jwks_status)
            return JSONResponse({"keys": self.keys})

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", oauth),
                Route("/.well-known/openid-configuration", openid),
                Route("/jwks", jwks),
            ]
        )

    def _metadata(self) -> Response:
        return JSONResponse({"issuer": self.metadata_issuer or self.issuer, "jwks_uri": f"{self.issuer}/jwks"})


@asynccontextmanager
async def key_server(*keys: Key) -> AsyncIterator[KeyServer]:
    server = KeyServer(keys=[key.public_jwk() for key in keys])
    async with serve(server.app()) as url:
        server.issuer = url
        yield server
