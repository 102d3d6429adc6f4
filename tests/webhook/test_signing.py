"""The `Airlock-Signature` scheme: sign and verify, the way docs/webhook.md documents it.

Provenance: Airlock-defined (docs/webhook.md, "Verifying a signature"; Stripe's scheme).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.webhook.signing import Invalid, Verified, sign, verify

SECRET = "s" * 32
BODY = b'{"id":"evt_1"}'
NOW = 1_800_000_000


def test_the_header_is_t_and_the_hex_hmac_sha256_of_t_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"t={NOW},v1={expected}"


def test_a_signature_verifies_within_the_tolerance_and_names_what_matched() -> None:
    header = sign(SECRET, NOW, BODY)
    assert verify((SECRET,), header, BODY, now=NOW + 299) == Verified(NOW, header.split("v1=")[1])


def test_any_of_several_v1_values_and_any_of_several_secrets_may_match() -> None:
    header = f"t={NOW},v1={'0' * 64}," + sign(SECRET, NOW, BODY).split(",")[1]
    assert isinstance(verify(("other" * 8, SECRET), header, BODY, now=NOW), Verified)


@pytest.mark.parametrize(
    "header,body,now,reason",
    [
        (None, BODY, NOW, "missing"),
        ("", BODY, NOW, "missing"),
        ("v1=" + "0" * 64, BODY, NOW, "malformed"),
        (f"t={NOW}", BODY, NOW, "malformed"),
        (f"t=-5,v1={'0' * 64}", BODY, NOW, "malformed"),
        (f"t={NOW},v1=zz", BODY, NOW, "malformed"),
        (sign(SECRET, NOW, BODY), BODY + b" ", NOW, "does not match"),
        (sign("x" * 32, NOW, BODY), BODY, NOW, "does not match"),
        (sign(SECRET, NOW, BODY), BODY, NOW + 301, "stale"),
        (sign(SECRET, NOW, BODY), BODY, NOW - 301, "stale"),
    ],
    ids=["none", "empty", "no-t", "no-v1", "negative-t", "short-v1", "body", "secret", "old", "future"],
)
def test_a_missing_malformed_wrong_or_stale_signature_is_invalid_with_a_reason(
    header: str | None, body: bytes, now: int, reason: str
) -> None:
    result = verify((SECRET,), header, body, now=now)
    assert isinstance(result, Invalid) and reason in result.reason
