"""Migrations are the only source of the schema; they must build exactly the declared one."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect

from vatsim_collector.store.migrate import alembic_config, current_revision, head_revision, upgrade
from vatsim_collector.store.schema import metadata

# Created by migrations 0004 and 0007 for analysts; not part of ``metadata`` (tests/test_views.py,
# tests/test_compact_storage.py).
VIEWS = {
    "v_flights",
    "v_controller_sessions",
    "v_hourly_traffic",
    "v_sector_visits",
    "v_positions",
    "v_transceivers",
}


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _declared_for(conn: Connection) -> MigrationContext:
    """A context comparing only what is declared for this backend: an index marked
    ``ddl_if(dialect=...)`` (the volume tables' PostgreSQL-only indexes) is not built elsewhere,
    and Alembic would otherwise report it missing."""

    def declared(obj: object, name: object, kind: str, reflected: bool, other: object) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if kind != "index" or reflected or ddl_if is None or ddl_if.dialect is None:
            return True
        return bool(ddl_if.dialect == conn.dialect.name)

    return MigrationContext.configure(conn, opts={"include_object": declared})


def test_migrations_build_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(_declared_for(conn), metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_the_views_are_all_the_schema_has_beyond_the_metadata(engine: Engine) -> None:
    """compare_metadata reads tables only, so the views need their own check, and no table
    may hide among them."""
    found = inspect(engine)
    assert set(found.get_view_names()) == VIEWS
    assert not VIEWS & set(found.get_table_names())
    assert not VIEWS & set(metadata.tables)


def test_the_views_go_with_a_downgrade_and_come_back(engine: Engine) -> None:
    _downgrade(engine, "0003")
    assert inspect(engine).get_view_names() == []
    assert current_revision(engine) == "0003"
    upgrade(engine)
    assert set(inspect(engine).get_view_names()) == VIEWS
    with engine.connect() as conn:
        assert compare_metadata(_declared_for(conn), metadata) == []


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}
