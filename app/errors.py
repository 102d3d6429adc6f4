"""Domain exceptions. No HTTP here: the edges (CLI, endpoints) turn these into responses."""

from __future__ import annotations

from dataclasses import dataclass


class AirlockError(Exception):
    """Base class of every error Airlock raises on purpose."""


class ConfigError(AirlockError):
    """The configuration cannot be used. The message is one sentence the CLI prints as is."""


@dataclass(frozen=True)
class PolicyProblem:
    """One problem found in a policy document.

    Attributes:
        location: where in the document, as a JSON path such as `rules[2].when.bounty_usd`
            (empty for the document itself, or `line 3, column 5` for a JSON syntax error).
        message: what is wrong, in words a policy author can act on.
    """

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class PolicyError(AirlockError):
    """A policy document is invalid. Carries every problem found, each with its location."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid policy\n{lines}")
