"""Cross-site request forgery checks for every state-changing inbox request (sign-in, sign-out, decisions).

Three checks, any of which refuses the request:

1. The session's CSRF token must come back, as the form field `csrf_token` (plain forms) or the
   `X-CSRF-Token` header (the script's `fetch`), compared in constant time. The token lives in
   the signed, HttpOnly session cookie, which another site can neither read nor forge.
2. `Origin`, when the browser sends one, must be this site: the origin of `public_url` or the
   origin the request was addressed to (its `Host`). Browsers send `Origin` on every POST, so a
   forged cross-site form fails here even before the token is looked at.
3. `Sec-Fetch-Site: cross-site` is refused outright (a browser's own statement of where the
   request came from).

Pure module: takes the values out of a request and returns the reason for refusing, or None.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"

MISSING_TOKEN: Final = (
    "This request carried no CSRF token, so it was refused. Reload the inbox page and try "
    "again (your browser must accept cookies from Airlock)."
)
WRONG_TOKEN: Final = (
    "This form's CSRF token does not match your session (it may come from an older page or "
    "another site), so it was refused. Reload the inbox page and try again."
)
FOREIGN_ORIGIN: Final = "This request came from another site ({origin}), so it was refused."


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, with default ports dropped ("" if it has no valid port)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ""
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    suffix = "" if port in (None, default) else f":{port}"
    return f"{scheme}://{host}{suffix}"


def refusal(
    *,
    expected: str | None,
    supplied: str | None,
    origin: str | None,
    fetch_site: str | None,
    own_origins: Collection[str],
) -> str | None:
    """Why a state-changing request must be refused, or None when it may go ahead.

    Args:
        expected: the CSRF token of the request's session (None: the request has no session).
        supplied: the token the request sent (form field or header).
        origin: the request's `Origin` header, if any.
        fetch_site: the request's `Sec-Fetch-Site` header, if any.
        own_origins: the origins this inbox answers on (see `origin_of`).
    """
    if fetch_site == "cross-site":
        return FOREIGN_ORIGIN.format(origin=origin or "a cross-site page")
    if origin is not None and (origin == "null" or origin_of(origin) not in own_origins):
        return FOREIGN_ORIGIN.format(origin=origin)
    if not expected or not supplied:
        return MISSING_TOKEN
    if not hmac.compare_digest(expected.encode(), supplied.encode()):
        return WRONG_TOKEN
    return None
