"""JWT access tokens (RFC 9068) from one issuer: the checks every consumer of them makes.

`claims(token, keys, issuer=..., leeway=...)` checks, in order: header `typ` is `at+jwt` (so an
ID token never passes), `alg` on `ALGORITHMS`, `iss` is the issuer (before any key is fetched, so
a stranger's token costs no network), the `kid` names a key the issuer publishes for that
algorithm (`app/oauth/jwks.py`), the signature, `exp`/`nbf` within `leeway`, and, when
`audience` is given, that `aud` includes it. Agents' tokens (`resource_server.py`, which checks
the audience against each endpoint itself) and reviewers' (`reviewer_tokens.py`) both use it.
Every refusal is one fixed sentence about "the token", safe to show its bearer.
"""

from __future__ import annotations

from typing import Any, Final

import jwt

from app.errors import AirlockError
from app.oauth.jwks import KeySet

ALGORITHMS: Final = ("RS256", "PS256", "ES256", "EdDSA")
ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})


class InvalidToken(AirlockError):
    """A sent token that is not a valid access token from the configured issuer (one fixed sentence)."""


async def claims(
    token: str, keys: KeySet, *, issuer: str, leeway: float, audience: str | None = None
) -> dict[str, Any]:
    """The token's claims, once every check passed (see the module docstring).

    Raises:
        InvalidToken: a check failed.
        IssuerUnavailable: the issuer's keys cannot be fetched and none are cached.
    """
    try:
        unverified = jwt.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidToken("the token is not a JWT access token") from None
    header, unverified_issuer = unverified["header"], unverified["payload"].get("iss")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("the token is not an access token (its typ is not at+jwt)")
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise InvalidToken(f"the token's signing algorithm is not one of {', '.join(ALGORITHMS)}")
    if unverified_issuer != issuer:
        raise InvalidToken(f"the token was not issued by {issuer}")
    kid = header.get("kid")
    key = await keys.key(kid if isinstance(kid, str) else None)
    if key is None or algorithm not in key.algorithms:
        raise InvalidToken("the token is signed with a key its issuer does not publish")
    try:
        decoded: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("the token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken(f"the token was not issued for {audience}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"the token has no {exc.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("the token's signature does not verify") from None
    except jwt.PyJWTError:
        raise InvalidToken("the token is malformed") from None
    return decoded
