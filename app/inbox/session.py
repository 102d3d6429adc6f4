"""The inbox session: one signed cookie that names the signed-in reviewer and carries the CSRF token.

The cookie is the whole session (there is no session table): `itsdangerous` signs
`{reviewer, credential, csrf}` (and, after single sign-on, the reviewer's groups) and a timestamp with `settings.secret_key`, so nobody can forge or
alter it, and it is refused once older than `SESSION_SECONDS`. Its attributes:

- `HttpOnly` (scripts cannot read it), `Path=` the inbox's own path (only the inbox receives it),
  `Secure` when `public_url` is https, and a bounded `Max-Age`.
- `SameSite=Lax`, not `Strict`, on purpose: review links arrive from Slack, e-mail and agents'
  messages, and under `Strict` following one would show the sign-in form to a reviewer who is
  signed in. `Lax` still keeps the cookie off cross-site POSTs, and every POST must carry the
  CSRF token as well (`app/inbox/csrf.py`).

`credential` is the SHA-256 of the reviewer token used to sign in: the value the reviewers table
stores. The routes look it up on every request, so disabling a reviewer or rotating their token
(`airlock reviewers disable|rotate`) ends all their sessions at once. It is not the token and
cannot be turned back into one.

A visitor who is not signed in gets an anonymous session (no reviewer, only a CSRF token), so the
sign-in form is CSRF-protected like every other POST; signing in issues a fresh CSRF token.

Sign-out removes the cookie from the browser and records the moment in the reviewers table:
every session that reviewer signed in before it, on any device, is over, so a copy of the cookie
taken earlier is refused too. The moment compared is the sign-in time inside the signed payload
(`t`, sub-second), not `itsdangerous`'s whole-second timestamp, so signing in again right after
signing out works.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from app.errors import ConfigError
from app.types import ReviewerName

COOKIE_NAME: Final = "airlock_inbox"
SESSION_SECONDS: Final = 12 * 3600
"""How long a sign-in lasts: one working day."""
_SALT: Final = "airlock.inbox.session.v1"


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    issued_at: float
    reviewer: ReviewerName | None = None
    credential: str | None = None
    """SHA-256 (hex) of the reviewer token that signed in; None in an anonymous session."""
    groups: frozenset[str] = frozenset()
    """The reviewer's groups, as the identity provider named them at single sign-on (empty otherwise)."""

    @property
    def signed_in(self) -> bool:
        return self.reviewer is not None and self.credential is not None

    @property
    def expires_at(self) -> float:
        return self.issued_at + SESSION_SECONDS


def anonymous_session() -> Session:
    return Session(csrf=new_csrf_token(), issued_at=time.time())


def reviewer_session(reviewer: ReviewerName, credential: str, groups: frozenset[str] = frozenset()) -> Session:
    """A new session for a reviewer who just signed in (with a CSRF token the anonymous one never saw)."""
    return Session(
        csrf=new_csrf_token(), issued_at=time.time(), reviewer=reviewer, credential=credential, groups=groups
    )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


class SessionCookie:
    """Reads and writes the signed session cookie."""

    def __init__(self, secret_key: str, *, path: str, secure: bool) -> None:
        if len(secret_key) < 32:
            # Fail closed and say so in one sentence: a short key would make the cookies forgeable.
            raise ConfigError(
                "the inbox needs a secret key of at least 32 characters to sign its cookies; "
                "set AIRLOCK_SECRET_KEY (or delete an empty data/secret_key file to have one generated)"
            )
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.path = path
        self.secure = secure

    def read(self, connection: HTTPConnection) -> Session | None:
        """The request's session, or None when it has none, or one that is forged, altered or too old."""
        value = connection.cookies.get(COOKIE_NAME)
        if not value:
            return None
        try:
            payload, signed_at = self._serializer.loads(value, max_age=SESSION_SECONDS, return_timestamp=True)
        except BadSignature:
            return None
        return _session(payload, signed_at.timestamp())

    def write(self, response: Response, session: Session) -> None:
        value = self._serializer.dumps(
            {
                "c": session.csrf,
                "r": session.reviewer,
                "k": session.credential,
                "t": session.issued_at,
                **({"g": sorted(session.groups)} if session.groups else {}),
            }
        )
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_SECONDS,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE_NAME, path=self.path, secure=self.secure, httponly=True, samesite="lax")


def _session(payload: object, signed_at: float) -> Session | None:
    if not isinstance(payload, dict):
        return None
    csrf, reviewer, credential, issued = payload.get("c"), payload.get("r"), payload.get("k"), payload.get("t")
    if not isinstance(csrf, str) or not csrf:
        return None
    if not (isinstance(reviewer, str) and isinstance(credential, str)):
        reviewer = credential = None
    # Signed like the rest; the whole-second signing time is the fallback for older cookies.
    issued_at = float(issued) if isinstance(issued, int | float) and not isinstance(issued, bool) else signed_at
    groups = payload.get("g")
    names = frozenset(g for g in groups if isinstance(g, str)) if isinstance(groups, list) and reviewer else frozenset()
    return Session(csrf=csrf, issued_at=issued_at, reviewer=reviewer, credential=credential, groups=names)
