"""Keep each upstream's policy current: poll its file, swap in valid edits, keep the last good one.

At start-up every file must load, or `PolicyReloader` raises `PolicyError` and Airlock refuses
to start. After that an edit that does not validate is logged (logger `airlock.policy`, ERROR,
every problem listed) and ignored: the last good policy stays in force, so a typo can never
open the gateway or lock it shut. A later valid edit loads as usual.

Deliberate choices, DO NOT "fix" without reading why:
- We poll the files every `poll_interval` seconds instead of using inotify/kqueue/watchdog.
  Polling works on every filesystem (NFS, bind mounts, container volumes, Kubernetes ConfigMaps
  that swap a symlink), with editors that save by writing a new file and renaming it over the
  old one (a watch on the old inode goes quiet), and needs no dependency.
- Each poll stats *and re-reads* each file and hashes its content. On filesystems with coarse
  modification times (1-2 s), an edit made within the same tick as the previous one keeps the
  same mtime, and can keep the size; only the content hash catches it. Policy files are a few
  kilobytes, so this costs microseconds. Each file's `Fingerprint` is
  `(mtime_ns, size, sha256)`, but the hash decides: touching a file reloads nothing, and a
  same-mtime, same-size edit still reloads.
- An editor that truncates and rewrites in place can be caught half-way; that read fails to
  validate, is logged, and the next poll loads the finished file. Renaming a finished file
  over the old one (what most editors and `kubectl` do) avoids the noise.
- A broken edit is logged once, not on every poll: the reloader remembers the content it last
  examined.
- The reads are blocking and happen on the event loop thread, so that listeners run there too
  and may touch asyncio objects. Policy files are small local files; if one ever sits on a
  slow network mount, move `check_now()` to a thread and hand results back to the loop.

Swapping is atomic for readers: `current()` looks up a dict that is replaced whole, never
mutated, so a call sees either the old policy or the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from app.errors import PolicyError
from app.policy.document import policy_from_bytes, unreadable_file
from app.policy.engine import CompiledPolicy
from app.types import UpstreamName

logger: Final = logging.getLogger("airlock.policy")

Listener: TypeAlias = Callable[[UpstreamName, CompiledPolicy], None]
"""Called as `fn(upstream, policy)` after each successful reload."""
FailureListener: TypeAlias = Callable[[UpstreamName, str], None]
"""Called as `fn(upstream, problem)` when a changed file is not loaded (once per distinct content, as logged)."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a policy file looked like when last examined."""

    mtime_ns: int
    size: int
    sha256: str


@dataclass(slots=True)
class _Watched:
    """One upstream's file: the content last loaded, and the content (or failure) last seen."""

    path: str
    loaded: Fingerprint
    seen: Fingerprint | str


