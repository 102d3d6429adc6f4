"""Single sign-on for the inbox: the OpenID Connect authorization code flow with PKCE (docs/identity.md).

    GET /inbox/-/sso/login?next=…   start: remember state, nonce, PKCE verifier and `next` in a
                                    signed flow cookie; send the browser to the provider
    GET /inbox/-/sso/callback       the provider sends the browser back with `code` and `state`

The callback refuses, with a page saying why and no session, unless all of these hold: the flow
cookie is there and at most `FLOW_SECONDS` old (it is used once: every answer removes it); `state`
equals the cookie's (constant time); the provider's `iss` parameter, when sent, is the issuer
(RFC 9207, mix-up defense); the provider exchanges `code` for tokens given the PKCE verifier and
the client secret (a code used before, or stolen without the verifier, is refused there); the ID
token passes every check in `app/oauth/id_token.py` (signature via the issuer's JWKS, `iss`,
`aud`, `exp`, and the nonce this flow sent); and the claims admit a reviewer
(`app/inbox/admission.py`: a reviewer name, and a group allowed to review).

Then the person is a reviewer in the reviewers table, as every channel and the one decide path
need (`app/approvals/decisions.py`): created on their first sign-in (with a random token nobody
holds, so until an admin runs `airlock reviewers rotate` they can only sign in through the
provider), and disabled when the provider says at a later sign-in that they are in no allowed
group, which ends their sessions everywhere. A disabled reviewer is not re-enabled by signing
in: an admin may have disabled them on purpose (`airlock reviewers enable NAME`). The session is
the inbox's own signed cookie (`app/inbox/session.py`), with the reviewer's groups added, so
CSRF, expiry and sign-out work as for a token sign-in.

The flow cookie is `SameSite=Lax` like the session: the provider's redirect back is a top-level
GET from another site, which `Lax` lets through and `Strict` would not. Its path is the
`/-/sso` part of the inbox, so nothing else receives it.

The provider's endpoints come from its OpenID discovery document, read on first use and kept;
a failed read is retried at the next sign-in. Tokens are exchanged with authlib's OAuth client.
What this module does not do: sign out at the provider (the provider's own session outlives the
inbox's, so signing in again may not ask for a password), or read the userinfo endpoint (the
claims must be in the ID token).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.auth import REVIEWER_TOKEN_PREFIX, NameCollision, check_spelling, new_token, token_hash
from app.config import InboxOidcSettings
from app.inbox.admission import Admitted, admit
from app.inbox.render import Templates
from app.inbox.session import SessionCookie, reviewer_session
from app.oauth.id_token import IdTokenVerifier, InvalidIdToken
from app.oauth.jwks import IssuerUnavailable
from app.reveal import reveal
from app.store import tokens as token_store
from app.store.db import Database

logger = logging.getLogger("airlock.inbox.sso")

START_PATH: Final = "/-/sso/login"
CALLBACK_PATH: Final = "/-/sso/callback"
FLOW_COOKIE: Final = "airlock_sso"
FLOW_SECONDS: Final = 600
"""How long a person may take on the provider's pages before the sign-in must start again."""
_SALT: Final = "airlock.inbox.sso.v1"
_TIMEOUT: Final = 10.0
_MAX_DOCUMENT_BYTES: Final = 1_048_576

STALE_FLOW: Final = (
    "This sign-in has expired or was started in another browser (or already finished), so it was "
    "refused. Start again from the sign-in page."
)
WRONG_STATE: Final = (
    "This answer from the identity provider does not belong to the sign-in you started (its state "
    "does not match), so it was refused. Start again from the sign-in page."
)
WRONG_ISSUER: Final = "This answer names another identity provider ({issuer}), so it was refused."
PROVIDER_SAID_NO: Final = "The identity provider did not sign you in: {error}."
CODE_REFUSED: Final = (
    "The identity provider refused this sign-in code ({error}): it may have been used already or have "
    "expired. Start again from the sign-in page."
)
BAD_ID_TOKEN: Final = "The identity provider's ID token was refused: {why}. You were not signed in."
PROVIDER_DOWN: Final = "The identity provider cannot be reached now ({why}). Try again in a moment."
RACED: Final = "Another first sign-in as {name} finished at the same moment. Start again from the sign-in page."
DISABLED: Final = (
    "Reviewer {name} is disabled in Airlock, so you were not signed in. An admin can run "
    "`airlock reviewers enable {name}`."
)


