"""A real OpenID provider on loopback for the agent OAuth tests: npm `oidc-provider` (panva, OpenID Certified).

`op.mjs` runs it with the configuration a test writes: its issuer, the resources it mints tokens
for (Airlock's endpoint URLs: RFC 8707 resource indicators, one audience each), its clients
(client_credentials, and authorization-code clients such as the inbox), the accounts
people sign in with on its own login page (with their email and groups), and its signing key, which the test generates, so a test can also sign
tokens with the provider's own key (exp/nbf edge cases) and restart it with a new one (rotation).

The package is installed into this directory (`npm ci` from `package-lock.json`) on first use.
Without `node`/`npm`, or when the install fails (offline), the tests skip with the reason, except
under `CI=true`, where that is a failure (as for PostgreSQL in `tests/pg.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.net import free_port, wait_for

PROVIDER_DIR = Path(__file__).resolve().parent
SCOPES = "mcp:tools mcp:admin"
CLIENTS = {"agent-1": "secret-1", "agent-2": "secret-2"}


def require_provider() -> None:
    """Make sure `oidc-provider` is installed here, or skip (fail under CI) saying why."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        _missing("node and npm are not installed")
        return
    if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        _missing(f"npm ci failed in {PROVIDER_DIR}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the OpenID provider cannot run: {reason}")
    pytest.skip(f"the OAuth tests need a real OpenID provider: {reason} (set CI=true to make this a failure)")


@dataclass
class ProviderKey:
    """An RSA signing key the test holds privately and the provider publishes."""

    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, "typ": "at+jwt", **header})


class OidcProvider:
    """One `node op.mjs` process; `start()` returns once its metadata answers."""

    def __init__(
        self,
        workdir: Path,
        resources: list[str],
        *,
        key: ProviderKey | None = None,
        ttl: int = 600,
        accounts: dict[str, dict[str, Any]] | None = None,
        web_clients: list[dict[str, Any]] | None = None,
        opaque: list[str] | None = None,
    ) -> None:
        """Args:
        accounts: people who can sign in on the provider's login page, by login, with their claims.
        web_clients: more clients (the inbox, a resource server that introspects), registered as given.
        opaque: resources whose access tokens are opaque (RFC 7662 introspection) rather than JWTs.
        """
        self.opaque = opaque or []
        self.port = free_port()
        self.accounts = accounts or {}
        self.web_clients = web_clients or []
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.resources = resources
        self.key = key or ProviderKey(kid=f"key-{self.port}-1")
        self.ttl = ttl
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"oidc-provider-{self.port}.log"

    async def start(self) -> OidcProvider:
        config = self._workdir / f"oidc-provider-{self.port}.json"
        config.write_text(json.dumps(self._config()), encoding="utf-8")
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                ["node", str(PROVIDER_DIR / "op.mjs"), str(config)], cwd=PROVIDER_DIR, stdout=log, stderr=log
            )
        await wait_for(self._answers, timeout=30, interval=0.05)
        return self

    async def restart(self, key: ProviderKey) -> None:
        """Stop, and start again on the same issuer with `key` as its only signing key (a rotation)."""
        self.stop()
        self.key = key
        await self.start()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    async def token(self, resource: str, *, client: str = "agent-1", scope: str | None = "mcp:tools") -> str:
        """A client_credentials access token for `resource`, as any OAuth client would get it."""
        form = {"grant_type": "client_credentials", "resource": resource, **({"scope": scope} if scope else {})}
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{self.issuer}/token", data=form, auth=(client, CLIENTS[client]))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def sign(self, audience: str, *, lifetime: int = 600, not_before: float | None = None, **claims: Any) -> str:
        """A token signed with the provider's own key, with the times the test chooses."""
        now = int(time.time())
        body = {"iss": self.issuer, "sub": "agent-1", "aud": audience, "iat": now, "exp": now + lifetime}
        if not_before is not None:
            body["nbf"] = int(not_before)
        return self.key.sign({**body, "scope": "mcp:tools", **claims})

    def _config(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "issuer": self.issuer,
            "resources": self.resources,
            "scope": SCOPES,
            "ttl": self.ttl,
            "jwks": {"keys": [self.key.jwk()]},
            "clients": [
                {
                    "client_id": client,
                    "client_secret": secret,
                    "grant_types": ["client_credentials"],
                    "redirect_uris": [],
                    "response_types": [],
                    "scope": SCOPES,
                }
                for client, secret in CLIENTS.items()
            ]
            + self.web_clients,
            "accounts": self.accounts,
            "opaque": self.opaque,
        }

    async def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"oidc-provider exited with {self._process.returncode}:\n{self.log.read_text()}")
        try:
            async with httpx.AsyncClient(timeout=1) as http:
                response = await http.get(f"{self.issuer}/.well-known/openid-configuration")
                return response.status_code == 200
        except httpx.HTTPError:
            return False
