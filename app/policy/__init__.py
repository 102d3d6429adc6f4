"""The policy engine: what each agent may do with each upstream's tools.

- `document.py`: policy JSON → validated `CompiledPolicy`, or every problem, located.
- `conditions.py`: argument conditions (`when`) by path, compiled once.
- `engine.py`: `CompiledPolicy.evaluate(...)` → `Decision`; pure, no I/O.
- `arguments.py`: a call's arguments checked against the tool's published `inputSchema`, strictly.
- `reloader.py`: watch policy files, swap new versions in, keep the last good one on error.
- `lint.py`: warnings about rules that can never match, and names an upstream does not have.
- `explain.py`: why a call gets its decision (`airlock policy explain`, `POST /api/policy/explain`).
- `probe.py`: an upstream's `tools/list` fetched outside any agent's session, for lint and explain.
- `api.py`: the reviewers' `POST /api/policy/explain` route.

The format is documented for users in `docs/policy.md` and published as `policy.schema.json`.
"""

from app.policy.document import POLICY_SCHEMA, compile_policy, load_policy, parse_policy_text
from app.policy.engine import Action, CompiledPolicy, Decision, RateLimit, Routing
from app.policy.reloader import PolicyReloader

__all__ = [
    "POLICY_SCHEMA",
    "Action",
    "CompiledPolicy",
    "Decision",
    "PolicyReloader",
    "RateLimit",
    "Routing",
    "compile_policy",
    "load_policy",
    "parse_policy_text",
]
