"""Migrations are the only source of the schema; they must build exactly the declared one."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from vatsim_collector.store.migrate import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    declared_head,
    declared_revisions,
    head_revision,
    stored_revisions,
    upgrade,
)
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


def _fillfactors(engine: Engine) -> dict[str, str | None]:
    """Each table's fillfactor as PostgreSQL stores it (None: the default, 100)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname = ANY(:names) AND relkind = 'r'"
            ),
            {"names": list(SESSION_TABLES)},
        ).all()
    found: dict[str, str | None] = {name: None for name in SESSION_TABLES}
    for name, options in rows:
        for option in options or []:
            key, _, value = option.partition("=")
            if key == "fillfactor":
                found[name] = value
    return found


SESSION_TABLES = ("pilot_sessions", "controller_sessions", "atis_sessions", "prefiles")


def test_the_tables_updated_every_snapshot_leave_room_on_their_pages(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a storage parameter of PostgreSQL's; SQLite has no fillfactor")
    assert _fillfactors(engine) == {name: "50" for name in SESSION_TABLES}
    _downgrade(engine, "0007")
    assert _fillfactors(engine) == {name: None for name in SESSION_TABLES}
    upgrade(engine)
    assert _fillfactors(engine) == {name: "50" for name in SESSION_TABLES}


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}


# -- the check that spares a current database the import of Alembic ----------------------------


def test_the_revisions_read_from_the_files_are_alembics() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert declared_revisions() == {s.revision: s.down_revision for s in scripts.walk_revisions()}
    assert declared_head() == head_revision()


def _migration(folder: Path, name: str, declarations: str) -> None:
    (folder / f"{name}.py").write_text(f'"""{name}"""\n\n{declarations}\n')


@pytest.mark.parametrize(
    "files",
    [
        {},
        {
            "a": 'revision = "a"\ndown_revision = None',
            "b": 'revision = "b"\ndown_revision = "a"',
            "c": 'revision = "c"\ndown_revision = "a"',
        },  # two heads
        {
            "a": 'revision = "a"\ndown_revision = None',
            "m": 'revision = "m"\ndown_revision = ("a", "x")',
        },
        {"a": 'revision = "a"\ndown_revision = "gone"'},  # follows a missing file
        {"a": 'revision = "a"\ndown_revision = None', "b": 'revision = get()\ndown_revision = "a"'},
    ],
    ids=["no file", "branch", "merge", "gap", "computed"],
)
def test_files_that_do_not_say_plainly_leave_the_head_to_alembic(
    tmp_path: Path, files: dict[str, str]
) -> None:
    for name, declarations in files.items():
        _migration(tmp_path, name, declarations)
    assert declared_head(tmp_path) is None


def test_a_plain_chain_of_files_has_its_last_as_head(tmp_path: Path) -> None:
    _migration(tmp_path, "0001_a", 'revision = "0001"\ndown_revision = None')
    _migration(tmp_path, "0002_b", 'revision: str = "0002"\ndown_revision: str | None = "0001"')
    assert declared_head(tmp_path) == "0002"
    assert declared_head(MIGRATIONS / "versions") == head_revision()


def test_the_stored_revision_is_read_without_alembic(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        assert stored_revisions(conn) == (head_revision(),)
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with empty.connect() as conn:
            assert stored_revisions(conn) == ()
    finally:
        empty.dispose()


def test_a_database_behind_is_still_migrated(engine: Engine) -> None:
    _downgrade(engine, "0006")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert compare_metadata(_declared_for(conn), metadata) == []


def test_a_revision_this_code_does_not_know_is_still_refused_by_alembic(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CommandError, match="Can't locate revision identified by '9999'"):
        upgrade(engine)
    assert current_revision(engine) == "9999"
