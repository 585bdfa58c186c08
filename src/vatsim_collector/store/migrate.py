"""Applies Alembic migrations to an engine; the only way the service creates its schema.

Alembic takes longer to import (≈ 130 ms) than a short command (``replay`` of one file) takes
to do its work, and most runs find the database already current. So ``upgrade`` first reads
the stored revision with SQLAlchemy and the newest revision from the migration files' own
``revision``/``down_revision`` lines, and imports Alembic only when they differ, when either
cannot be read that way, or when asked for anything but the head: then Alembic decides exactly
as it always did (it migrates, or refuses a revision it does not know).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from vatsim_collector.errors.exceptions import ConfigurationError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps

# `revision = "0007"` and `down_revision = "0006"` (or None), as every migration declares them.
_DECLARATION = re.compile(
    r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:["']([^"'\n]+)["']|(None))\s*$""",
    re.MULTILINE,
)


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and _already_at_head(engine):
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _already_at_head(engine: Engine) -> bool:
    head = declared_head()
    if head is None:
        return False
    with engine.connect() as connection:
        return stored_revisions(connection) == (head,)


def stored_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions in the database's version table, read without Alembic; none if no table."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return tuple(sorted(str(row[0]) for row in rows))


def declared_revisions(versions: Path = MIGRATIONS / "versions") -> dict[str, str | None] | None:
    """Each migration file's revision and the revision it follows, read as text; ``None`` when
    a file does not declare exactly one of each in the plain form (Alembic then decides)."""
    follows: dict[str, str | None] = {}
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith("__"):  # Alembic skips __init__.py too
            continue
        found: dict[str, list[str | None]] = {"revision": [], "down_revision": []}
        for name, value, none in _DECLARATION.findall(path.read_text(encoding="utf-8")):
            found[name].append(None if none else value)
        revisions, downs = found["revision"], found["down_revision"]
        if len(revisions) != 1 or len(downs) != 1:
            return None
        revision = revisions[0]
        if revision is None or revision in follows:
            return None
        follows[revision] = downs[0]
    return follows or None


def declared_head(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The one revision no migration file follows, or ``None`` if the files do not say plainly
    (no file, a branch, a merge, a gap): then Alembic is asked."""
    follows = declared_revisions(versions)
    if follows is None:
        return None
    if any(down is not None and down not in follows for down in follows.values()):
        return None
    heads = set(follows) - {down for down in follows.values() if down is not None}
    return heads.pop() if len(heads) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class SchemaNotCurrent(ConfigurationError):
    """The database's schema is not the one this version of the code reads: a node that does
    not migrate (``serve``) refuses to start rather than fail on its first query."""


def require_current_schema(engine: Engine) -> str:
    """The database's revision, if it is this code's; else ``SchemaNotCurrent`` saying what to
    do about it. Never changes the database."""
    from alembic.script import ScriptDirectory

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
