"""The migrations build exactly the schema the code declares in `app/store/models.py`.

Provenance: Airlock-defined. A table, column or index added to the models without a migration
(or the reverse) would work in tests that create tables from the models and fail on a real
database migrated by `airlock migrate`.
"""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app.store.models import metadata


def test_the_migrated_schema_matches_the_declared_tables_columns_and_indexes(sqlite_template: Path) -> None:
    engine = create_engine(f"sqlite:///{sqlite_template}")
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []
