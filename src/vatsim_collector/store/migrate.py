"""Applies Alembic migrations to an engine; the only way the service creates its schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from vatsim_collector.errors.exceptions import ConfigurationError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class SchemaNotCurrent(ConfigurationError):
    """The database's schema is not the one this version of the code reads: a node that does
    not migrate (``serve``) refuses to start rather than fail on its first query."""


def require_current_schema(engine: Engine) -> str:
    """The database's revision, if it is this code's; else ``SchemaNotCurrent`` saying what to
    do about it. Never changes the database."""
    current, head = current_revision(engine), head_revision()
    if current == head and current is not None:
        return current
    if current is None:
        raise SchemaNotCurrent(
            f"the database has no vatsim-collector schema (this version needs revision {head});"
            " create it with `vatsim-collector db upgrade`, or start the collector"
            " (`vatsim-collector run`), which migrates"
        )
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if current in known:
        raise SchemaNotCurrent(
            f"the database schema is at revision {current}, behind this version's {head}:"
            " run `vatsim-collector db upgrade` first"
        )
    raise SchemaNotCurrent(
        f"the database schema is at revision {current}, which this version does not know"
        f" (its latest is {head}): a newer vatsim-collector migrated it; upgrade this node"
    )
