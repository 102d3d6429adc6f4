"""One demo per data directory: a lock file that also says where the running demo is.

`demo_lock(data_dir, where)` takes an exclusive `flock` on `<data_dir>/demo.lock`, writes `where`
(the demo's URLs) into it, and holds it until the demo stops. A second demo on the same data
directory, whatever ports it was given, finds the lock taken and raises `DemoAlreadyRunning` with
the first one's URLs, having changed nothing (the file is opened without truncating it, and
written only once the lock is ours).

Deliberate choices:
- `flock`, not a pid file: the kernel drops the lock when the process dies however it dies, so a
  killed demo never leaves a stale lock behind. This makes the demo POSIX-only (Linux, macOS).
- A demo with another data directory (another config) is not seen here; the port checks in
  `app.demo.run` catch it when it uses the same ports.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from app.errors import ConfigError

LOCK_FILE: Final = "demo.lock"


@dataclass(frozen=True)
class DemoAddress:
    """Where a running demo can be reached."""

    airlock: str
    upstream: str
    pid: int = 0

    def describe(self) -> str:
        return f"Airlock at {self.airlock} (inbox {self.airlock}/inbox), demo upstream at {self.upstream}" + (
            f", pid {self.pid}" if self.pid else ""
        )


class DemoAlreadyRunning(ConfigError):
    """Another demo holds this data directory's lock."""

    def __init__(self, data_dir: Path, running: DemoAddress | None) -> None:
        where = running.describe() if running else "still starting"
        super().__init__(
            f"a demo is already running with data in {data_dir}: {where}; "
            "use that one, or stop it (Ctrl+C in its terminal) first"
        )


@contextmanager
def demo_lock(data_dir: Path, where: DemoAddress) -> Iterator[None]:
    """Hold the data directory's demo lock for the duration of the block.

    Raises:
        DemoAlreadyRunning: Another process holds the lock.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoAlreadyRunning(data_dir, _read(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(asdict(where) | {"pid": os.getpid()}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _read(path: Path) -> DemoAddress | None:
    try:
        return DemoAddress(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # the holder has not written it yet
