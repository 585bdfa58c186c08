"""room on each page of the session tables for their every-snapshot update (PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Every snapshot sets ``last_seen_at`` of every online pilot, controller, ATIS and prefile row.
On PostgreSQL an update writes a new version of the row; when the page has room for it, the
update is "HOT": no index entry changes and the old version is pruned in place. With the
default fillfactor of 100 a page has no room once filled, so each of those updates also
inserted into every index of the table (four on ``pilot_sessions``). A fillfactor of 50 leaves
room for a new version of every row, as each snapshot makes: steady ingest of the busiest
snapshot took about a fifth less time on PostgreSQL
(BENCHMARKS.md, "Session tables' fillfactor").

It applies to pages filled from now on; rows already stored stay where they are until they
end (sessions are short-lived, so within a day nearly all online rows are in new pages).
Nothing is rewritten and no lock is held for long. On SQLite both directions are no-ops.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The tables whose online rows every snapshot updates (store/writer.py, ``_touch``).
TABLES = ("pilot_sessions", "controller_sessions", "atis_sessions", "prefiles")
FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
