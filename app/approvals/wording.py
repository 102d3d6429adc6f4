"""Every sentence a person reads about an approval's status and outcome, in one place.

The agent's result text, the web inbox (card, detail page, history, live feed), Slack (the message
and its updates), the CLI (`approvals list` / `show`) and the JSON API all word an approval from
here. A channel formats (HTML, mrkdwn, plain text, its own times); it never writes its own sentence.
Before this module the same sentence was written four times and the copies disagreed: an approved
call whose tool answered `isError: true` read "It ran." as if it had succeeded (issues 11 and 13).

What became of an approval is derived once, by `outcome_of(approval)`, as an `Outcome`: a `Kind` and,
where there is one, a `detail` (the first line of the tool's error or result text, the upstream's
error, why the call could not be delivered), already revealed (`app/reveal.py`) and cut to
`DETAIL_LIMIT` characters. Nothing new is stored: the kind follows from the approval's status, its
stored result and its outcome line.

Sentences that carry names and times take a `Voice`: how the channel writes a time and an
agent-chosen name. The words stay here.

Sentences are worded from an `Approval` (`app/approvals/model.py`), never from stored JSON text.

Pure module: strings from an approval; no I/O.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from app.approvals.model import Approval, Status, StoredResult
from app.reveal import reveal

DETAIL_LIMIT: Final = 200
"""Characters of a detail (a tool's error line, an upstream error) shown inside a sentence."""
TOO_LARGE_PREFIX: Final = "ran; its result ("
"""How `too_large_outcome` begins; `outcome_of` recognises a too-large result by it."""
_JSON_PARSE_LIMIT: Final = 100_000
"""Longer texts are not parsed as JSON to quote them on one line (every render derives the outcome)."""
_NOT_RUN_TAIL: Final = re.compile(r"[;,.]?\s*(the call|it) did not run\.?\s*$", re.IGNORECASE)


class Kind(StrEnum):
    """What became of an approval, as every channel tells it."""

    PENDING = "pending"
    APPROVED = "approved"
    """Approved; the call has not started yet."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    TOOL_ERROR = "tool_error"
    """It ran, and the tool answered with `isError: true`."""
    TOO_LARGE = "too_large"
    """It ran, but its result was larger than Airlock relays."""
    INPUT_REQUIRED = "input_required"
    """2026-07-28: the upstream asked the agent for input before the tool runs."""
    UPSTREAM_ERROR = "upstream_error"
    """The upstream answered with a JSON-RPC error."""
    NOT_DELIVERED = "not_delivered"
    """Approved, but it never reached the upstream: it did not run."""
    UNKNOWN = "unknown"
    """Airlock lost track of the upstream while it ran: it may or may not have taken effect."""
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    detail: str | None = None
    """Revealed, one line, at most `DETAIL_LIMIT` characters; None when there is nothing to add."""


VIA: Final = {
    "api": "the API",
    "cli": "the CLI",
    "slack": "Slack",
    "inbox": "the inbox",
    "webhook": "a webhook",
    "client": "the agent",
    "continuation": "a continuation",
}
"""The channels a decision came through, as a sentence names them."""


@dataclass(frozen=True, slots=True)
class Voice:
    """How one channel writes the parts of a sentence that are not words: times and agent-chosen names."""

    time: Callable[[float], str]
    name: Callable[[str], str] = lambda text: text
    """An agent-chosen name (tool, agent, upstream, reviewer) on one line."""
    text: Callable[[str], str] = lambda text: text
    """Free text inside a sentence: a reason, a tool's error line (already revealed and cut here)."""
    strong: Callable[[str], str] = lambda text: text
    """The verb a decision sentence opens with (`Approved`), for channels that can stress it."""
    via: Callable[[str], str] = lambda via: VIA.get(via, via)


_LABELS: Final = {
    Kind.PENDING: "pending",
    Kind.APPROVED: "approved",
    Kind.RUNNING: "running",
    Kind.SUCCEEDED: "succeeded",
    Kind.TOOL_ERROR: "tool error",
    Kind.TOO_LARGE: "result too large",
    Kind.INPUT_REQUIRED: "needs input",
    Kind.UPSTREAM_ERROR: "upstream error",
    Kind.NOT_DELIVERED: "not delivered",
    Kind.UNKNOWN: "outcome unknown",
    Kind.REJECTED: "rejected",
    Kind.EXPIRED: "expired",
    Kind.WITHDRAWN: "withdrawn",
}
_TITLES: Final = {
    Kind.PENDING: "Approval needed",
    Kind.APPROVED: "Approved",
    Kind.RUNNING: "Approved, running",
    Kind.SUCCEEDED: "Approved, ran",
    Kind.TOOL_ERROR: "Approved, tool error",
    Kind.TOO_LARGE: "Approved, result too large",
    Kind.INPUT_REQUIRED: "Approved, input needed",
    Kind.UPSTREAM_ERROR: "Approved, upstream error",
    Kind.NOT_DELIVERED: "Approved, not delivered",
    Kind.UNKNOWN: "Approved, outcome unknown",
    Kind.REJECTED: "Rejected",
    Kind.EXPIRED: "Expired",
    Kind.WITHDRAWN: "Withdrawn",
}
DID_NOT_RUN: Final = frozenset(
    {Kind.PENDING, Kind.APPROVED, Kind.NOT_DELIVERED, Kind.REJECTED, Kind.EXPIRED, Kind.WITHDRAWN}
)
"""Kinds in which the call has not run (yet, or ever)."""


# --------------------------------------------------------------------------- formats


def iso(timestamp: float | None) -> str | None:
    """A UTC ISO 8601 time to the millisecond (`2026-11-24T10:30:00.000Z`), as agents and the API read it."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def review_url(public_url: str, approval_id: str) -> str:
    return f"{public_url}/inbox/{approval_id}"


def cut(text: str, limit: int, *, at_word: bool = False) -> str:
    """`text` shortened to at most `limit` characters, with an ellipsis when it was cut.

    With `at_word`, the cut falls after the last whole word when one ends in the final fifth.
    """
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if at_word:
        space = head.rfind(" ", limit - 1 - max(1, limit // 5))
        head = head[:space] if space > 0 else head
    return head.rstrip() + "…"


def first_line(text: str, limit: int = DETAIL_LIMIT) -> str:
    """The first non-blank line of `text`, revealed and cut: what a sentence quotes of a longer text.

    Text that is JSON is quoted on one line, compact, rather than as its opening `{`.
    """
    if len(text) <= _JSON_PARSE_LIMIT and text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError, RecursionError):
            text = json.dumps(json.loads(text), ensure_ascii=False)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return cut(reveal(line, line=True), limit)


def sentence(text: str) -> str:
    """`text` ending in a full stop (unless it already ends a sentence)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


# --------------------------------------------------------------------------- the outcome


_SIMPLE: Final = {
    Status.PENDING: Kind.PENDING,
    Status.APPROVED: Kind.APPROVED,
    Status.EXECUTING: Kind.RUNNING,
    Status.REJECTED: Kind.REJECTED,
    Status.EXPIRED: Kind.EXPIRED,
    Status.WITHDRAWN: Kind.WITHDRAWN,
}


def outcome_of(approval: Approval) -> Outcome:
    """What became of `approval`: the one derivation every channel words."""
    if approval.status in _SIMPLE:
        return Outcome(_SIMPLE[approval.status])
    if approval.status is Status.OUTCOME_UNKNOWN:
        return Outcome(Kind.UNKNOWN, first_line(approval.outcome) if approval.outcome else None)
    error = approval.result.error if approval.result is not None else None
    if approval.status is Status.FAILED:
        if error is not None:
            return Outcome(Kind.UPSTREAM_ERROR, first_line(f"{error.get('code')}: {error.get('message')}"))
        return Outcome(Kind.NOT_DELIVERED, _not_delivered_detail(approval.outcome))
    return _completed(approval.outcome, approval.result)


def _completed(line: str | None, stored: StoredResult | None) -> Outcome:
    line = line or ""
    if line.startswith(TOO_LARGE_PREFIX):
        return Outcome(Kind.TOO_LARGE, cut(line.removeprefix("ran; "), DETAIL_LIMIT * 2))
    result = None if stored is None else stored.result
    if result is None:
        return Outcome(Kind.SUCCEEDED)
    if stored is not None and stored.input_required:
        return Outcome(Kind.INPUT_REQUIRED)
    text = "\n".join(
        str(item.get("text", ""))
        for item in result.get("content") or []
        if isinstance(item, dict) and item.get("type") == "text"
    )
    detail = first_line(text) or None
    if result.get("isError"):
        return Outcome(Kind.TOOL_ERROR, detail or "the tool gave no error text")
    return Outcome(Kind.SUCCEEDED, detail)


def _not_delivered_detail(outcome: str | None) -> str | None:
    # The executor's lines end in "; the call did not run"; the sentence says that once itself.
    if not outcome:
        return None
    return first_line(_NOT_RUN_TAIL.sub("", outcome)) or None


# --------------------------------------------------------------------------- short forms


def label(kind: Kind) -> str:
    """A badge: `tool error`, `succeeded`, `not delivered`…"""
    return _LABELS[kind]


def title(kind: Kind) -> str:
    """A headline: `Approval needed`, `Approved, tool error`…"""
    return _TITLES[kind]


def phrase(outcome: Outcome) -> str:
    """A short clause for a table column or a parenthesis: `ran; the tool reported an error: …`."""
    detail = outcome.detail
    return {
        Kind.PENDING: "waiting for a decision",
        Kind.APPROVED: "approved; about to run",
        Kind.RUNNING: "running now",
        Kind.SUCCEEDED: "ran and succeeded",
        Kind.TOOL_ERROR: f"ran; the tool reported an error: {detail}",
        Kind.TOO_LARGE: f"ran; {detail}",
        Kind.INPUT_REQUIRED: "waiting for the agent's input",
        Kind.UPSTREAM_ERROR: f"the upstream answered with an error: {detail}",
        Kind.NOT_DELIVERED: "did not run: could not be delivered to the upstream" + (f" ({detail})" if detail else ""),
        Kind.UNKNOWN: "outcome unknown: may or may not have taken effect",
        Kind.REJECTED: "rejected; did not run",
        Kind.EXPIRED: "expired; did not run",
        Kind.WITHDRAWN: "withdrawn; did not run",
    }[outcome.kind]


# --------------------------------------------------------------------------- sentences for reviewers


def result_sentence(outcome: Outcome, voice: Voice | None = None) -> str:
    """What happened to the call itself, as one or two sentences (empty while pending)."""
    detail = outcome.detail if voice is None or outcome.detail is None else voice.text(outcome.detail)
    return {
        Kind.PENDING: "",
        Kind.APPROVED: "It is about to run.",
        Kind.RUNNING: "It is running now.",
        Kind.SUCCEEDED: sentence(f"It ran and succeeded: {detail}") if detail else "It ran and succeeded.",
        Kind.TOOL_ERROR: sentence(f"It ran, and the tool reported an error: {detail}"),
        Kind.TOO_LARGE: sentence(f"It ran, but {detail}"),
        Kind.INPUT_REQUIRED: "The upstream asked the agent for input before the tool runs; the agent's answer "
        "continues this approval.",
        Kind.UPSTREAM_ERROR: sentence(f"The upstream answered with an error: {detail}")
        + " It may or may not have taken effect.",
        Kind.NOT_DELIVERED: (
            sentence(f"It could not be delivered to the upstream: {detail}")
            if detail
            else "It could not be delivered to the upstream."
        )
        + " It did not run.",
        Kind.UNKNOWN: "Airlock lost track of the upstream while it ran; it may or may not have taken effect, "
        "and Airlock will not re-send it.",
        Kind.REJECTED: "It did not run.",
        Kind.EXPIRED: "It did not run.",
        Kind.WITHDRAWN: "It did not run.",
    }[outcome.kind]


def quorum_progress(approval: Approval, voice: Voice | None = None) -> str:
    """How far a quorum rule's approval got: "1 of 2 approvals, by alice" (empty when one approval decides)."""
    if not approval.needs_quorum:
        return ""
    name = voice.name if voice is not None else (lambda text: reveal(text, line=True))
    count = f"{len(approval.votes)} of {approval.quorum} approvals"
    return f"{count}, by {_and(name(voter) for voter in approval.votes)}" if approval.votes else f"{count} so far"


def votes_missing(approval: Approval) -> int:
    """How many more approvals a quorum rule's pending approval needs before the call runs."""
    return max(0, approval.quorum - len(approval.votes))


def _and(names: Iterable[str]) -> str:
    listed = list(names)
    return ", ".join(listed[:-1]) + " and " + listed[-1] if len(listed) > 1 else "".join(listed)


def decision_sentence(approval: Approval, voice: Voice, viewer: str | None = None) -> str:
    """Who decided, how and when (or that nobody has)."""
    at = voice.time(approval.decided_at) if approval.decided_at is not None else "an unknown time"
    progress = quorum_progress(approval, voice)
    if approval.status is Status.PENDING and progress:
        missing = votes_missing(approval)
        return (
            f"{voice.strong('Waiting')} for {missing} more approval{'s' if missing != 1 else ''} ({progress}); "
            f"expires {voice.time(approval.expires_at)}."
        )
    if approval.status is Status.PENDING:
        return f"{voice.strong('Waiting')} for a decision; expires {voice.time(approval.expires_at)}."
    if approval.status is Status.EXPIRED:
        return f"{voice.strong('Expired')} at {voice.time(approval.finished_at or approval.expires_at)}: nobody decided in time."
    if approval.status is Status.WITHDRAWN:
        return f"{voice.strong('Withdrawn')} by the agent at {at} before anyone decided."
    who = decider(approval, voice, viewer)
    via = voice.via(approval.decided_via) if approval.decided_via else "an unknown channel"
    verb = "Rejected" if approval.status is Status.REJECTED else "Approved"
    return f"{voice.strong(verb)} by {who} via {via} at {at}" + (f" ({progress})." if progress else ".")


def reason_sentence(approval: Approval, voice: Voice) -> str:
    return sentence(f"Reason: {voice.text(approval.decision_reason)}") if approval.decision_reason else ""


def decider(approval: Approval, voice: Voice, viewer: str | None = None) -> str:
    name = voice.name(approval.decided_by or "someone")
    return f"you ({name})" if viewer is not None and approval.decided_by == viewer else name


def account(approval: Approval, voice: Voice, viewer: str | None = None) -> str:
    """The whole story in one paragraph: the decision, its reason, and what became of the call."""
    parts = (
        decision_sentence(approval, voice, viewer),
        reason_sentence(approval, voice),
        result_sentence(outcome_of(approval), voice),
    )
    return " ".join(part for part in parts if part)


def headline(approval: Approval, voice: Voice) -> str:
    """One line for a notification: the outcome's title, the call, and who decided."""
    kind = outcome_of(approval).kind
    if kind is Kind.PENDING:
        return (
            f"{title(kind)}: {voice.name(approval.agent)} wants to call {voice.name(approval.tool)} on "
            f"{voice.name(approval.upstream)} ({approval.id})"
        )
    line = f"{title(kind)}: {voice.name(approval.tool)} for {voice.name(approval.agent)} ({approval.id})"
    if approval.decided_by and kind not in (Kind.EXPIRED, Kind.WITHDRAWN):
        line += f"; decided by {voice.name(approval.decided_by)}"
    return line


def confirmation(approval: Approval) -> str:
    """What the reviewer who just decided reads."""
    if approval.status is Status.PENDING:
        missing = votes_missing(approval)
        return (
            f"You approved {approval.tool} for {approval.agent} ({approval.id}): {quorum_progress(approval)}; "
            f"it runs when {missing} more reviewer{'s' if missing != 1 else ''} approve{'s' if missing == 1 else ''}."
        )
    verb = "rejected" if approval.status is Status.REJECTED else "approved"
    return f"You {verb} {approval.tool} for {approval.agent} ({approval.id})."


def announcement(approval: Approval, voice: Voice, viewer: str | None = None) -> str:
    """What a live page announces when an approval appears or changes."""
    if approval.status is Status.PENDING:
        return f"New approval: {voice.name(approval.agent)} wants to call {voice.name(approval.tool)} on {voice.name(approval.upstream)}."
    return f"{voice.name(approval.tool)} for {voice.name(approval.agent)}: {account(approval, voice, viewer)}"


def no_result(outcome: Outcome) -> str:
    """What the result section says when there is no stored result."""
    if outcome.kind in (Kind.PENDING, Kind.APPROVED, Kind.RUNNING):
        return "No result yet."
    if outcome.kind in DID_NOT_RUN:
        return "The call did not run, so there is no result."
    return result_sentence(outcome)


def too_late(approval: Approval, voice: Voice, viewer: str | None = None) -> str:
    """Why a decision came too late, for the reviewer who tried."""
    if approval.status in (Status.PENDING, Status.EXPIRED):
        return (
            f"Too late: this call expired at {voice.time(approval.expires_at)} before anyone decided. It did not run."
        )
    at = voice.time(approval.decided_at) if approval.decided_at is not None else "an unknown time"
    if approval.status is Status.WITHDRAWN:
        return f"Too late: the agent withdrew this call at {at}. It did not run."
    verb = "rejected" if approval.status is Status.REJECTED else "approved"
    via = voice.via(approval.decided_via) if approval.decided_via else "an unknown channel"
    return f"Too late: {decider(approval, voice, viewer)} already {verb} this call via {via} at {at}."


def already_decided(approval: Approval) -> str:
    """Why a decision came too late, as the API's 409 and the CLI's one-line error say it (ISO times)."""
    who, at = reveal(approval.decided_by or "someone", line=True), iso(approval.decided_at)
    if approval.status in (Status.PENDING, Status.EXPIRED):
        return f"approval {approval.id} expired at {iso(approval.expires_at)} before anyone decided"
    if approval.status is Status.WITHDRAWN:
        return f"approval {approval.id} was withdrawn by {who} at {at}"
    if approval.status is Status.REJECTED:
        return f"approval {approval.id} was already rejected by {who} at {at}"
    return f"approval {approval.id} was already approved by {who} at {at} (now: {phrase(outcome_of(approval))})"


# --------------------------------------------------------------------------- sentences for agents


def agent_waiting(approval: Approval, url: str, seconds_left: float) -> str:
    """The progress message a held request shows while it waits."""
    return (
        f"Waiting for human approval of {approval.tool} (approval {approval.id}); "
        f"review at {url}; expires in {human_duration(seconds_left)}"
    )


def agent_not_yet(approval: Approval, url: str) -> str:
    """The answer to a request whose hold budget ran out before the outcome was known."""
    if approval.status is Status.PENDING and approval.needs_quorum:
        state = (
            f"{approval.quorum} different human reviewers must approve this exact call to {approval.tool} before "
            f"it runs, and it has {quorum_progress(approval)} (approval {approval.id}, expires "
            f"{iso(approval.expires_at)}). It has NOT run."
        )
    elif approval.status is Status.PENDING:
        state = (
            f"A human reviewer must approve this exact call to {approval.tool} before it runs, and "
            f"nobody has decided yet (approval {approval.id}, expires {iso(approval.expires_at)}). It has NOT run."
        )
    else:
        state = (
            f"This call to {approval.tool} was approved by {approval.decided_by} and is running now "
            f"(approval {approval.id}); its result is not back yet."
        )
    return (
        f"{state} To get the outcome, call {approval.tool} again with exactly the same arguments: "
        "that call waits for the decision and returns the real result (the call never runs twice). "
        f"Reviewers: {url}"
    )


def agent_refusal(approval: Approval) -> str:
    """The result text of an approval that ended without a result of its own (it did not run, or may have)."""
    tool, who, when = approval.tool, approval.decided_by, iso(approval.decided_at)
    reason = (
        " " + sentence(f"Reason: {approval.decision_reason}") if approval.decision_reason else " No reason was given."
    )
    outcome = outcome_of(approval)
    if outcome.kind is Kind.REJECTED:
        return f"A human reviewer ({who}) rejected this call to {tool} at {when}.{reason} It did not run."
    if outcome.kind is Kind.EXPIRED:
        return (
            f"Nobody approved this call to {tool} before its approval expired at {iso(approval.expires_at)}. "
            "It did not run. Ask a human before trying again."
        )
    if outcome.kind is Kind.WITHDRAWN:
        return (
            f"This call to {tool} was withdrawn before anyone approved it "
            f"({approval.decision_reason or 'the client cancelled it'}). It did not run."
        )
    if outcome.kind is Kind.UNKNOWN:
        return (
            f"This call to {tool} was approved by {who}, but Airlock lost track of the upstream while it ran "
            "(a crash or a lost connection). It may or may not have taken effect. Airlock will NOT re-send it. "
            "Check the current state before trying again."
        )
    if outcome.kind is Kind.NOT_DELIVERED:
        return (
            f"This call to {tool} was approved by {who} but could not be delivered to the upstream: "
            f"{outcome.detail or 'unknown error'}. It did not run."
        )
    return f"This call to {tool} ended with status {approval.status}."


def agent_replay(approval: Approval, text: str) -> str:
    """`text` sent again to an identical call after it was delivered once."""
    return (
        f"Replay: Airlock sends this stored outcome again because this exact call already ran at "
        f"{iso(approval.executed_at)} (approved by {approval.decided_by}). {text}"
    )


def too_large_text(tool: str, size: int | None, limit: int) -> str:
    """What the agent reads when a call ran but its result is larger than Airlock relays."""
    size_text = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return (
        f"The call to {tool} ran, but its result ({size_text}) is larger than Airlock relays "
        f"(max_response_bytes = {limit} bytes), so it was not relayed. Calling it again would run it "
        "again. Ask for a smaller result, or ask the operator to raise max_response_bytes."
    )


def too_large_outcome(size: int | None, limit: int) -> str:
    """The approval's outcome line (status `completed`) for a call whose result was too large to relay."""
    size_text = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return f"{TOO_LARGE_PREFIX}{size_text}) exceeds max_response_bytes ({limit} bytes) and was not relayed"


# --------------------------------------------------------------------------- task status messages


def task_message(approval: Approval, url: str, now: float) -> str:
    """A task's `statusMessage` for the approval behind it (MCP tasks, `app/tasks/`).

    Short and free of argument values; a client that shows a failed task only through this text
    (the TypeScript SDK's does) still learns who decided, when and why.
    """
    outcome = outcome_of(approval)
    who, when = approval.decided_by or "someone", iso(approval.decided_at)
    if outcome.kind is Kind.PENDING:
        return (
            f"Awaiting human approval {approval.id} (rule {approval.policy_rule}) since {iso(approval.created_at)}; "
            f"expires in {human_duration(approval.expires_at - now)}; review at {url}. Do not resend; keep polling."
        )
    if outcome.kind is Kind.APPROVED:
        return f"Approved by {who} at {when}; executing."
    if outcome.kind is Kind.RUNNING:
        return f"Running {approval.tool} on {approval.upstream}."
    if outcome.kind is Kind.REJECTED:
        return f"Rejected by {who} at {when}: {sentence(approval.decision_reason or 'no reason given')} It did not run."
    if outcome.kind is Kind.EXPIRED:
        waited = human_duration(approval.expires_at - approval.created_at)
        return f"No decision within {waited}; not executed."
    if outcome.kind is Kind.WITHDRAWN:
        return f"Withdrawn by {who} ({approval.decision_reason or 'the client cancelled it'}); not executed."
    if outcome.kind is Kind.UNKNOWN:
        return "Outcome unknown: the call was sent but no reply arrived; it may or may not have taken effect. Check before retrying."
    if outcome.kind is Kind.UPSTREAM_ERROR:
        return sentence(f"Upstream error {outcome.detail}")
    return task_answer_message(outcome)


def answer_outcome(stored: StoredResult) -> Outcome:
    """What an upstream's stored answer says, for a call that ran without an approval (a task's allowed call)."""
    error = stored.error
    if error is not None:
        return Outcome(Kind.UPSTREAM_ERROR, first_line(f"{error.get('code')}: {error.get('message')}"))
    return _completed(None, stored)


def task_answer_message(outcome: Outcome) -> str:
    """A finished task's `statusMessage` once the tool answered (or could not be reached)."""
    if outcome.kind is Kind.SUCCEEDED:
        return "Completed."
    if outcome.kind in (Kind.TOOL_ERROR, Kind.TOO_LARGE):
        return sentence(f"Upstream tool reported an error: {outcome.detail}")
    if outcome.kind is Kind.UPSTREAM_ERROR:
        return sentence(f"Upstream error {outcome.detail}")
    return sentence(phrase(outcome)[:1].upper() + phrase(outcome)[1:])


def task_running_message(tool: str, upstream: str) -> str:
    """A task's `statusMessage` while a call the policy allowed runs."""
    return f"Running {tool} on {upstream}."


def task_cancelled_message(started: bool) -> str:
    """A cancelled task's `statusMessage`: whether the call may still have run."""
    if started:
        return "Cancelled after execution started; it may have taken effect (a running call cannot be recalled)."
    return "Cancelled by the client; not executed."


def task_lost_message(tool: str) -> str:
    """A task's `statusMessage` (and result) when the process running its allowed call died mid-call."""
    return (
        f"Outcome unknown: the Airlock process running {tool} stopped before the upstream answered; "
        "it may or may not have taken effect. Check before retrying."
    )


# --------------------------------------------------------------------------- escalation


def escalation_sentence(approval: Approval, where: str | None = None) -> str | None:
    """ "Escalated to #sre-oncall after 10 min." once `approval` was escalated; None before.

    Args:
        where: how the channel names the escalation target (Slack: its channel); default the
            target's name from airlock.toml.
    """
    if approval.escalated_at is None:
        return None
    target = where or approval.escalate_to or "another group"
    return f"Escalated to {target} after {human_duration(approval.escalated_at - approval.created_at)}."


def escalation_notice(approval: Approval, voice: Voice, url: str) -> str:
    """What an escalation target reads: which call waits, for how long nobody decided, and where to review it."""
    waited = human_duration((approval.escalated_at or approval.created_at) - approval.created_at)
    return (
        f"Escalated: {voice.name(approval.agent)} wants to call {voice.name(approval.tool)} on "
        f"{voice.name(approval.upstream)} ({approval.id}) and nobody has decided in {waited}. "
        f"Review it at {url} before it expires at {voice.time(approval.expires_at)}."
    )


# --------------------------------------------------------------------------- scoped grants


GRANT_SCOPES: Final = {
    "identical": "identical calls",
    "tool": "any call of the tool",
}
"""What each grant scope covers, as a reviewer chooses it."""


def grant_not_offered(approval: Approval) -> str:
    """Why a grant was refused on an approval whose rule offers none."""
    return (
        f"the policy rule for {reveal(approval.tool, line=True)} ({reveal(approval.policy_rule, line=True)}) "
        "offers no grants; approve without one, or add `grants` to the rule"
    )


def grant_on_quorum(approval: Approval) -> str:
    """Why a grant was refused on a quorum rule's approval."""
    return (
        f"the policy rule for {reveal(approval.tool, line=True)} needs {approval.quorum} approvals, so it offers "
        "no grants: a grant would let one reviewer's yes stand for calls that need several"
    )


def grant_scope_refused(approval: Approval, scope: str, offered: Iterable[str]) -> str:
    """Why a grant of a scope the rule does not offer was refused."""
    return (
        f"the policy rule for {reveal(approval.tool, line=True)} offers grants for "
        f"{_and(GRANT_SCOPES.get(name, name) for name in offered)} only, not {reveal(scope, line=True)}"
    )


def grant_too_long(approval: Approval, minutes: int, longest: int) -> str:
    """Why a grant longer than the rule allows (or not positive) was refused."""
    if minutes < 1:
        return "a grant lasts at least 1 minute"
    return (
        f"the policy rule for {reveal(approval.tool, line=True)} allows grants of at most {longest} min, "
        f"not {minutes} min"
    )


def grant_with_rejection() -> str:
    return "a grant comes only with an approval, not with a rejection"


def grant_summary(
    *, grant_id: str, scope: str, agent: str, upstream: str, tool: str, expires_at: float, created_by: str
) -> str:
    """One grant in a line: what it covers, for whom, until when, given by whom."""
    covers = "identical calls of" if scope == "identical" else "every call of"
    return (
        f"grant {grant_id}: {covers} {reveal(tool, line=True)} on {reveal(upstream, line=True)} by agent "
        f"{reveal(agent, line=True)}, until {iso(expires_at)}, given by {reveal(created_by, line=True)}"
    )


def grant_given(*, grant_id: str, scope: str, minutes: int) -> str:
    """The audit step of an approval that came with a grant."""
    return f"with grant {grant_id}: {GRANT_SCOPES.get(scope, scope)} for {minutes} min"


def granted_call(*, grant_id: str, approval_id: str, created_by: str) -> str:
    """The audit detail of a call allowed by a grant instead of parked."""
    return f"allowed by grant {grant_id} (given by {reveal(created_by, line=True)} with approval {approval_id})"


def grant_revoked(*, grant_id: str, by: str) -> str:
    return f"grant {grant_id} revoked by {reveal(by, line=True)}"


def grant_not_found(grant_id: str) -> str:
    return f"no grant {reveal(grant_id, line=True)}"


def grant_already_revoked(*, grant_id: str, by: str | None, at: float | None) -> str:
    return f"grant {grant_id} was already revoked by {reveal(by or 'someone', line=True)} at {iso(at)}"


GRANT_DURATIONS: Final = (15, 30, 60, 120, 240, 480, 1440)
"""The grant lengths a channel offers (minutes), each no longer than the rule's `max_minutes`."""


def grant_durations(longest: int) -> list[int]:
    """The grant lengths to offer under a rule allowing `longest` minutes (`longest` itself last)."""
    return [minutes for minutes in GRANT_DURATIONS if minutes < longest] + [longest]


def grant_offer(scope: str) -> str:
    """How a channel offers a grant of `scope` beside its approve button, before the duration."""
    if scope == "tool":
        return "and allow any call of this tool from this agent for"
    return "and allow identical calls from this agent for"


def grant_minutes_invalid() -> str:
    return "a grant's length must be a whole number of minutes"


def grant_button(minutes: int) -> str:
    """A one-click channel's (Slack's) approve-with-grant button: identical calls, the rule's longest grant."""
    return f"Approve + identical calls for {human_duration(minutes * 60.0)}"


def grant_button_confirm(approval: Approval, minutes: int) -> str:
    """The confirmation that button asks for."""
    return (
        f"{reveal(approval.agent, line=True)} will run {reveal(approval.tool, line=True)} with the arguments "
        f"shown, now and again, with the same arguments, without asking, for {human_duration(minutes * 60.0)}."
    )


def grants_offered(approval: Approval) -> str | None:
    """What a reviewer may grant with `approval` ("identical calls or any call of the tool, up to
    60 min"), or None when its rule offers no grant."""
    policy = approval.grant_policy
    if policy is None or approval.needs_quorum:
        return None
    covers = " or ".join(GRANT_SCOPES.get(scope, scope) for scope in policy.scopes)
    return f"{covers}, up to {human_duration(policy.max_minutes * 60.0)}"
