"""Apply Alembic migrations from Python: `airlock migrate`, `airlock serve` at start, and the tests.

Migrations are synchronous (Alembic's async `env.py` runs its own event loop), so call `upgrade`
before the server's loop starts, or through `asyncio.to_thread` from async code.

Where the Alembic files are: one copy lives at the repository root (`alembic.ini`, `migrations/`),
where the `alembic` CLI finds them in a checkout. A wheel ships that same root as the package data
`app/store/_alembic/` (see `[tool.setuptools]` in pyproject.toml), so an installed Airlock finds
them next to this module and a checkout, editable install included, finds them at the root.
Zipped installs are not supported: Alembic reads migrations from real files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

_PACKAGED_ROOT = "_alembic"
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def _alembic_ini() -> Path:
    """The `alembic.ini` to run with: the wheel's copy, else the checkout's.

    Raises:
        FileNotFoundError: neither exists (a broken install).
    """
    packaged = resources.files("app.store") / _PACKAGED_ROOT / "alembic.ini"
    for candidate in (packaged, _CHECKOUT_ROOT / "alembic.ini"):
        if isinstance(candidate, Path) and candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Airlock's migrations are missing: no {packaged} (installed) or {_CHECKOUT_ROOT / 'alembic.ini'} (checkout)"
    )


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for migrating the database at `database_url`."""
    config = Config(str(_alembic_ini()))
    # `script_location = %(here)s/migrations` in alembic.ini holds in both places. Its
    # `prepend_sys_path = .` serves the CLI in a checkout; here `app` is already imported, and
    # a server must not put its working directory on sys.path.
    config.set_main_option("prepend_sys_path", "")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema (a no-op when it is current)."""
    command.upgrade(alembic_config(database_url), "head")
