"""`POST /slack/interactions`: Approve and Reject clicks, and the reject-reason modal's submission.

    verify v0 signature over the raw body ──✗──▶ 401, nothing changes
        │
    parse `payload=` ──✗──▶ 400
        │
    app id + workspace ─▶ approval (by the button's id) ─▶ stored channel/ts match the click
        ─▶ Slack user → reviewer ─▶ rule's Slack users/user groups ──✗──▶ 200 + ephemeral note
        │
    Approve: decide() (one compare-and-set) ──────────────▶ 200; the outbox updates the message
    Reject:  views.open(trigger_id) inline, call stays pending ─▶ 200
    Reason submitted: decide(reject, reason) ─────────────▶ 200 closes the modal, or
                                                             {"response_action": "errors"}

Slack wants an answer within 3 seconds. The work done before answering is bounded: database
reads, one compare-and-set, a user-group lookup when the rule names groups and they are not
cached, and (for Reject only) `views.open`, which must happen now because its `trigger_id` expires
in about 3 seconds. Those Slack calls share one deadline, `click_timeout_seconds` (default 2 s)
after the request arrived.
Everything else happens after the answer: ephemeral notes run as a background task once the
response is sent, and the message update goes through the durable outbox (woken by the change).

Buttons carry only the approval id, so every click is resolved from the database: a click after a
restart works, and a copied button (another channel or message) is refused.

Deliberate choices:
- A rejection needs a reason (a rule of the decision path, as in every channel): an empty one
  keeps the modal open with the decision path's sentence. Cancelling the modal sends nothing and
  leaves the call pending.
- Decisions go through the approvals service (`Approvals.decide`, `app/approvals/service.py`) with
  `via="slack"`; nothing here changes an approval any other way. Before opening the reason form,
  `Approvals.refusal` runs the same checks (an enabled reviewer, the rule's reviewers, the approval still pending), so nobody
  fills in a form they cannot submit; the submission is checked again when it decides.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from slack_sdk.signature import SignatureVerifier
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.approvals.model import Approval
from app.approvals.outcomes import review_url
from app.approvals.service import ApprovalDesk, DecisionError, GrantRequest
from app.approvals.wording import confirmation
from app.config import SlackSettings
from app.limits import read_body
from app.slack.blocks import REASON_BLOCK, cut, escape, reject_modal
from app.slack.payloads import (
    Actor,
    ButtonClick,
    Interaction,
    PayloadError,
    ReasonSubmitted,
    parse_interaction,
    reject_metadata,
)
from app.slack.reviewers import Refused, SlackReviewers
from app.slack.webapi import SlackApi, describe
from app.store import slack_outbox as outbox_store
from app.store.db import Database

logger = logging.getLogger("airlock.slack")

PATH: Final = "/slack/interactions"
MAX_BODY_BYTES: Final = 256 * 1024
"""Interaction payloads are a few kilobytes; anything far larger is not from Slack."""


class SlackInteractions:
    def __init__(
        self,
        approvals: ApprovalDesk,
        db: Database,
        settings: SlackSettings,
        api: SlackApi,
        reviewers: SlackReviewers,
        public_url: str,
    ) -> None:
        """Args:
        approvals: what clicks read and decide through.
        db: the outbox's table, for the message Airlock posted for an approval.
        """
        self._approvals = approvals
        self._db = db
        self._settings = settings
        self._api = api
        self._reviewers = reviewers
        self._public_url = public_url
        # None in Socket Mode, where this route is not mounted and nothing arrives signed.
        self._verifier = SignatureVerifier(settings.signing_secret) if settings.signing_secret else None

    async def handle(self, request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": "request too large"}, status_code=413)
        if not self._verified(body, request.headers):
            logger.warning("refused a Slack interaction with a missing, stale or wrong signature")
            return JSONResponse({"error": "invalid request"}, status_code=401)
        try:
            interaction = parse_interaction(body)
        except PayloadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await self.respond(interaction)

    async def respond(self, interaction: Interaction) -> Response:
        """Handle one verified, parsed interaction; the answer Slack gets, for either transport.

        Over HTTP the response is sent as it is. Over Socket Mode (`app/slack/socket_mode.py`) its
        JSON body, if any, is the envelope's ack payload (a modal's `response_action`), and its
        background task runs after the ack, as it runs here after the response is sent.
        """
        if isinstance(interaction, ButtonClick):
            return await self._click(interaction)
        if isinstance(interaction, ReasonSubmitted):
            return await self._submitted(interaction)
        return Response(status_code=200)

    def _verified(self, body: bytes, headers: Headers) -> bool:
        if self._verifier is None:
            return False
        try:
            return self._verifier.is_valid_request(body, dict(headers.items()))
        except ValueError:
            # `is_valid` calls int() on the timestamp header: a non-number raises instead of failing.
            return False

    async def _click(self, click: ButtonClick) -> Response:
        deadline = time.monotonic() + self._settings.click_timeout_seconds
        checked = await self._authorize(
            click.actor, click.approval_id, deadline=deadline, message=(click.channel_id, click.message_ts)
        )
        if isinstance(checked, Refused):
            logger.info(
                "refused a Slack click by %s on %s: %s", click.actor.user_id, click.approval_id, checked.message
            )
            return self._answer(click, checked.message)
        reviewer, approval = checked
        if click.verdict == "approve":
            return await self._approve(click, reviewer, approval)
        return await self._ask_reason(click, reviewer, approval, deadline)

    async def _authorize(
        self, actor: Actor, approval_id: str, *, deadline: float, message: tuple[str | None, str | None] | None
    ) -> tuple[str, Approval] | Refused:
        """The reviewer and the approval, or why not (see `app/slack/reviewers.py` for the order).

        Args:
            deadline: `time.monotonic()` by which Slack lookups made on the way must have answered.
            message: the (channel id, ts) the clicked button sits on; it must be the message
                Airlock posted for this approval. None for a modal, whose metadata Airlock wrote.
        """
        refused = self._reviewers.check_origin(actor)
        if refused is not None:
            return refused
        approval = await self._approvals.get(approval_id)
        if approval is None:
            return Refused(f"Airlock has no approval {approval_id}; nothing was changed.")
        if message is not None and (await self._posted(approval.id) or (None, None)) != message:
            return Refused(
                f"This button is not on the message Airlock posted for approval {approval.id}; "
                "use that message or the web inbox."
            )
        reviewer = await self._reviewers.authorize(actor, approval, deadline=deadline)
        return reviewer if isinstance(reviewer, Refused) else (reviewer, approval)

    async def _posted(self, approval_id: str) -> tuple[str, str] | None:
        async with self._db.read() as conn:
            return await outbox_store.message(conn, approval_id)

    async def _approve(self, click: ButtonClick, reviewer: str, shown: Approval) -> Response:
        # The button offered the rule's longest grant of identical calls; `decide` checks it again.
        policy = shown.grant_policy
        grant = GrantRequest(policy.max_minutes if policy is not None else 0) if click.grant else None
        try:
            approval = await self._approvals.decide(
                click.approval_id, reviewer=reviewer, verdict="approve", via="slack", grant=grant
            )
        except DecisionError as exc:
            return self._answer(click, exc.sentence())
        logger.info("approval %s approved in Slack by %s (%s)", click.approval_id, reviewer, click.actor.user_id)
        if approval.status == "pending":  # a quorum vote: the message shows the count once the outbox updates it
            return self._answer(click, confirmation(approval))
        return Response(status_code=200)

    async def _ask_reason(self, click: ButtonClick, reviewer: str, approval: Approval, deadline: float) -> Response:
        refused = await self._approvals.refusal(approval, reviewer=reviewer, verdict="reject")
        if refused is not None:
            return self._answer(click, refused.sentence())
        if click.trigger_id is None:
            return self._answer(click, "Slack sent no trigger for the reason form; please click Reject again.")
        modal = reject_modal(approval, reject_metadata(approval.id, click.channel_id))
        try:
            await self._api.open_view(click.trigger_id, modal, timeout=max(0.05, deadline - time.monotonic()))
        except Exception as exc:
            logger.warning("could not open the reject form for %s: %s", approval.id, describe(exc))
            url = review_url(self._public_url, approval.id)
            return self._answer(
                click,
                "Slack did not open the reason form in time; the call is still pending. "
                f"Click Reject again, or reject it at {url}",
            )
        return Response(status_code=200)

    async def _submitted(self, submission: ReasonSubmitted) -> Response:
        deadline = time.monotonic() + self._settings.click_timeout_seconds
        checked = await self._authorize(submission.actor, submission.approval_id, deadline=deadline, message=None)
        if isinstance(checked, Refused):
            return _form_error(checked.message)
        reviewer, approval = checked
        try:
            await self._approvals.decide(
                approval.id, reviewer=reviewer, verdict="reject", via="slack", reason=submission.reason
            )
        except DecisionError as exc:
            return _form_error(exc.sentence())
        logger.info("approval %s rejected in Slack by %s (%s)", approval.id, reviewer, submission.actor.user_id)
        return Response(status_code=200)

    def _answer(self, click: ButtonClick, note: str) -> Response:
        """Acknowledge now; tell the clicker `note` privately once the answer is sent."""
        if click.channel_id is None:
            return Response(status_code=200)
        task = BackgroundTask(self._note, click.channel_id, click.actor.user_id, note)
        return Response(status_code=200, background=task)

    async def _note(self, channel: str, user: str, note: str) -> None:
        try:
            await self._api.post_ephemeral(channel, user, escape(note), timeout=self._settings.api_timeout_seconds)
        except Exception as exc:
            logger.warning("could not send a note to Slack user %s: %s", user, describe(exc))


def _form_error(message: str) -> JSONResponse:
    """Keep the modal open and show `message` under the reason field."""
    return JSONResponse({"response_action": "errors", "errors": {REASON_BLOCK: cut(message, 300)}})
