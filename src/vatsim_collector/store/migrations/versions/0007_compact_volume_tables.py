"""compact positions and transceivers on PostgreSQL: int4 micro-degrees, int4 session ids, BRIN

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

On PostgreSQL, ``positions`` and ``transceivers`` (and every daily partition of them):

- latitude and longitude become integer micro-degrees, ``round(degrees * 1000000)``: each value
  is kept within 0.5e-6 degree (the application still reads and writes degrees, through
  ``store.types.MicroDegrees``);
- the session-id columns become int4 (the sessions' own ids stay bigint); an id beyond the int4
  range stops the migration with "integer out of range" and changes nothing;
- the primary keys go; a BRIN index on ``snapshot_id`` and, on positions, a btree on
  ``pilot_session_id`` replace them (schema.py says what keeps a row unique without them).

Two analyst views, ``v_positions`` and ``v_transceivers``, show the rows with coordinates in
degrees on both backends (docs/analysts.md), so SQL readers need not know the stored unit.

Every other value is kept exactly. It runs in the one transaction ``store.migrate.upgrade``
opens, so a failure leaves the database as it was. Each ALTER rewrites every partition under an
ACCESS EXCLUSIVE lock: stop the collector first (``db upgrade`` then ``run``); BENCHMARKS.md
gives the rewrite rate. On SQLite nothing changes (its volume tables keep REAL coordinates and
their primary keys), so both directions are no-ops there.

The downgrade restores the old types and primary keys; it fails (and changes nothing) if rows
that a primary key would refuse were stored in the meantime.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BRIN = "USING brin (snapshot_id) WITH (pages_per_range = 16, autosummarize = on)"
_OLD_KEYS = {
    "positions": ("snapshot_id", "pilot_session_id"),
    "transceivers": ("snapshot_id", "callsign", "transceiver_id"),
}
_SESSION_COLUMNS = {
    "positions": ("pilot_session_id",),
    "transceivers": ("pilot_session_id", "controller_session_id", "atis_session_id"),
}


VIEWS = ("v_positions", "v_transceivers")
_COLUMNS = {
    "positions": (
        "snapshot_id",
        "pilot_session_id",
        "{latitude}",
        "{longitude}",
        "altitude",
        "groundspeed",
        "heading",
        "transponder",
        "qnh_mb",
    ),
    "transceivers": (
        "snapshot_id",
        "callsign",
        "transceiver_id",
        "frequency_hz",
        "{latitude}",
        "{longitude}",
        "height_msl_m",
        "height_agl_m",
        "pilot_session_id",
        "controller_session_id",
        "atis_session_id",
    ),
}


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _degrees(column: str) -> str:
    """The column in degrees: the double nearest micro-degrees / 1e6, as MicroDegrees reads it."""
    if _postgresql():
        return f"{column}::double precision / 1000000 AS {column}"
    return column


def _create_views() -> None:
    for view, table in zip(VIEWS, _COLUMNS, strict=True):
        columns = ", ".join(
            c.format(latitude=_degrees("latitude"), longitude=_degrees("longitude"))
            for c in _COLUMNS[table]
        )
        op.execute(f"CREATE VIEW {view} AS SELECT {columns} FROM {table}")


def upgrade() -> None:
    if not _postgresql():
        _create_views()
        return
    for table, sessions in _SESSION_COLUMNS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        # One ALTER, so each partition is rewritten once for all its columns.
        changes = [
            f"ALTER COLUMN {c} TYPE integer USING round({c} * 1000000)::integer"
            for c in ("latitude", "longitude")
        ] + [f"ALTER COLUMN {c} TYPE integer" for c in sessions]
        op.execute(f"ALTER TABLE {table} {', '.join(changes)}")
        op.execute(f"CREATE INDEX ix_{table}_snapshot_id ON {table} {_BRIN}")
    op.execute("CREATE INDEX ix_positions_pilot_session_id ON positions (pilot_session_id)")
    _create_views()


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if not _postgresql():
        return
    op.execute("DROP INDEX ix_positions_pilot_session_id")
    for table, sessions in _SESSION_COLUMNS.items():
        op.execute(f"DROP INDEX ix_{table}_snapshot_id")
        changes = [
            f"ALTER COLUMN {c} TYPE double precision USING {c}::double precision / 1000000"
            for c in ("latitude", "longitude")
        ] + [f"ALTER COLUMN {c} TYPE bigint" for c in sessions]
        op.execute(f"ALTER TABLE {table} {', '.join(changes)}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT pk_{table}"
            f" PRIMARY KEY ({', '.join(_OLD_KEYS[table])})"
        )