class PolicyReloader:
    """Holds the current CompiledPolicy per upstream and reloads changed files."""

    def __init__(
        self,
        sources: Mapping[UpstreamName, str | os.PathLike[str]],
        *,
        poll_interval: float = 1.0,
    ) -> None:
        """Load every policy file now.

        Args:
            sources: the policy file of each upstream.
            poll_interval: seconds between two checks in `run()`.

        Raises:
            ValueError: poll_interval is not a positive number.
            PolicyError: a file cannot be read or is invalid (the first, by upstream name;
                any other invalid file is logged).
        """
        if not poll_interval > 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.poll_interval = poll_interval
        self._listeners: list[Listener] = []
        self._failure_listeners: list[FailureListener] = []
        self._running = False
        self._watched: dict[UpstreamName, _Watched] = {}
        self._current: dict[UpstreamName, CompiledPolicy] = {}
        self._problems: dict[UpstreamName, str] = {}
        self._load_all({name: os.fspath(path) for name, path in sources.items()})

    def _load_all(self, sources: Mapping[UpstreamName, str]) -> None:
        failures: list[tuple[UpstreamName, PolicyError]] = []
        for upstream in sorted(sources):
            try:
                self._load_initial(upstream, sources[upstream])
            except PolicyError as exc:
                failures.append((upstream, exc))
        for upstream, error in failures[1:]:  # the first is raised, and reported by the caller
            logger.error("policy for upstream %r is invalid too:\n%s", upstream, error)
        if failures:
            raise failures[0][1]

    def _load_initial(self, upstream: UpstreamName, path: str) -> None:
        fingerprint, data = _examine(path)
        policy = policy_from_bytes(data, path)
        self._watched[upstream] = _Watched(path, loaded=fingerprint, seen=fingerprint)
        self._current[upstream] = policy
        logger.info("policy for upstream %r loaded from %s: %s", upstream, path, policy.version)

    def current(self, upstream: UpstreamName) -> CompiledPolicy:
        """The policy in force for `upstream`. Raises KeyError for an unknown upstream."""
        return self._current[upstream]

    def problem(self, upstream: UpstreamName) -> str | None:
        """Why the file on disk is not the policy in force (unreadable or invalid since), or None."""
        return self._problems.get(upstream)

    def add_listener(self, fn: Listener) -> None:
        """Call `fn(upstream, policy)` after each successful reload."""
        self._listeners.append(fn)

    def add_failure_listener(self, fn: FailureListener) -> None:
        """Call `fn(upstream, problem)` when a changed file is rejected (once per distinct content)."""
        self._failure_listeners.append(fn)

    def check_now(self) -> list[UpstreamName]:
        """Reload every file whose content changed and validates.

        Returns:
            The upstreams whose policy was replaced, in name order.
        """
        reloaded = {
            upstream: policy
            for upstream, watched in sorted(self._watched.items())
            if (policy := self._check(upstream, watched)) is not None
        }
        if reloaded:
            self._current = {**self._current, **reloaded}
            for upstream, policy in reloaded.items():
                self._notify(upstream, policy)
        return list(reloaded)

    def _check(self, upstream: UpstreamName, watched: _Watched) -> CompiledPolicy | None:
        try:
            fingerprint, data = _examine(watched.path)
        except PolicyError as exc:
            self._reject(upstream, watched, str(exc), exc)
            return None
        if _same_content(fingerprint, watched.loaded):
            watched.seen = watched.loaded = fingerprint
            self._problems.pop(upstream, None)
            return None
        if _same_content(fingerprint, watched.seen):
            return None
        try:
            policy = policy_from_bytes(data, watched.path)
        except PolicyError as exc:
            self._reject(upstream, watched, fingerprint, exc)
            return None
        watched.seen = watched.loaded = fingerprint
        self._problems.pop(upstream, None)
        logger.info("policy for upstream %r reloaded from %s: %s", upstream, watched.path, policy.version)
        return policy

    def _reject(self, upstream: UpstreamName, watched: _Watched, seen: Fingerprint | str, exc: PolicyError) -> None:
        self._problems[upstream] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if seen == watched.seen:
            return
        watched.seen = seen
        for listener in self._failure_listeners:
            try:
                listener(upstream, self._problems[upstream])
            except Exception:  # a listener's bug must not stop reloads
                logger.exception("policy failure listener %r failed for upstream %r", listener, upstream)
        logger.error(
            "policy for upstream %r not reloaded; keeping %s in force:\n%s",
            upstream,
            self._current[upstream].version,
            exc,
        )

    def _notify(self, upstream: UpstreamName, policy: CompiledPolicy) -> None:
        for listener in self._listeners:
            try:
                listener(upstream, policy)
            except Exception:  # a listener's bug must not stop reloads or other listeners
                logger.exception("policy listener %r failed for upstream %r", listener, upstream)

    async def run(self) -> None:
        """Check the files every `poll_interval` seconds, forever (until cancelled).

        Raises:
            RuntimeError: run() is already running.
        """
        if self._running:
            raise RuntimeError("PolicyReloader.run() is already running")
        self._running = True
        try:
            while True:
                await asyncio.sleep(self.poll_interval)
                self._check_safely()
        finally:
            self._running = False

    def _check_safely(self) -> None:
        try:
            self.check_now()
        except Exception:  # a bug here must not stop reloading for good; the last policy stays
            logger.exception("policy check failed; keeping the policies in force")


def _examine(path: str) -> tuple[Fingerprint, bytes]:
    """Stat and read a policy file through one open file, so both describe the same file.

    Raises:
        PolicyError: naming the OS error.
    """
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
    except OSError as exc:
        raise unreadable_file(path, exc) from None
    return Fingerprint(stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest()), data


def _same_content(fingerprint: Fingerprint, other: Fingerprint | str) -> bool:
    return isinstance(other, Fingerprint) and fingerprint.sha256 == other.sha256
