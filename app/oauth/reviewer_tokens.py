"""Reviewers' OAuth access tokens for the approvals API: from the inbox's identity provider, for Airlock.

A reviewer's own tool (a script, a chat-ops bot acting for them) may call `/api/approvals` with an
access token from the identity provider the inbox signs reviewers in with (`[inbox.oidc]`),
instead of an Airlock reviewer token. The token must be a JWT access token (RFC 9068: `typ`
`at+jwt`) whose `iss` is that issuer and whose `aud` includes Airlock's `public_url` (RFC 8707:
a token minted for another resource is refused), unexpired, signed with a key the issuer
publishes (`app/oauth/jwks.py`, the same key cache rules as agents' tokens). Its claims are then
read exactly as at inbox sign-in (`app/inbox/admission.py`: the `reviewer_claim` names the
reviewer, one of `allowed_groups` must be among its groups), by the caller.

Not cached: reviewers' API calls are rare, and a decision must see a revocation at once (the
reviewer must also exist and be enabled, which the caller checks on every request).
"""

from __future__ import annotations

from typing import Any, Final

import jwt

from app.config import InboxOidcSettings
from app.errors import AirlockError
from app.oauth.jwks import KeySet
from app.oauth.resource_server import ACCESS_TOKEN_TYPES, ALGORITHMS

LEEWAY_SECONDS: Final = 30


class InvalidReviewerToken(AirlockError):
    """The access token is refused; the message says why (safe to show its bearer)."""


class ReviewerTokens:
    """Validates access tokens the inbox's identity provider issued for Airlock (see the module docstring)."""

    def __init__(self, settings: InboxOidcSettings, audience: str, *, keys: KeySet | None = None) -> None:
        self._issuer = settings.issuer
        self._audience = audience
        self.keys = keys or KeySet(settings.issuer)

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims, once every check passed.

        Raises:
            InvalidReviewerToken: a check failed.
            IssuerUnavailable: the issuer's keys cannot be fetched and none are cached.
        """
        try:
            unverified = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidReviewerToken("the token is not a JWT access token") from None
        header, payload = unverified["header"], unverified["payload"]
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidReviewerToken("the token is not an access token (its typ is not at+jwt)")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidReviewerToken(f"the token's signing algorithm is not one of {', '.join(ALGORITHMS)}")
        if payload.get("iss") != self._issuer:
            raise InvalidReviewerToken(f"the token was not issued by {self._issuer}")
        kid = header.get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None)
        if key is None or algorithm not in key.algorithms:
            raise InvalidReviewerToken("the token is signed with a key its issuer does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidReviewerToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidReviewerToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidReviewerToken(f"the token was not issued for {self._audience}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidReviewerToken(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidReviewerToken("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidReviewerToken("the token is malformed") from None
        return claims
