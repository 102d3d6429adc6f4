"""`/mcp/{upstream}`: the checks every request passes, then routing to the protocol era that serves it.

In order: a known upstream, the `Origin` header (403 for a foreign origin, as the spec requires
of Streamable HTTP servers), the agent's bearer token (401 with `WWW-Authenticate`), then for a
POST the media types (406/415) and the body size (413). Only then is the request routed, in this
one place, on `MCP-Protocol-Version`: the handshake-era versions (and no header, which the spec
says to read as 2025-03-26) go to `handshake.py`; anything else goes to `modern.py`, which
validates the version itself and names the ones it serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from app.auth import STATIC_TOKEN_PREFIX, WWW_AUTHENTICATE, Credentials, TokenLookupsBusy, bearer_token
from app.gateway import handshake, modern
from app.gateway.aggregate import Aggregate
from app.gateway.exchange import Exchange, Gateway
from app.gateway.respond import send_error
from app.jsonrpc import INVALID_REQUEST
from app.logs import bind
from app.oauth.resource_server import Refusal, ResourceServer
from app.protocol import HANDSHAKE_VERSIONS, MCP_PROTOCOL_VERSION
from app.types import Receive, Scope, Send
from app.upstream import Upstream


class McpEndpoint:
    """The endpoint, given the gateway's parts, who may call (`credentials`, and `oauth` when
    `[oauth]` is configured) and the upstreams by name."""

    def __init__(
        self,
        gateway: Gateway,
        credentials: Credentials,
        upstreams: Mapping[str, Upstream],
        *,
        oauth: ResourceServer | None = None,
    ) -> None:
        settings = gateway.settings
        self._gateway = gateway
        self._credentials = credentials
        self._oauth = oauth
        self._upstreams = upstreams
        self._aggregates = {e.name: Aggregate(e, upstreams) for e in settings.endpoints}
        self._max_body_bytes = settings.max_body_bytes
        self._allowed_origins = {_origin(settings.public_url), *map(_origin, settings.allowed_origins)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = dict(raw_headers)
        upstream = self._upstreams.get(scope["path_params"]["upstream"])
        if not self._origin_allowed(headers):
            await send_error(send, 403, INVALID_REQUEST, "Forbidden: requests from this Origin are not allowed")
            return
        agent = await self._authenticate(headers, send, scope["path_params"]["upstream"])
        if agent is None:
            return
        bind(agent=agent)
        aggregate = self._aggregates.get(scope["path_params"]["upstream"]) if upstream is None else None
        front = aggregate.front if aggregate is not None else upstream
        if front is None:
            await send_error(
                send, 404, INVALID_REQUEST, f"Not Found: no upstream named {scope['path_params']['upstream']!r}"
            )
            return
        exchange = Exchange(scope, receive, send, self._gateway, agent, front, headers, raw_headers)
        if scope["method"] == "POST" and not await _read_post(exchange, self._max_body_bytes):
            return
        if aggregate is not None:
            await aggregate.serve(exchange)  # one endpoint in front of several upstreams
            return
        version = headers.get(MCP_PROTOCOL_VERSION)
        if version is None or version in HANDSHAKE_VERSIONS:
            await handshake.serve(exchange)
        else:
            await modern.serve(exchange)

    def _origin_allowed(self, headers: dict[str, str]) -> bool:
        """No Origin (not a browser), Airlock's own public origin, or one of `allowed_origins`.

        Deliberately not "Origin equals Host": a DNS-rebinding page (attacker.example resolving
        to Airlock's address) sends exactly that, and stopping it is why the spec requires this
        check.
        """
        origin = headers.get("origin")
        return origin is None or origin.rstrip("/") in self._allowed_origins

    async def _authenticate(self, headers: dict[str, str], send: Send, upstream: str) -> str | None:
        token = bearer_token(headers.get("authorization"))
        oauth = self._oauth
        if oauth is not None and (token is None or not token.startswith(STATIC_TOKEN_PREFIX)):
            outcome = await oauth.authenticate(token, upstream)  # an OAuth access token (app/oauth/resource_server.py)
            if isinstance(outcome, Refusal):
                await send_error(send, outcome.status, INVALID_REQUEST, outcome.message, headers=outcome.headers)
                return None
            return outcome
        www_authenticate = WWW_AUTHENTICATE if oauth is None else oauth.challenge(upstream)
        challenge = [(b"www-authenticate", www_authenticate.encode())]
        if token is None:
            await send_error(
                send,
                401,
                INVALID_REQUEST,
                "Unauthorized: send an Airlock agent token as 'Authorization: Bearer <token>'",
                headers=challenge,
            )
            return None
        try:
            agent = await self._credentials.agent_for(token)
        except TokenLookupsBusy as exc:
            await send_error(
                send, 503, INVALID_REQUEST, f"Service Unavailable: {exc}", headers=[(b"retry-after", b"1")]
            )
            return None
        if agent is None:
            refused = (
                WWW_AUTHENTICATE + ', error="invalid_token"'
                if oauth is None
                else oauth.challenge(upstream, error="invalid_token")
            )
            bad = [(b"www-authenticate", refused.encode())]
            await send_error(send, 401, INVALID_REQUEST, "Unauthorized: the token is unknown or revoked", headers=bad)
        return agent


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


async def _read_post(exchange: Exchange, limit: int) -> bool:
    """Check the POST's media types and read its body; False when an error was already sent."""
    send, headers = exchange.send, exchange.headers
    accept = headers.get("accept", "")
    if not _accepts(accept, "application/json") or not _accepts(accept, "text/event-stream"):
        await send_error(
            send, 406, INVALID_REQUEST, "Not Acceptable: Accept must list both application/json and text/event-stream"
        )
        return False
    if not _is_utf8_json(headers.get("content-type", "")):
        await send_error(send, 415, INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json")
        return False
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await send_error(send, 413, INVALID_REQUEST, f"Payload Too Large: the limit is {limit} bytes")
        return False
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await exchange.receive()
        if message["type"] == "http.disconnect":
            return False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await send_error(send, 413, INVALID_REQUEST, f"Payload Too Large: the limit is {limit} bytes")
            return False
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    exchange.body = b"".join(chunks)
    return True


def _is_utf8_json(content_type: str) -> bool:
    # Clients send the same few header values on every call: parse each once (issue 12). Only
    # short values are cached, so an agent's odd headers cannot fill memory.
    return _utf8_json_cached(content_type) if len(content_type) <= _CACHED_CHARS else _utf8_json(content_type)


def _accepts(accept: str, media_type: str) -> bool:
    return _accepts_cached(accept, media_type) if len(accept) <= _CACHED_CHARS else _media_listed(accept, media_type)


_CACHED_CHARS = 200


def _utf8_json(content_type: str) -> bool:
    """`application/json`, with no charset or UTF-8's.

    The body is parsed as UTF-8 and forwarded with this header: an upstream that honoured another
    declared charset would read other text than the policy judged (RFC 8259 JSON is UTF-8 anyway).
    """
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _media_listed(accept: str, media_type: str) -> bool:
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return media_type in kinds or "*/*" in kinds or f"{media_type.split('/')[0]}/*" in kinds


_utf8_json_cached = lru_cache(maxsize=256)(_utf8_json)
_accepts_cached = lru_cache(maxsize=256)(_media_listed)
