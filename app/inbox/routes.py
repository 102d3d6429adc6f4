"""The inbox's HTTP routes: pages, sign-in and sign-out, decisions, and the live feed.

    GET  /inbox                        pending approvals, newest first, updated live
    GET  /inbox/history                decided approvals and the audit log, filtered
    GET  /inbox/{approval_id}          one approval: arguments, timeline, result; Approve/Reject while pending
    POST /inbox/{approval_id}/approve  csrf_token; grant_minutes and grant_scope for a scoped grant
    GET  /inbox/grants                 live scoped grants, each with a revoke button
    POST /inbox/grants/{grant_id}/revoke  csrf_token
    POST /inbox/{approval_id}/reject   csrf_token, reason
    GET  /inbox/-/login                the sign-in form;  POST: name, token, csrf_token
    GET  /inbox/-/sso/login            single sign-on through the identity provider (`app/inbox/sso.py`)
    GET  /inbox/-/sso/callback         … and back, with `[inbox.oidc]` configured
    POST /inbox/-/logout               csrf_token
    GET  /inbox/-/events               the live feed (server-sent events, `app/inbox/live.py`)
    GET  /inbox/-/static/…             the stylesheet and the script

Fixed paths live under `/-/`, which no approval id (`apr_…`) can be, so `/inbox/{approval_id}`
(the review link every channel sends) never swallows them.

This module only authenticates the reviewer, checks CSRF and renders outcomes. Deciding goes
through the approvals service (`Approvals.decide(via="inbox")`, `app/approvals/service.py`), the
path every channel shares and the
one place its rules live (first decision wins, an enabled reviewer, no self-approval, a rejection
needs a reason). The session is re-checked against the reviewers table on every request
(`_signed_in`), so a disabled reviewer's open page stops deciding at once.

A decision POST answers the script's `fetch` (`Accept: application/json`) with JSON, and a plain
form with a redirect to the approval (or, on 403/404/409, that page with the message), so the
inbox still works with JavaScript off, minus the live updates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from sse_starlette import EventSourceResponse
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.approvals.grants import GrantRequest, scope_of
from app.approvals.model import Approval
from app.approvals.service import AlreadyDecided, ApprovalDesk, DecisionError, GrantError, Verdict
from app.approvals.signals import Notifier
from app.approvals.wording import grant_minutes_invalid
from app.auth import Credentials, token_hash
from app.config import InboxOidcSettings
from app.inbox import csrf, present
from app.inbox.headers import SecurityHeaders
from app.inbox.history import LIMIT, STATUS_CHOICES, parse_filter
from app.inbox.live import LiveFeed, since_from
from app.inbox.render import Templates
from app.inbox.session import Session, SessionCookie, anonymous_session, reviewer_session
from app.inbox.sso import CALLBACK_PATH, START_PATH, SingleSignOn
from app.store import audit as audit_store
from app.store import tokens as token_store
from app.store.db import Database
from app.upstream import Upstream

STATIC_DIR: Final = Path(__file__).parent / "static"
MAX_FORM_BYTES: Final = 64 * 1024
PENDING_LIMIT: Final = 500
PING_SECONDS: Final = 15
SEND_TIMEOUT_SECONDS: Final = 30.0
"""A browser that stops reading its feed for this long is dropped (it reconnects if it is alive)."""

AGENT_TOKEN: Final = (
    "That is an agent token. Agents cannot sign in to the inbox or decide approvals: sign in "
    "with the reviewer token that 'airlock reviewers add NAME' printed."
)
BAD_CREDENTIALS: Final = (
    "That name and token do not belong to an enabled reviewer. Use the token that "
    "'airlock reviewers add NAME' (or 'airlock reviewers rotate NAME') printed for that name."
)
TOKEN_SIGN_IN_OFF: Final = "Signing in with a reviewer token is turned off here: sign in with single sign-on instead."
SESSION_ENDED: Final = (
    "Your inbox session has ended (it expired, or your reviewer access was disabled or its "
    "token rotated). Sign in again."
)


def routes(inbox: InboxRoutes) -> list[BaseRoute]:
    """The inbox's routes, to mount at the application root."""
    inner: list[BaseRoute] = [
        Mount("/-/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/-/login", inbox.login_form, methods=["GET"]),
        Route("/-/login", inbox.login, methods=["POST"]),
        Route("/-/logout", inbox.logout, methods=["POST"]),
        *(
            []
            if inbox.sso is None
            else [
                Route(START_PATH, inbox.sso.start, methods=["GET"]),
                Route(CALLBACK_PATH, inbox.sso.callback, methods=["GET"]),
            ]
        ),
        Route("/-/events", inbox.events, methods=["GET"]),
        Route("/", inbox.pending, methods=["GET"]),
        Route("/history", inbox.history, methods=["GET"]),
        Route("/grants", inbox.grants, methods=["GET"]),
        Route("/grants/{grant_id}/revoke", inbox.revoke_grant, methods=["POST"]),
        Route("/{approval_id}", inbox.detail, methods=["GET"]),
        Route("/{approval_id}/approve", inbox.approve, methods=["POST"]),
        Route("/{approval_id}/reject", inbox.reject, methods=["POST"]),
    ]
    # A Mount matches only below its path, so `/inbox` itself gets its own route.
    middleware = [Middleware(SecurityHeaders)]
    return [
        Route("/inbox", inbox.pending, methods=["GET"], middleware=middleware),
        Mount("/inbox", routes=inner, middleware=middleware, max_body_size=MAX_FORM_BYTES),
    ]


