"""Who may decide from Slack: the app and workspace a click came from, and the Slack user → reviewer.

Checked in this order, first failure wins (each failure is a `Refused` with one sentence for the
clicker, shown as an ephemeral note; nothing changes):

1. the payload is for our app (`api_app_id`) and from an allowed workspace (`team.id`, or
   `user.team_id` on org-wide installs; the clicker's own `user.team_id` must be allowed too, which
   keeps Slack Connect guests from other organisations out);
2. the Slack user maps to a reviewer: a reviewer linked with `airlock reviewers add NAME
   --slack-user U…` (disabled reviewers do not count), else the `[slack] reviewers` map, else, with
   `[slack] reviewers_by_email`, the enabled reviewer named by the e-mail on the user's Slack
   profile (the name single sign-on to the inbox gives them; looked up once per
   `usergroup_cache_seconds`, and a lookup that fails refuses);
3. when the approval's rule names Slack `users` and/or `usergroups`, the user is one of those users
   or a member of one of those groups (`usergroups.users.list`, cached briefly; a lookup that fails
   refuses, it does not allow).

Whether that reviewer exists and is enabled, the approval's own `reviewers` list and "no approving
your own call" are not checked here: the one decision path (`app/approvals/decisions.py`) enforces
them for every channel, at the moment of deciding. So a `[slack] reviewers` entry names a reviewer
added with `airlock reviewers add NAME`; it does not create one, and disabling that reviewer stops
their clicks too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.approvals.model import Approval
from app.config import SlackSettings
from app.reveal import reveal
from app.slack.blocks import SLACK
from app.slack.payloads import Actor
from app.slack.webapi import SlackApi, describe
from app.store import tokens as token_store
from app.store.db import Database

logger = logging.getLogger("airlock.slack")


@dataclass(frozen=True, slots=True)
class Refused:
    """The click is not allowed; `message` tells the clicker why (plain words, no secrets)."""

    message: str


class SlackReviewers:
    def __init__(self, settings: SlackSettings, db: Database, api: SlackApi) -> None:
        self._settings = settings
        self._db = db
        self._api = api
        self._groups: dict[str, tuple[frozenset[str], float]] = {}
        self._emails: dict[str, tuple[str | None, float]] = {}

    def check_origin(self, actor: Actor) -> Refused | None:
        """Step 1: refuse payloads for another app or from a workspace Airlock does not serve."""
        if actor.app_id != self._settings.app_id:
            return Refused("This button belongs to a different Slack app; Airlock ignored the click.")
        allowed = self._settings.team_ids
        if actor.team_id not in allowed or (actor.user_team_id is not None and actor.user_team_id not in allowed):
            return Refused("Airlock accepts decisions only from its own Slack workspace; nothing was changed.")
        return None

    async def reviewer(self, user_id: str, *, deadline: float | None = None) -> str | Refused:
        """Step 2: the Airlock reviewer name for a Slack user.

        Args:
            deadline: `time.monotonic()` by which a profile lookup (`reviewers_by_email`) must answer.
        """
        async with self._db.read() as conn:
            name = await token_store.reviewer_for_slack_user(conn, user_id)
        name = name or self._settings.reviewer_users.get(user_id)
        if name is None and self._settings.reviewers_by_email:
            found = await self._reviewer_by_email(user_id, deadline or time.monotonic() + 3.0)
            if isinstance(found, Refused):
                return found
            name = found
        if name is None:
            return Refused(
                "You are not an Airlock reviewer, so your click changed nothing. An admin can add you "
                f"with `airlock reviewers add NAME --slack-user {user_id}`."
            )
        return name

    async def check_routing(self, user_id: str, approval: Approval, *, deadline: float) -> Refused | None:
        """Step 3: when the rule names Slack users or user groups, the user must be among them.

        Args:
            deadline: `time.monotonic()` by which any user-group lookup must have answered.
        """
        routing = approval.routing_for(SLACK)
        users = [str(u) for u in routing.get("users") or []]
        groups = [str(g) for g in routing.get("usergroups") or []]
        if not users and not groups:
            return None
        if user_id in users:
            return None
        for group in groups:
            members = await self._members(group, deadline)
            if members is None:
                return Refused(
                    "Airlock could not check your Slack user-group membership just now; "
                    "nothing was changed. Please try again in a moment."
                )
            if user_id in members:
                return None
        return Refused(
            f"The policy rule for {reveal(approval.tool, line=True)} names other Slack reviewers "
            "for this call; "
            "your click changed nothing."
        )

    async def _reviewer_by_email(self, user_id: str, deadline: float) -> str | Refused | None:
        cached = self._emails.get(user_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            email = cached[0]
        else:
            try:
                email = await self._api.user_email(user_id, timeout=max(0.05, deadline - now))
            except Exception as exc:
                logger.warning("could not read Slack user %s's profile: %s", user_id, describe(exc))
                return Refused(
                    "Airlock could not look up your Slack profile just now; nothing was changed. "
                    "Please try again in a moment."
                )
            self._emails[user_id] = (email, now + self._settings.usergroup_cache_seconds)
        if email is None:
            return None
        async with self._db.read() as conn:
            row = await token_store.reviewer_named(conn, email)
        return email if row is not None and row.disabled_at is None else None

    async def authorize(self, actor: Actor, approval: Approval, *, deadline: float) -> str | Refused:
        """Steps 2 and 3 (step 1 comes first, before the approval is read)."""
        reviewer = await self.reviewer(actor.user_id, deadline=deadline)
        if isinstance(reviewer, Refused):
            return reviewer
        return await self.check_routing(actor.user_id, approval, deadline=deadline) or reviewer

    async def _members(self, group: str, deadline: float) -> frozenset[str] | None:
        cached = self._groups.get(group)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            members = await self._api.usergroup_members(group, timeout=max(0.05, deadline - now))
        except Exception as exc:
            logger.warning("could not list Slack user group %s: %s", group, describe(exc))
            return None
        self._groups[group] = (members, now + self._settings.usergroup_cache_seconds)
        return members
