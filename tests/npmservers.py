"""MCP servers from the npm registry, for tests: installed once per machine at pinned versions.

Real servers nobody here wrote (issue 14). `npm_server("@modelcontextprotocol/server-filesystem")`
returns the path of the package's executable, installing the pinned version into
`AIRLOCK_TEST_NPM_DIR` (default `~/.cache/airlock-tests/npm`) the first time, under a file lock so
parallel test runs share one install. Without Node.js or the registry the test is skipped with the
reason, except under `CI=true`, where that is a failure (as for PostgreSQL, `tests/pg.py`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

PINNED: Final = {
    "@modelcontextprotocol/server-filesystem": ("2026.8.31", "mcp-server-filesystem"),
    "@modelcontextprotocol/server-everything": ("2026.8.31", "mcp-server-everything"),
}
INSTALL_TIMEOUT: Final = 300


def npm_dir() -> Path:
    return Path(os.environ.get("AIRLOCK_TEST_NPM_DIR", Path.home() / ".cache" / "airlock-tests" / "npm"))


def npm_server(package: str) -> Path:
    """The executable of `package` at its pinned version (skips, or fails under CI, when it cannot be had)."""
    version, executable = PINNED[package]
    root = npm_dir()
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable(f"{package} needs Node.js and npm on PATH")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(root, package) != version:
            _install(root, f"{package}@{version}")
    path = root / "node_modules" / ".bin" / executable
    if not path.exists():
        _unavailable(f"{package}@{version} installed no {executable}")
    return path


def _installed_version(root: Path, package: str) -> str | None:
    try:
        manifest = json.loads((root / "node_modules" / package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def _install(root: Path, spec: str) -> None:
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root), spec]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        _unavailable(f"npm install {spec} took longer than {INSTALL_TIMEOUT} s")
    if done.returncode != 0:
        _unavailable(f"npm install {spec} failed: {done.stderr.strip()[-500:]}")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(f"{reason} (set CI=true to make this a failure)")
