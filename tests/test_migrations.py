"""Migrations are the only source of the schema; they must build exactly the declared one."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from vatsim_collector.store.migrate import current_revision, head_revision, upgrade
from vatsim_collector.store.schema import metadata


def test_migrations_build_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}
