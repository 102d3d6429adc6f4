"""The verification snippet in docs/webhook.md accepts what Airlock signs and refuses the rest.

Provenance: Airlock-defined (docs/webhook.md, "Verifying a signature"): the documented snippet is
run as it is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.webhook.signing import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhook.md"
SECRET = "s" * 32


def documented_verify() -> Callable[..., bool]:
    section = DOC.read_text(encoding="utf-8").split("## 3.", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert snippet is not None, "docs/webhook.md has a Python snippet under '## 3.'"
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_the_documented_snippet_verifies_airlocks_signature_and_refuses_tampering_and_staleness() -> None:
    verify = documented_verify()
    body = b'{"id":"evt_1","type":"approval.parked"}'
    now = int(time.time())
    assert verify(SECRET, sign(SECRET, now, body), body)
    assert not verify(SECRET, sign(SECRET, now, body), body.replace(b"parked", b"approved"))
    assert not verify("t" * 32, sign(SECRET, now, body), body)
    assert not verify(SECRET, sign(SECRET, now - 400, body), body)