class ProviderUnavailable(Exception):
    """The provider's discovery document or token endpoint cannot be used now."""


class _NotSignedIn(Exception):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in in progress, as the flow cookie carries it."""

    state: str
    nonce: str
    verifier: str
    next: str


@dataclass(frozen=True, slots=True)
class ProviderEndpoints:
    authorization: str
    token: str


class SingleSignOn:
    """The two routes of the flow (see the module docstring)."""

    def __init__(
        self,
        settings: InboxOidcSettings,
        *,
        db: Database,
        cookie: SessionCookie,
        templates: Templates,
        secret_key: str,
        redirect_uri: str,
        safe_next: Callable[[str | None], str],
        verifier: IdTokenVerifier | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._cookie = cookie
        self._templates = templates
        self._redirect_uri = redirect_uri
        self._safe_next = safe_next
        self._flows = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self._flow_path = cookie.path + "/-/sso"
        self.verifier = verifier or IdTokenVerifier(settings.issuer, settings.client_id)
        self._endpoints: ProviderEndpoints | None = None
        self._discovery = asyncio.Lock()

    # ------------------------------------------------------------------ start

    async def start(self, request: Request) -> Response:
        try:
            endpoints = await self._provider()
        except ProviderUnavailable as exc:
            return self._refused(PROVIDER_DOWN.format(why=exc), 503)
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=generate_token(64),
            next=self._safe_next(request.query_params.get("next")),
        )
        url = prepare_grant_uri(
            endpoints.authorization,
            client_id=self._settings.client_id,
            response_type="code",
            redirect_uri=self._redirect_uri,
            scope=" ".join(self._settings.scopes),
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
        )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE,
            self._flows.dumps([flow.state, flow.nonce, flow.verifier, flow.next]),
            max_age=FLOW_SECONDS,
            path=self._flow_path,
            secure=self._cookie.secure,
            httponly=True,
            samesite="lax",
        )
        return response

    # ------------------------------------------------------------------ callback

    async def callback(self, request: Request) -> Response:
        try:
            flow = self._flow(request)
            admitted = await self._admitted(request, flow)
            credential = await self._reviewer(admitted.name)
        except _NotSignedIn as exc:
            response = self._refused(str(exc), exc.status_code)
        else:
            logger.info("reviewer %s signed in to the inbox through %s", admitted.name, self._settings.issuer)
            response = RedirectResponse(flow.next, status_code=303)
            self._cookie.write(response, reviewer_session(admitted.name, credential, admitted.groups))
        response.delete_cookie(FLOW_COOKIE, path=self._flow_path, secure=self._cookie.secure, httponly=True)
        return response

    def _flow(self, request: Request) -> Flow:
        value = request.cookies.get(FLOW_COOKIE)
        try:
            state, nonce, verifier, target = self._flows.loads(value or "", max_age=FLOW_SECONDS)
        except (BadSignature, ValueError, TypeError):
            raise _NotSignedIn(STALE_FLOW, 400) from None
        return Flow(str(state), str(nonce), str(verifier), self._safe_next(str(target)))

    async def _admitted(self, request: Request, flow: Flow) -> Admitted:
        params = request.query_params
        if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
            raise _NotSignedIn(WRONG_STATE, 400)
        issuer = params.get("iss")
        if issuer is not None and issuer != self._settings.issuer:
            raise _NotSignedIn(WRONG_ISSUER.format(issuer=reveal(issuer, line=True)), 400)
        if "error" in params:
            said = params.get("error_description") or params["error"]
            raise _NotSignedIn(PROVIDER_SAID_NO.format(error=reveal(said[:300], line=True)), 403)
        claims = await self._claims(params.get("code", ""), flow)
        decision = admit(claims, self._settings)
        if not isinstance(decision, Admitted):
            if decision.name is not None:
                await self._disable(decision.name)
            raise _NotSignedIn(decision.message, 403)
        return decision

    async def _claims(self, code: str, flow: Flow) -> dict[str, Any]:
        try:
            id_token = await self._exchange(code, flow.verifier)
            return await self.verifier.claims(id_token, flow.nonce)
        except InvalidIdToken as exc:
            raise _NotSignedIn(BAD_ID_TOKEN.format(why=exc), 401) from None
        except (ProviderUnavailable, IssuerUnavailable) as exc:
            raise _NotSignedIn(PROVIDER_DOWN.format(why=exc), 503) from None

    async def _exchange(self, code: str, verifier: str) -> str:
        """The ID token the provider gives for `code` (authorization_code grant, client_secret_basic)."""
        endpoints = await self._provider()
        client = AsyncOAuth2Client(
            self._settings.client_id,
            self._settings.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            redirect_uri=self._redirect_uri,
            timeout=_TIMEOUT,
            trust_env=False,
        )
        try:
            async with client:
                tokens = await client.fetch_token(endpoints.token, code=code, code_verifier=verifier)
        except OAuthError as exc:
            described = exc.description or exc.error
            raise _NotSignedIn(CODE_REFUSED.format(error=reveal(str(described)[:300], line=True)), 400) from None
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"its token endpoint failed: {type(exc).__name__}") from None
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            raise InvalidIdToken("the provider sent none")
        return id_token

    async def _provider(self) -> ProviderEndpoints:
        """The provider's endpoints, from its discovery document (read once; retried after a failure)."""
        async with self._discovery:
            if self._endpoints is None:
                self._endpoints = await _discover(self._settings.issuer)
            return self._endpoints

    # ------------------------------------------------------------------ the reviewer

    async def _reviewer(self, name: str) -> str:
        """The stored credential of reviewer `name`, created on their first sign-in."""
        try:
            async with self._db.write() as conn:
                known = await token_store.reviewer_credential(conn, name)
                if known is not None:
                    if known.disabled_at is not None:
                        raise _NotSignedIn(DISABLED.format(name=reveal(name, line=True)), 403)
                    return known.token_hash
                await check_spelling(conn, name)
                credential = token_hash(new_token(REVIEWER_TOKEN_PREFIX))
                await token_store.insert_reviewer(
                    conn, name=name, token_hash=credential, slack_user_id=None, now=time.time()
                )
        except NameCollision as exc:
            raise _NotSignedIn(f"You cannot sign in as {reveal(name, line=True)}: {exc}.", 403) from None
        except IntegrityError:
            raise _NotSignedIn(RACED.format(name=reveal(name, line=True)), 409) from None
        logger.info("reviewer %s created at their first single sign-on", name)
        return credential

    async def _disable(self, name: str) -> None:
        async with self._db.write() as conn:
            if await token_store.disable_reviewer(conn, name=name, now=time.time()):
                logger.warning("reviewer %s disabled: the identity provider lists them in no allowed group", name)

    def _refused(self, message: str, status_code: int) -> Response:
        return self._templates.page(
            "message.html",
            status_code=status_code,
            session=None,
            now=time.time(),
            title="Not signed in",
            message=message,
        )


async def _discover(issuer: str) -> ProviderEndpoints:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx2.AsyncClient(timeout=_TIMEOUT, trust_env=False) as http:
            response = await http.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise ValueError("the document is too large")
        document = response.json()
    except (httpx2.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"cannot read {url}: {type(exc).__name__}") from None
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise ProviderUnavailable(f"{url} does not describe the issuer {issuer}")
    authorization, token = document.get("authorization_endpoint"), document.get("token_endpoint")
    if not isinstance(authorization, str) or not isinstance(token, str):
        raise ProviderUnavailable(f"{url} names no authorization or token endpoint")
    return ProviderEndpoints(authorization, token)
