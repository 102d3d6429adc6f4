"""The webhook's signature: `Airlock-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.

Stripe's scheme, so receivers can reuse what they know: the timestamp is signed with the body, a
receiver refuses a signature older than its tolerance (a replay of a captured request), and more
than one `v1=` may appear (Airlock sends one; a verifier accepts any that matches, which is how a
secret can be rotated). Airlock signs the events it sends and verifies the decisions it receives
the same way (`docs/webhook.md`).

Pure module: bytes and strings in, a header or a verdict out; no I/O, no clock (callers pass now).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

SIGNATURE_HEADER: Final = "Airlock-Signature"
EVENT_ID_HEADER: Final = "Airlock-Event-Id"
ATTEMPT_HEADER: Final = "Airlock-Delivery-Attempt"
TOLERANCE_SECONDS: Final = 300.0
"""How old (or how far in the future) a signed timestamp may be."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"{timestamp}." + body` with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Airlock-Signature` header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


@dataclass(frozen=True, slots=True)
class Verified:
    timestamp: int
    signature: str
    """The `v1` that matched: what a replay would carry again."""


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str
    """One sentence for the sender (never the expected signature)."""


def verify(
    secrets: tuple[str, ...], header: str | None, body: bytes, *, now: float, tolerance: float = TOLERANCE_SECONDS
) -> Verified | Invalid:
    """Check an `Airlock-Signature` header against `body` with any of `secrets`."""
    if not header:
        return Invalid(f"missing {SIGNATURE_HEADER} header")
    timestamp, candidates = _parse(header)
    if timestamp is None or not candidates:
        return Invalid(f"malformed {SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<hex>)")
    if abs(now - timestamp) > tolerance:
        return Invalid(f"stale signature: its timestamp is more than {tolerance:.0f} seconds from now")
    for secret in secrets:
        expected = signature(secret, timestamp, body)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return Verified(timestamp, candidate)
    return Invalid("signature does not match the body")


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and len(value) == 64:
            candidates.append(value.lower())
    return timestamp, candidates
