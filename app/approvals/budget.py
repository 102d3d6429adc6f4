"""The hold budget: how long the gateway holds an agent's request for a decision before answering "pending".

Pure: settings and a policy decision in, seconds out; no I/O. The gateway asks it when it parks a
call (`app/gateway/exchange.py`); the held request answers "pending" once the budget is spent
(`app/approvals/hold.py`), which keeps invariant 5 of docs/architecture.md ("clients never wait
past their patience").
"""

from __future__ import annotations

from app.config import ApprovalSettings
from app.policy.engine import Decision


def hold_seconds(settings: ApprovalSettings, agent: str, decision: Decision) -> float:
    """How long to hold this agent's request: the agent's setting, else the rule's, else the default.

    Args:
        settings: the `[approvals]` settings (`agent_hold_seconds`, `hold_seconds`).
        agent: the calling agent's name.
        decision: the policy's `approve` decision; its `hold` is the rule's budget, if it set one.

    Returns:
        Seconds; a zero or missing setting falls through to the next one.
    """
    return settings.agent_hold_seconds.get(agent) or decision.hold or settings.hold_seconds
