"""Who someone is: the one comparison of agent and reviewer names.

Two names are the same identity when they are equal after Unicode NFKC normalization and case
folding, so `RT-Agent`, `rt-agent` and the fullwidth `ｒｔ-ａｇｅｎｔ` are one identity. Every check
that asks "is this the same person?" (self-approval, a rule's reviewer list, a new name colliding
with an existing one) goes through `same_identity` / `identity_key`.

Names are stored as they were given (what the operator typed is what logs and messages show); a
new agent or reviewer name whose key matches an existing name spelled differently is refused when
it is created (`app/auth.py`), so one identity has one spelling.

Pure module: no I/O.
"""

from __future__ import annotations

import unicodedata


def identity_key(name: str) -> str:
    """The form names are compared in: NFKC, then case-folded, then NFKC again (folding can denormalize)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def same_identity(a: str, b: str) -> bool:
    return identity_key(a) == identity_key(b)