class InboxRoutes:
    """The handlers. `prefix` is the inbox's path as browsers see it (`/inbox`, or `/airlock/inbox`
    when `public_url` has a path because a proxy serves Airlock below one); `secure` marks the cookie
    `Secure` (`public_url` is https)."""

    def __init__(
        self,
        *,
        db: Database,
        approvals: ApprovalDesk,
        notifier: Notifier,
        credentials: Credentials,
        upstreams: Mapping[str, Upstream],
        public_url: str,
        secret_key: str,
        prefix: str,
        secure: bool,
        oidc: InboxOidcSettings | None = None,
    ) -> None:
        self._db = db
        self._approvals = approvals
        self._credentials = credentials
        self._upstreams = upstreams
        self._public_url = public_url
        self._prefix = prefix
        self._cookie = SessionCookie(secret_key, path=prefix, secure=secure)
        self._templates = Templates(prefix=prefix)
        self.feed = LiveFeed(approvals, notifier)
        self._token_sign_in = oidc is None or oidc.token_sign_in
        self.sso = (
            None
            if oidc is None
            else SingleSignOn(
                oidc,
                db=db,
                cookie=self._cookie,
                templates=self._templates,
                secret_key=secret_key,
                redirect_uri=csrf.origin_of(public_url) + prefix + CALLBACK_PATH,
                safe_next=self._safe_next,
            )
        )

    # ------------------------------------------------------------------ sessions

    async def _signed_in(self, request: Request) -> Session | None:
        """The request's reviewer session, if it is one and the reviewer may still review."""
        session = self._cookie.read(request)
        if session is None or not await self._still_valid(session):
            return None
        return session

    async def _still_valid(self, session: Session) -> bool:
        if session.credential is None or session.reviewer is None:
            return False
        async with self._db.read() as conn:
            reviewer = await token_store.reviewer_for_session(conn, session.credential, session.issued_at)
        return reviewer == session.reviewer

    def _to_sign_in(self, request: Request) -> RedirectResponse:
        # The path below `/inbox`, under the prefix browsers use (a proxy may have stripped part of it).
        below = request.url.path.rpartition("/inbox")[2]
        target = self._prefix + below + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{self._prefix}/-/login?next={quote(target, safe='/')}", status_code=303)

    def _safe_next(self, target: str | None) -> str:
        """Where to go after signing in: a page of this inbox, never another site."""
        if (
            target
            and (target == self._prefix or target.startswith(self._prefix + "/"))
            and "//" not in target
            and "\\" not in target
            and target.isprintable()
        ):
            return target
        return self._prefix

    async def _form(self, request: Request) -> FormData:
        return await request.form(max_files=0, max_fields=20)

    def _csrf_refusal(self, request: Request, session: Session | None, form: FormData) -> str | None:
        supplied = form.get(csrf.CSRF_FIELD)
        return csrf.refusal(
            expected=None if session is None else session.csrf,
            supplied=supplied if isinstance(supplied, str) else request.headers.get(csrf.CSRF_HEADER),
            origin=request.headers.get("origin"),
            fetch_site=request.headers.get("sec-fetch-site"),
            own_origins={csrf.origin_of(self._public_url), csrf.origin_of(str(request.base_url))},
        )

    def _refused(self, request: Request, message: str, status_code: int) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status_code)
        return self._templates.page(
            "message.html", status_code=status_code, session=None, now=time.time(), title="Refused", message=message
        )

    # ------------------------------------------------------------------ sign-in and sign-out

    async def login_form(self, request: Request) -> Response:
        session = self._cookie.read(request)
        if session is not None and session.signed_in:
            if await self._still_valid(session):
                return RedirectResponse(self._safe_next(request.query_params.get("next")), status_code=303)
            session = None  # a session that ended (reviewer disabled, token rotated): start afresh
        notice = "You are signed out." if "signed_out" in request.query_params else None
        if session is not None:
            return self._login_page(session, request.query_params.get("next"), notice=notice)
        session = anonymous_session()
        response = self._login_page(session, request.query_params.get("next"), notice=notice)
        self._cookie.write(response, session)
        return response

    def _login_page(
        self,
        session: Session,
        target: str | None,
        *,
        error: str | None = None,
        notice: str | None = None,
        name: str = "",
        status_code: int = 200,
    ) -> Response:
        return self._templates.page(
            "login.html",
            status_code=status_code,
            session=None,
            now=time.time(),
            csrf=session.csrf,
            next=self._safe_next(target),
            error=error,
            notice=notice,
            name=name,
            sso=None if self.sso is None else f"{self._prefix}{START_PATH}",
            token_sign_in=self._token_sign_in,
        )

    async def login(self, request: Request) -> Response:
        if not self._token_sign_in:
            return self._refused(request, TOKEN_SIGN_IN_OFF, 403)
        form = await self._form(request)
        session = self._cookie.read(request)
        refused = self._csrf_refusal(request, session, form)
        if refused is not None or session is None:
            return self._refused(request, refused or csrf.MISSING_TOKEN, 403)
        name, token, target = (str(form.get(key) or "").strip() for key in ("name", "token", "next"))
        if not name or not token:
            return self._login_page(
                session, target, error="Enter your reviewer name and token.", name=name, status_code=400
            )
        reviewer = await self._credentials.reviewer_for(token)
        if reviewer is None and await self._credentials.agent_for(token) is not None:
            return self._login_page(session, target, error=AGENT_TOKEN, name=name, status_code=403)
        if reviewer is None or reviewer != name:
            return self._login_page(session, target, error=BAD_CREDENTIALS, name=name, status_code=401)
        response = RedirectResponse(self._safe_next(target), status_code=303)
        self._cookie.write(response, reviewer_session(reviewer, token_hash(token)))
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        session = self._cookie.read(request)
        refused = self._csrf_refusal(request, session, form)
        if refused is not None:
            return self._refused(request, refused, 403)
        if session is not None and session.credential is not None and await self._still_valid(session):
            async with self._db.write() as conn:
                await token_store.sign_out_reviewer(conn, session.credential, time.time())
        response = RedirectResponse(f"{self._prefix}/-/login?signed_out=1", status_code=303)
        self._cookie.clear(response)
        return response

    # ------------------------------------------------------------------ pages

    async def pending(self, request: Request) -> Response:
        session = await self._signed_in(request)
        if session is None:
            return self._to_sign_in(request)
        rows = await self._approvals.search(statuses=["pending"], limit=PENDING_LIMIT)
        return self._templates.page(
            "pending.html",
            session=session,
            now=time.time(),
            rows=rows,
            limit=PENDING_LIMIT,
            current="pending",
            describe=self._describe,
        )

    async def history(self, request: Request) -> Response:
        session = await self._signed_in(request)
        if session is None:
            return self._to_sign_in(request)
        chosen, problems = parse_filter(request.query_params)
        agent, tool = chosen.agent or None, chosen.tool or None
        approvals = await self._approvals.search(
            statuses=chosen.statuses, agent=agent, tool=tool, since=chosen.since_at, until=chosen.until_at, limit=LIMIT
        )
        async with self._db.read() as conn:
            entries = await audit_store.search(
                conn, agent=agent, tool=tool, since=chosen.since_at, until=chosen.until_at, limit=LIMIT
            )
        return self._templates.page(
            "history.html",
            session=session,
            now=time.time(),
            current="history",
            filter=chosen,
            problems=problems,
            approvals=approvals,
            entries=entries,
            statuses=STATUS_CHOICES,
            limit=LIMIT,
        )

    async def detail(self, request: Request) -> Response:
        session = await self._signed_in(request)
        if session is None:
            return self._to_sign_in(request)
        return await self._detail_page(session, request.path_params["approval_id"])

    async def _detail_page(
        self, session: Session, approval_id: str, *, error: str | None = None, status_code: int = 200
    ) -> Response:
        approval = await self._approvals.get(approval_id)
        if approval is None:
            return self._templates.page(
                "message.html",
                status_code=404,
                session=session,
                now=time.time(),
                title="Not found",
                message=f"There is no approval {approval_id}.",
            )
        return self._templates.page(
            "detail.html",
            status_code=status_code,
            session=session,
            now=time.time(),
            a=approval,
            timeline=await self._approvals.timeline(approval_id),
            error=error,
            current="detail",
            describe=self._describe,
        )

    def _describe(self, approval: Approval) -> str:
        """The upstream's description of the approval's tool, from the catalog this process holds
        ("" before any `tools/list` answer was seen, or for an upstream no longer configured)."""
        upstream = self._upstreams.get(approval.upstream)
        return "" if upstream is None else present.tool_description(upstream.catalog.descriptions.get(approval.tool))

    # ------------------------------------------------------------------ decisions

    async def approve(self, request: Request) -> Response:
        return await self._decide(request, "approve")

    async def reject(self, request: Request) -> Response:
        return await self._decide(request, "reject")

    async def _decide(self, request: Request, verdict: Verdict) -> Response:
        form = await self._form(request)
        session = await self._signed_in(request)
        if session is None or session.reviewer is None:
            return self._refused(request, SESSION_ENDED, 401)
        refused = self._csrf_refusal(request, session, form)
        if refused is not None:
            return self._refused(request, refused, 403)
        approval_id = request.path_params["approval_id"]
        reason = str(form.get("reason") or "")
        grant = _grant_of(form) if verdict == "approve" else None
        if isinstance(grant, str):
            return await self._not_decided(request, session, approval_id, grant, 400)
        try:
            decided = await self._approvals.decide(
                approval_id,
                reviewer=session.reviewer,
                verdict=verdict,
                via="inbox",
                reason=reason,
                asserted_groups=session.groups,
                grant=grant,
            )
        except AlreadyDecided as exc:
            message = present.conflict(exc.approval, session.reviewer)
            return await self._not_decided(request, session, approval_id, message, 409, exc.approval)
        except DecisionError as exc:
            return await self._not_decided(request, session, approval_id, exc.sentence(), exc.status_code)
        if _wants_json(request):
            return JSONResponse(
                {
                    "message": present.decided(decided, session.reviewer),
                    "approval": self.event_payload(decided, session),
                }
            )
        return RedirectResponse(f"{self._prefix}/{approval_id}", status_code=303)

    async def _not_decided(
        self,
        request: Request,
        session: Session,
        approval_id: str,
        message: str,
        status_code: int,
        current: Approval | None = None,
    ) -> Response:
        if _wants_json(request):
            body: dict[str, Any] = {"error": message}
            if current is not None:
                body["approval"] = self.event_payload(current, session)
            return JSONResponse(body, status_code=status_code)
        return await self._detail_page(session, approval_id, error=message, status_code=status_code)

    # ------------------------------------------------------------------ grants

    async def grants(self, request: Request) -> Response:
        session = await self._signed_in(request)
        if session is None:
            return self._to_sign_in(request)
        return await self._grants_page(session)

    async def _grants_page(self, session: Session, *, error: str | None = None, status_code: int = 200) -> Response:
        return self._templates.page(
            "grants.html",
            status_code=status_code,
            session=session,
            now=time.time(),
            current="grants",
            grants=await self._approvals.grants.live(),
            error=error,
        )

    async def revoke_grant(self, request: Request) -> Response:
        form = await self._form(request)
        session = await self._signed_in(request)
        if session is None or session.reviewer is None:
            return self._refused(request, SESSION_ENDED, 401)
        refused = self._csrf_refusal(request, session, form)
        if refused is not None:
            return self._refused(request, refused, 403)
        try:
            await self._approvals.grants.revoke(request.path_params["grant_id"], by=session.reviewer)
        except GrantError as exc:
            return await self._grants_page(session, error=str(exc), status_code=exc.status_code)
        return RedirectResponse(f"{self._prefix}/grants", status_code=303)

    # ------------------------------------------------------------------ live feed

    async def events(self, request: Request) -> Response:
        session = await self._signed_in(request)
        if session is None:
            return PlainTextResponse(SESSION_ENDED, status_code=401)
        since = since_from(request.headers.get("last-event-id"), request.query_params.get("since"), now=time.time())

        async def allowed() -> bool:
            return await self._still_valid(session)

        stream = self.feed.events(
            since=since,
            until=session.expires_at,
            allowed=allowed,
            present=lambda approval: self.event_payload(approval, session),
        )
        return EventSourceResponse(stream, ping=PING_SECONDS, send_timeout=SEND_TIMEOUT_SECONDS)

    def event_payload(self, approval: Approval, session: Session) -> dict[str, Any]:
        """An approval as the page's script applies it: the card rendered for this session, and a sentence."""
        html = self._templates.fragment(
            "_card.html",
            a=approval,
            csrf=session.csrf,
            viewer=session.reviewer,
            now=time.time(),
            describe=self._describe,
        )
        return {
            "id": approval.id,
            "status": approval.status.value,
            "pending": approval.status == "pending",
            "html": html,
            "message": present.announcement(approval, session.reviewer),
        }


def _grant_of(form: FormData) -> GrantRequest | str | None:
    """The grant the approve form asks for (None: none chosen), or why it cannot be read."""
    minutes, scope = form.get("grant_minutes"), form.get("grant_scope") or "identical"
    if not isinstance(minutes, str) or minutes in ("", "0"):
        return None
    known = scope_of(scope) if isinstance(scope, str) else None
    if not minutes.isdecimal() or len(minutes) > 5 or known is None:
        return grant_minutes_invalid()
    return GrantRequest(int(minutes), known)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")
