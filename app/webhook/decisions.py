"""`POST /webhook/decisions`: a signed decision from a team's own tool, through the one decide path.

    read at most MAX_BODY_BYTES ──✗──▶ 413
        │
    Airlock-Signature (t=…,v1=…) over the raw body, within 5 minutes ──✗──▶ 401 + why
        │
    the signature not seen before (any replica) ──✗──▶ 401 replayed
        │
    {"approval_id", "decision": "approve"|"reject", "reviewer", "reason"} ──✗──▶ 400
        │
    decisions.decide(via="webhook") ──✗──▶ 403 / 404 / 400 / 409 with the decision path's sentence
        │
    200 {"approval_id", "status", "decided_by", "quorum"}

The signature is the sender's proof of holding the secret (`decision_secret`, else `secret`);
the `reviewer` it names must be an existing, enabled Airlock reviewer, and every rule of a decision
(no self-approval, a rule's reviewer list, a rejection needs a reason, the first decision wins) is
`app/approvals/decisions.py`'s, the same as for every channel. The audit log shows "via webhook".

Decisions go through the approvals service (`Approvals.decide`, `app/approvals/service.py`), as
every reviewer channel's do.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.approvals.service import ApprovalDesk, DecisionError, Verdict
from app.approvals.wording import quorum_progress
from app.limits import read_body
from app.store import webhook_outbox as store
from app.store.db import Database
from app.webhook.signing import SIGNATURE_HEADER, TOLERANCE_SECONDS, Invalid, verify

logger = logging.getLogger("airlock.webhook")

PATH: Final = "/webhook/decisions"
MAX_BODY_BYTES: Final = 16 * 1024
"""A decision is a few hundred bytes; a reason is capped at 2000 characters by the decide path."""


@dataclass(frozen=True, slots=True)
class Decision:
    approval_id: str
    verdict: Verdict
    reviewer: str
    reason: str | None


class WebhookDecisions:
    def __init__(self, approvals: ApprovalDesk, db: Database, secret: str) -> None:
        self._approvals = approvals
        self._db = db
        self._secrets = (secret,)

    async def handle(self, request: Request) -> JSONResponse:
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        checked = verify(self._secrets, request.headers.get(SIGNATURE_HEADER), body, now=time.time())
        if isinstance(checked, Invalid):
            logger.warning("refused a webhook decision: %s", checked.reason)
            return _error(401, checked.reason)
        async with self._db.write() as conn:
            first = await store.first_use(
                conn, checked.signature, expires_at=checked.timestamp + TOLERANCE_SECONDS, now=time.time()
            )
        if not first:
            logger.warning("refused a replayed webhook decision (signature t=%s)", checked.timestamp)
            return _error(401, "replayed signature: this request was already received")
        decision = _parse(body)
        if isinstance(decision, str):
            return _error(400, decision)
        return await self._decide(decision)

    async def _decide(self, decision: Decision) -> JSONResponse:
        try:
            approval = await self._approvals.decide(
                decision.approval_id,
                reviewer=decision.reviewer,
                verdict=decision.verdict,
                via="webhook",
                reason=decision.reason,
            )
        except DecisionError as exc:
            return _error(exc.status_code, str(exc))
        logger.info("approval %s %s by %s via webhook", approval.id, approval.status, approval.decided_by)
        return JSONResponse(
            {
                "approval_id": approval.id,
                "status": approval.status.value,
                "decided_by": approval.decided_by,
                "quorum": quorum_progress(approval) or None,
            }
        )


def _parse(body: bytes) -> Decision | str:
    """The decision in `body`, or what is wrong with it (one sentence)."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    if not isinstance(document, dict):
        return "the body must be a JSON object"
    approval_id, verdict = document.get("approval_id"), document.get("decision")
    reviewer, reason = document.get("reviewer"), document.get("reason")
    if not isinstance(approval_id, str) or not approval_id:
        return "approval_id must be the approval's id"
    if verdict not in ("approve", "reject"):
        return 'decision must be "approve" or "reject"'
    if not isinstance(reviewer, str) or not reviewer:
        return "reviewer must name an Airlock reviewer"
    if reason is not None and not isinstance(reason, str):
        return "reason must be a string"
    return Decision(approval_id, verdict, reviewer, reason)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)
