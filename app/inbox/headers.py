"""Security headers on every inbox response: a strict Content-Security-Policy, no framing, no sniffing.

The CSP allows only this origin's own files (`default-src 'self'`) and no inline script or style,
so even markup that slipped past the templates' escaping could not run. The inbox therefore has no
inline event handlers, no `style=` attributes and no CDN: its one script and one stylesheet ship
in the package (`app/inbox/static/`). Pages are never cached (`no-store`): they show who is signed
in and carry the CSRF token; the static files keep their normal caching.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders

from app.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_STATIC_SEGMENT: Final = "/-/static/"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = _STATIC_SEGMENT in scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
