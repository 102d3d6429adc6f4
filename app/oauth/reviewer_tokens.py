"""Reviewers' OAuth access tokens for the approvals API: from the inbox's identity provider, for Airlock.

A reviewer's own tool (a script, a chat-ops bot acting for them) may call `/api/approvals` with an
access token from the identity provider the inbox signs reviewers in with (`[inbox.oidc]`),
instead of an Airlock reviewer token. The token must be a JWT access token (RFC 9068: `typ`
`at+jwt`) whose `iss` is that issuer and whose `aud` includes Airlock's `public_url` (RFC 8707:
a token minted for another resource is refused), unexpired, signed with a key the issuer
publishes: the checks `app/oauth/access_token.py` makes for agents' tokens too. Its claims are then
read exactly as at inbox sign-in (`app/inbox/admission.py`: the `reviewer_claim` names the
reviewer, one of `allowed_groups` must be among its groups), by the caller.

Not cached: reviewers' API calls are rare, and a decision must see a revocation at once (the
reviewer must also exist and be enabled, which the caller checks on every request).
"""

from __future__ import annotations

from typing import Any, Final

from app.config import InboxOidcSettings
from app.oauth import access_token
from app.oauth.jwks import KeySet

LEEWAY_SECONDS: Final = 30


class ReviewerTokens:
    """Validates access tokens the inbox's identity provider issued for Airlock (see the module docstring)."""

    def __init__(self, settings: InboxOidcSettings, audience: str, *, keys: KeySet | None = None) -> None:
        self._issuer = settings.issuer
        self._audience = audience
        self.keys = keys or KeySet(settings.issuer)

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims, once every check passed.

        Raises:
            InvalidToken: a check failed.
            IssuerUnavailable: the issuer's keys cannot be fetched and none are cached.
        """
        return await access_token.claims(
            token, self.keys, issuer=self._issuer, leeway=LEEWAY_SECONDS, audience=self._audience
        )
