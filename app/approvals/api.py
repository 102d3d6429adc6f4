"""`/api/approvals`: the reviewers' JSON API. Thin: authenticate the reviewer, then call the approvals service.

    GET  /api/approvals?status=pending,approved|all&agent=&tool=&upstream=&limit=   list, newest first
    GET  /api/approvals/{id}                                            one approval and its timeline
    POST /api/approvals/{id}/approve   {"reason": "..."} optional      first decision wins; 409 after
                                       {"grant_minutes": N, "grant_scope": "identical"|"tool"}
                                       optional: a scoped grant with it (`app/approvals/grants.py`)
    GET  /api/grants                                                    live grants, newest first
    POST /api/grants/{id}/revoke                                        404 unknown, 409 already revoked
    POST /api/approvals/{id}/reject    {"reason": "..."} required      400 without one

Reviewers authenticate with the token `airlock reviewers add NAME` printed, as
`Authorization: Bearer <token>`, or, with `[inbox.oidc]`, with an OAuth access token from that
identity provider issued for Airlock's `public_url` (`app/oauth/reviewer_tokens.py`), read as at
inbox sign-in: its `reviewer_claim` names an existing, enabled reviewer, one of `allowed_groups`
must be among its groups, and those groups count for rules that name `reviewer_groups`. Agent
tokens are refused (403): agents never decide. The rules
about the decision itself (an enabled reviewer, no self-approval, the rule's reviewers, a reason
to reject) are `decide`'s, the same for every channel; their refusals come back as
`{"error": "<one sentence>"}` with the exception's status code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.approvals.grants import scope_of
from app.approvals.model import Approval, Status
from app.approvals.service import ApprovalDesk, DecisionError, Grant, GrantError, GrantRequest, Verdict
from app.approvals.wording import grant_summary, iso, outcome_of, phrase, quorum_progress, review_url
from app.auth import WWW_AUTHENTICATE, Credentials, bearer_token
from app.config import InboxOidcSettings
from app.inbox.admission import Refused, admit
from app.oauth.access_token import InvalidToken
from app.oauth.jwks import IssuerUnavailable
from app.oauth.reviewer_tokens import ReviewerTokens
from app.store.audit import AuditRow


def approval_json(approval: Approval, public_url: str) -> dict[str, Any]:
    """An approval as the API and the CLI show it.

    `outcome_kind` and `outcome_summary` say what became of the call (`app/approvals/wording.py`):
    `"tool_error"` and `"ran; the tool reported an error: …"` for a call whose tool answered
    `isError: true`, which `status` alone (`completed`) does not tell. `outcome` is the executor's
    raw outcome line, as the audit log records it. `quorum` says how many distinct reviewers must
    approve, who has, and the progress sentence ("1 of 2 approvals, by alice"; null when one
    approval decides). `grants_offered` is what a reviewer may grant with the approval
    (`{"max_minutes": N, "scope": [...]}`, null: none). `arguments` and `result` are the stored text
    itself in the (never expected) case that it is not a JSON object.
    """
    outcome = outcome_of(approval)
    return {
        "id": approval.id,
        "status": approval.status.value,
        "upstream": approval.upstream,
        "tool": approval.tool,
        "agent": approval.agent,
        "arguments": approval.arguments if approval.arguments is not None else approval.arguments_text,
        "args_sha256": approval.args_hash,
        "policy": {"rule": approval.policy_rule, "reason": approval.policy_reason, "version": approval.policy_version},
        "reviewers": approval.reviewers,
        "reviewer_groups": approval.reviewer_groups,
        "quorum": {
            "needed": approval.quorum,
            "approvals": list(approval.votes),
            "progress": quorum_progress(approval) or None,
        },
        "era": approval.era.value,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        "decided_by": approval.decided_by,
        "decided_via": approval.decided_via,
        "decided_at": iso(approval.decided_at),
        "decision_reason": approval.decision_reason,
        "executed_at": iso(approval.executed_at),
        "finished_at": iso(approval.finished_at),
        "outcome_kind": outcome.kind.value,
        "outcome_summary": phrase(outcome),
        "outcome": approval.outcome,
        "result": _result_json(approval),
        "delivered_at": iso(approval.delivered_at),
        "review_url": review_url(public_url, approval.id),
        "continues": approval.continues,
        "escalate_to": approval.escalate_to,
        "escalate_at": iso(approval.escalate_at),
        "escalated_at": iso(approval.escalated_at),
        "grants_offered": None
        if approval.grant_policy is None or approval.needs_quorum
        else {"max_minutes": approval.grant_policy.max_minutes, "scope": list(approval.grant_policy.scopes)},
    }


def _result_json(approval: Approval) -> Any:
    stored = approval.result
    if stored is None:
        return None
    return stored.message if stored.message is not None else stored.text


def grant_json(grant: Grant) -> dict[str, Any]:
    """A grant as the API and the CLI show it; `summary` is the one-line sentence (`wording.py`)."""
    return {
        "id": grant.id,
        "scope": grant.scope,
        "agent": grant.agent,
        "upstream": grant.upstream,
        "tool": grant.tool,
        "args_sha256": grant.args_hash,
        "created_by": grant.created_by,
        "approval_id": grant.approval_id,
        "created_at": iso(grant.created_at),
        "expires_at": iso(grant.expires_at),
        "revoked_at": iso(grant.revoked_at),
        "revoked_by": grant.revoked_by,
        "summary": grant_summary(
            grant_id=grant.id,
            scope=grant.scope,
            agent=grant.agent,
            upstream=grant.upstream,
            tool=grant.tool,
            expires_at=grant.expires_at,
            created_by=grant.created_by,
        ),
    }


def timeline_json(entry: AuditRow) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "event": entry.event,
        "actor": entry.actor,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }


def routes(
    *, credentials: Credentials, approvals: ApprovalDesk, public_url: str, oidc: InboxOidcSettings | None = None
) -> list[BaseRoute]:
    api = ApprovalsApi(credentials=credentials, approvals=approvals, public_url=public_url, oidc=oidc)
    return [
        Route("/api/approvals", api.list, methods=["GET"]),
        Route("/api/approvals/{approval_id}", api.show, methods=["GET"]),
        Route("/api/approvals/{approval_id}/approve", api.approve, methods=["POST"]),
        Route("/api/approvals/{approval_id}/reject", api.reject, methods=["POST"]),
        Route("/api/grants", api.list_grants, methods=["GET"]),
        Route("/api/grants/{grant_id}/revoke", api.revoke_grant, methods=["POST"]),
    ]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class ApiReviewer:
    name: str
    groups: frozenset[str] = frozenset()
    """The groups an identity provider's access token asserted (none for a reviewer token)."""


