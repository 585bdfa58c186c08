"""movements: takeoffs, landings, touch-and-goes, go-arounds, off- and on-block; detector state

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

``movements`` holds what the movement detector found, one row per movement; ``movement_state``
the detector's state of each open pilot session, so a restart continues where it stopped.
``contact_intervals`` gets a covering index for a controller's contacts in a window.
Sessions stored before this revision have no state: detection starts for them at the next
snapshot, as for a session seen for the first time (``recompute`` fills in their past).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vatsim_collector.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "movements",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("pilot_session_id", _ID, nullable=False),
        sa.Column("flight_id", _ID, nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("airport", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("bracket_from", UTCDateTime(), nullable=False),
        sa.Column("bracket_to", UTCDateTime(), nullable=False),
        sa.Column("runway_heading", sa.SmallInteger(), nullable=True),
        sa.Column("diversion", sa.Boolean(), nullable=False),
        sa.Column("filed_arrival", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_movements_pilot_session_id_pilot_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_movements_flight_id_flights")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movements")),
    )
    op.create_index("ix_movements_airport_at", "movements", ["airport", "at"], unique=False)
    op.create_index("ix_movements_cid_at", "movements", ["cid", "at"], unique=False)
    op.create_index("ix_movements_at", "movements", ["at"], unique=False)
    op.create_index(
        "ix_movements_pilot_session_id", "movements", ["pilot_session_id"], unique=False
    )
    op.create_index("ix_movements_flight_id", "movements", ["flight_id"], unique=False)
    op.create_table(
        "movement_state",
        sa.Column("pilot_session_id", _ID, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_movement_state_pilot_session_id_pilot_sessions"),
        ),
        sa.PrimaryKeyConstraint("pilot_session_id", name=op.f("pk_movement_state")),
    )

    # Aircraft handled reads a controller's contacts in a window from this index alone; it
    # leads with the controller session, so it replaces the index on that column.
    op.create_index(
        "ix_contact_intervals_controller_window",
        "contact_intervals",
        ["controller_session_id", "started_at", "ended_at", "flight_id"],
        unique=False,
    )
    op.drop_index("ix_contact_intervals_controller_session_id", table_name="contact_intervals")


def downgrade() -> None:
    op.create_index(
        "ix_contact_intervals_controller_session_id",
        "contact_intervals",
        ["controller_session_id"],
        unique=False,
    )
    op.drop_index("ix_contact_intervals_controller_window", table_name="contact_intervals")
    op.drop_table("movement_state")
    for index in (
        "ix_movements_flight_id",
        "ix_movements_pilot_session_id",
        "ix_movements_at",
        "ix_movements_cid_at",
        "ix_movements_airport_at",
    ):
        op.drop_index(index, table_name="movements")
    op.drop_table("movements")
