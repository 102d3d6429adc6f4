"""Apply Alembic migrations from Python: `airlock migrate`, `airlock serve` at start, and the tests.

Migrations are synchronous (Alembic's async `env.py` runs its own event loop), so call `upgrade`
before the server's loop starts, or through `asyncio.to_thread` from async code.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(_REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_REPO_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema (a no-op when it is current)."""
    command.upgrade(alembic_config(database_url), "head")