class ApprovalsApi:
    def __init__(
        self,
        *,
        credentials: Credentials,
        approvals: ApprovalDesk,
        public_url: str,
        oidc: InboxOidcSettings | None = None,
    ) -> None:
        self._credentials = credentials
        self._approvals = approvals
        self._public_url = public_url
        self._oidc = oidc
        self._tokens = None if oidc is None else ReviewerTokens(oidc, public_url)

    async def _reviewer(self, request: Request) -> ApiReviewer | JSONResponse:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return _error(401, "send a reviewer token as 'Authorization: Bearer <token>'")
        reviewer = await self._credentials.reviewer_for(token)
        if reviewer is not None:
            return ApiReviewer(reviewer)
        if self._tokens is not None and token.count(".") == 2:
            return await self._oauth_reviewer(token)
        if await self._credentials.agent_for(token) is not None:
            return _error(403, "agent tokens cannot review or decide approvals")
        return _error(401, "unknown or disabled reviewer token")

    async def _oauth_reviewer(self, token: str) -> ApiReviewer | JSONResponse:
        assert self._tokens is not None and self._oidc is not None
        try:
            claims = await self._tokens.claims(token)
        except InvalidToken as exc:
            return _error(401, f"access token refused: {exc}")
        except IssuerUnavailable as exc:
            return _error(503, f"cannot check the access token now: {exc}")
        admitted = admit(claims, self._oidc)
        if isinstance(admitted, Refused):
            return _error(403, admitted.message)
        if not await self._credentials.reviewer_enabled(admitted.name):
            return _error(
                403,
                f"{admitted.name} is not an enabled reviewer here: sign in to the inbox once, "
                "or ask an administrator (`airlock reviewers enable`)",
            )
        return ApiReviewer(admitted.name, admitted.groups)

    async def list(self, request: Request) -> JSONResponse:
        reviewer = await self._reviewer(request)
        if isinstance(reviewer, JSONResponse):
            return reviewer
        statuses = [s for s in request.query_params.get("status", "").split(",") if s and s != "all"]
        known = [status.value for status in Status]
        unknown = [s for s in statuses if s not in known]
        if unknown:
            return _error(400, f"unknown status {unknown[0]!r}; use one of {', '.join(known)}")
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
        except ValueError:
            return _error(400, "limit must be a number")
        approvals = await self._approvals.search(
            statuses=statuses,
            agent=request.query_params.get("agent"),
            tool=request.query_params.get("tool"),
            upstream=request.query_params.get("upstream"),
            limit=limit,
        )
        public_url = self._public_url
        return JSONResponse({"approvals": [approval_json(a, public_url) for a in approvals]})

    async def show(self, request: Request) -> JSONResponse:
        reviewer = await self._reviewer(request)
        if isinstance(reviewer, JSONResponse):
            return reviewer
        approval_id = request.path_params["approval_id"]
        approval = await self._approvals.get(approval_id)
        if approval is None:
            return _error(404, f"no approval {approval_id}")
        body = approval_json(approval, self._public_url)
        body["timeline"] = [timeline_json(entry) for entry in await self._approvals.timeline(approval_id)]
        return JSONResponse(body)

    async def approve(self, request: Request) -> JSONResponse:
        return await self._decide(request, "approve")

    async def reject(self, request: Request) -> JSONResponse:
        return await self._decide(request, "reject")

    async def _decide(self, request: Request, verdict: Verdict) -> JSONResponse:
        reviewer = await self._reviewer(request)
        if isinstance(reviewer, JSONResponse):
            return reviewer
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        reason, grant = _reason(body), _grant(body)
        if isinstance(reason, JSONResponse):
            return reason
        if isinstance(grant, JSONResponse):
            return grant
        try:
            approval = await self._approvals.decide(
                request.path_params["approval_id"],
                reviewer=reviewer.name,
                verdict=verdict,
                via="api",
                reason=reason,
                asserted_groups=reviewer.groups,
                grant=grant,
            )
        except DecisionError as exc:
            extra: dict[str, Any] = {}
            current = getattr(exc, "approval", None)
            if current is not None:
                extra["approval"] = approval_json(current, self._public_url)
            return _error(exc.status_code, str(exc), **extra)
        answer = approval_json(approval, self._public_url)
        if grant is not None:
            given = await self._approvals.grants.of_approval(approval.id)
            answer["grant"] = None if given is None else grant_json(given)
        return JSONResponse(answer)

    async def list_grants(self, request: Request) -> JSONResponse:
        reviewer = await self._reviewer(request)
        if isinstance(reviewer, JSONResponse):
            return reviewer
        return JSONResponse({"grants": [grant_json(grant) for grant in await self._approvals.grants.live()]})

    async def revoke_grant(self, request: Request) -> JSONResponse:
        reviewer = await self._reviewer(request)
        if isinstance(reviewer, JSONResponse):
            return reviewer
        try:
            grant = await self._approvals.grants.revoke(request.path_params["grant_id"], by=reviewer.name)
        except GrantError as exc:
            return _error(exc.status_code, str(exc))
        return JSONResponse(grant_json(grant))


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except ValueError:
        return _error(400, 'the body must be JSON, e.g. {"reason": "..."}')
    if not isinstance(payload, dict):
        return _error(400, 'the body must be a JSON object, e.g. {"reason": "..."}')
    return payload


def _reason(payload: dict[str, Any]) -> str | JSONResponse | None:
    if not isinstance(payload.get("reason", ""), str | None):
        return _error(400, "reason must be a string")
    reason = payload.get("reason")
    return reason if isinstance(reason, str) else None


def _grant(payload: dict[str, Any]) -> GrantRequest | JSONResponse | None:
    minutes, scope = payload.get("grant_minutes"), payload.get("grant_scope", "identical")
    if minutes is None:
        return None if "grant_scope" not in payload else _error(400, "grant_scope needs grant_minutes")
    if type(minutes) is not int:
        return _error(400, "grant_minutes must be a whole number of minutes")
    known = scope_of(scope) if isinstance(scope, str) else None
    if known is None:
        return _error(400, 'grant_scope must be "identical" or "tool"')
    return GrantRequest(minutes, known)
