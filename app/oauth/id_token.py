"""Reviewer single sign-on: validate an OpenID Connect ID token and return its claims.

`IdTokenVerifier.claims(id_token, nonce)` checks, in order (OpenID Connect Core 1.0 §3.1.3.7):

- it is a JWT whose header `typ`, if any, is not an access token's (`at+jwt`: an access token
  is not a sign-in);
- `alg` is on `ALGORITHMS` (never `none` or HS\\*), and the unverified `iss` is the configured
  issuer before any key lookup, so a token from elsewhere never causes a fetch;
- the signature verifies with the issuer's key for its `kid`, from the issuer's JWK Set
  (`app/oauth/jwks.py`: the same fetched, cached, sparingly refetched keys agents' tokens use);
- `iss` is the issuer, `aud` contains the client id (and with several audiences `azp` is the
  client id), `exp` and `iat` are present, `exp` not past beyond `LEEWAY_SECONDS`;
- `nonce` equals the one this sign-in sent (compared in constant time): a replayed ID token from
  another sign-in is refused.

What this module does not do: decide who may review (`app/inbox/admission.py`) or talk to the
token endpoint (`app/inbox/sso.py`). The ID token arrives from the token endpoint over TLS, but
it is checked in full anyway: the specification allows skipping the signature check then, and we
do not, so a proxy or a misrouted token endpoint cannot sign anyone in.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

import jwt

from app.errors import AirlockError
from app.oauth.access_token import ACCESS_TOKEN_TYPES, ALGORITHMS
from app.oauth.jwks import KeySet

LEEWAY_SECONDS: Final = 30


class InvalidIdToken(AirlockError):
    """The ID token is refused; the message says which check failed (a phrase, shown to the reviewer)."""


class IdTokenVerifier:
    """Validates ID tokens from one issuer for one client (see the module docstring)."""

    def __init__(self, issuer: str, client_id: str, *, keys: KeySet | None = None) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self.keys = keys or KeySet(issuer)

    async def claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, once every check has passed.

        Raises:
            InvalidIdToken: a check failed.
            IssuerUnavailable: the issuer's keys cannot be fetched and none are cached.
        """
        try:
            unverified = jwt.decode_complete(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidIdToken("it is not a JWT") from None
        header, payload = unverified["header"], unverified["payload"]
        if str(header.get("typ", "")).lower() in ACCESS_TOKEN_TYPES:
            raise InvalidIdToken("it is an access token, not an ID token")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidIdToken(f"its signing algorithm is not one of {', '.join(ALGORITHMS)}")
        if payload.get("iss") != self._issuer:
            raise InvalidIdToken(f"it was not issued by {self._issuer}")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if key is None or algorithm not in key.algorithms:
            raise InvalidIdToken("it is signed with a key its issuer does not publish")
        claims = self._decode(id_token, key.key, algorithm)
        self._check_party(claims)
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise InvalidIdToken("its nonce is not the one this sign-in sent")
        return claims

    def _decode(self, id_token: str, key: Any, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[algorithm],
                audience=self._client_id,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidIdToken("it has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidIdToken("it was issued for another client") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidIdToken(f"it has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidIdToken("its signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidIdToken("it is malformed") from None
        return claims

    def _check_party(self, claims: dict[str, Any]) -> None:
        """OIDC Core §3.1.3.7 items 4-5: with several audiences, `azp` must name this client."""
        audience = claims.get("aud")
        azp = claims.get("azp")
        if ((isinstance(audience, list) and len(audience) > 1) or azp is not None) and azp != self._client_id:
            raise InvalidIdToken("it was issued to another client (azp)")
