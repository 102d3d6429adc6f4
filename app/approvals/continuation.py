"""Continuing an approved 2026-07-28 call that asked for input, without a second human decision.

In 2026-07-28 a server that needs input from the user or the client's model (elicitation,
sampling) does not send a request mid-call: it answers the `tools/call` with an
`InputRequiredResult` (`resultType: "input_required"`, `inputRequests`, `requestState`) *without
running the tool body*, and the client repeats the same call carrying `inputResponses` and the
echoed `requestState`. The body runs on that repeat.

Under an `approve` rule, the approved round is the first one: the executor runs it and the agent
receives `input_required`. Its repeat is the same call (same agent, upstream, tool and argument
hash) finishing what the reviewer approved, so it is approved by that decision rather than parked
for a second one. It is bound tightly:

- only to the newest approved round whose stored result is `input_required`;
- only when the repeat echoes that result's `requestState` (when it had one) and answers exactly
  the input requests it listed;
- once: the `continues` column is unique, so a repeat finds nothing more to continue. An
  identical repeat of a delivered round gets that round's stored outcome again (a replay, see
  `queue.py`); any other repeat is parked as a new call for a human.

Anything else about the repeat is judged as usual first: a policy that now denies it, denies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.store.approvals import ApprovalRow


@dataclass(frozen=True, slots=True)
class Continuation:
    """What a repeated 2026-07-28 call carries to continue an `input_required` round."""

    request_state: str | None
    answered: frozenset[str]
    """The keys of `inputResponses`."""


def continuation_of(params: dict[str, Any]) -> Continuation | None:
    """The continuation a `tools/call`'s params carry, or None for a first round."""
    state = params.get("requestState")
    responses = params.get("inputResponses")
    if state is None and responses is None:
        return None
    return Continuation(
        request_state=state if isinstance(state, str) else None,
        answered=frozenset(responses) if isinstance(responses, dict) else frozenset(),
    )


def continues(predecessor: ApprovalRow, continuation: Continuation) -> bool:
    """Whether `continuation` answers the `input_required` result stored on `predecessor`."""
    if predecessor.status != "completed" or predecessor.era != "modern" or not predecessor.result:
        return False
    stored = json.loads(predecessor.result).get("result")
    if not isinstance(stored, dict) or stored.get("resultType") != "input_required":
        return False
    state = stored.get("requestState")
    if isinstance(state, str) and continuation.request_state != state:
        return False
    requests = stored.get("inputRequests")
    asked = frozenset(requests) if isinstance(requests, dict) else frozenset()
    return continuation.answered == asked
