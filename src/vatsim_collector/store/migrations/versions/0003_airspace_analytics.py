"""airspace analytics: sector occupancy, contact intervals, controller frequencies, summaries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 18:53:59.916974
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vatsim_collector.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_frequencies",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "controller_session_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("frequency", sa.Text(), nullable=True),
        sa.Column("facility", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["controller_session_id"],
            ["controller_sessions.id"],
            name=op.f("fk_controller_frequencies_controller_session_id_controller_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controller_frequencies")),
    )
    op.create_index(
        "ix_controller_frequencies_controller_session_id",
        "controller_frequencies",
        ["controller_session_id"],
        unique=False,
    )

    op.create_table(
        "controller_summaries",
        sa.Column(
            "controller_session_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("facility", sa.SmallInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Float(), nullable=False),
        sa.Column("frequencies", sa.Text(), nullable=False),
        sa.Column("aircraft_handled", sa.Integer(), nullable=False),
        sa.Column("peak_concurrent", sa.Integer(), nullable=False),
        sa.Column("hourly", sa.Text(), nullable=False),
        sa.Column("per_aircraft", sa.Text(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["controller_session_id"],
            ["controller_sessions.id"],
            name=op.f("fk_controller_summaries_controller_session_id_controller_sessions"),
        ),
        sa.PrimaryKeyConstraint("controller_session_id", name=op.f("pk_controller_summaries")),
    )
    op.create_index(
        "ix_controller_summaries_callsign", "controller_summaries", ["callsign"], unique=False
    )
    op.create_index("ix_controller_summaries_cid", "controller_summaries", ["cid"], unique=False)
    op.create_index(
        "ix_controller_summaries_ended_at", "controller_summaries", ["ended_at"], unique=False
    )

    op.create_table(
        "flight_summaries",
        sa.Column(
            "flight_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("departure", sa.Text(), nullable=True),
        sa.Column("arrival", sa.Text(), nullable=True),
        sa.Column("aircraft", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("online_minutes", sa.Float(), nullable=False),
        sa.Column("airborne_minutes", sa.Float(), nullable=False),
        sa.Column("distance_nm", sa.Float(), nullable=False),
        sa.Column("max_altitude", sa.Integer(), nullable=True),
        sa.Column("coverage", sa.Float(), nullable=True),
        sa.Column("airborne_coverage", sa.Float(), nullable=True),
        sa.Column("controllers", sa.Text(), nullable=False),
        sa.Column("sectors", sa.Text(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_flight_summaries_flight_id_flights")
        ),
        sa.PrimaryKeyConstraint("flight_id", name=op.f("pk_flight_summaries")),
    )
    op.create_index("ix_flight_summaries_arrival", "flight_summaries", ["arrival"], unique=False)
    op.create_index("ix_flight_summaries_callsign", "flight_summaries", ["callsign"], unique=False)
    op.create_index("ix_flight_summaries_cid", "flight_summaries", ["cid"], unique=False)
    op.create_index(
        "ix_flight_summaries_departure", "flight_summaries", ["departure"], unique=False
    )
    op.create_index("ix_flight_summaries_ended_at", "flight_summaries", ["ended_at"], unique=False)

    op.create_table(
        "contact_intervals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "pilot_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "flight_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "controller_session_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("frequency_hz", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["controller_session_id"],
            ["controller_sessions.id"],
            name=op.f("fk_contact_intervals_controller_session_id_controller_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_contact_intervals_flight_id_flights")
        ),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_contact_intervals_pilot_session_id_pilot_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_intervals")),
        sa.UniqueConstraint(
            "pilot_session_id",
            "controller_session_id",
            "started_at",
            name=op.f("uq_contact_intervals_pilot_session_id_controller_session_id_started_at"),
        ),
    )
    op.create_index(
        "ix_contact_intervals_controller_session_id",
        "contact_intervals",
        ["controller_session_id"],
        unique=False,
    )
    op.create_index(
        "ix_contact_intervals_ended_at", "contact_intervals", ["ended_at"], unique=False
    )
    op.create_index(
        "ix_contact_intervals_flight_id", "contact_intervals", ["flight_id"], unique=False
    )
    op.create_index(
        "ix_contact_intervals_started_at", "contact_intervals", ["started_at"], unique=False
    )

    op.create_table(
        "sector_occupancy",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "pilot_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "flight_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("sector", sa.Text(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("entry_latitude", sa.Float(), nullable=False),
        sa.Column("entry_longitude", sa.Float(), nullable=False),
        sa.Column("entry_altitude", sa.Integer(), nullable=False),
        sa.Column("exited_at", UTCDateTime(), nullable=True),
        sa.Column("exit_latitude", sa.Float(), nullable=True),
        sa.Column("exit_longitude", sa.Float(), nullable=True),
        sa.Column("exit_altitude", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_sector_occupancy_flight_id_flights")
        ),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_sector_occupancy_pilot_session_id_pilot_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sector_occupancy")),
        sa.UniqueConstraint(
            "pilot_session_id",
            "sector",
            "entered_at",
            name=op.f("uq_sector_occupancy_pilot_session_id_sector_entered_at"),
        ),
    )
    op.create_index(
        "ix_sector_occupancy_exited_at", "sector_occupancy", ["exited_at"], unique=False
    )
    op.create_index(
        "ix_sector_occupancy_flight_id", "sector_occupancy", ["flight_id"], unique=False
    )
    op.create_index(
        "ix_sector_occupancy_sector_entered_at",
        "sector_occupancy",
        ["sector", "entered_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sector_occupancy_sector_entered_at", table_name="sector_occupancy")
    op.drop_index("ix_sector_occupancy_flight_id", table_name="sector_occupancy")
    op.drop_index("ix_sector_occupancy_exited_at", table_name="sector_occupancy")

    op.drop_table("sector_occupancy")
    op.drop_index("ix_contact_intervals_started_at", table_name="contact_intervals")
    op.drop_index("ix_contact_intervals_flight_id", table_name="contact_intervals")
    op.drop_index("ix_contact_intervals_ended_at", table_name="contact_intervals")
    op.drop_index("ix_contact_intervals_controller_session_id", table_name="contact_intervals")

    op.drop_table("contact_intervals")
    op.drop_index("ix_flight_summaries_ended_at", table_name="flight_summaries")
    op.drop_index("ix_flight_summaries_departure", table_name="flight_summaries")
    op.drop_index("ix_flight_summaries_cid", table_name="flight_summaries")
    op.drop_index("ix_flight_summaries_callsign", table_name="flight_summaries")
    op.drop_index("ix_flight_summaries_arrival", table_name="flight_summaries")

    op.drop_table("flight_summaries")
    op.drop_index("ix_controller_summaries_ended_at", table_name="controller_summaries")
    op.drop_index("ix_controller_summaries_cid", table_name="controller_summaries")
    op.drop_index("ix_controller_summaries_callsign", table_name="controller_summaries")

    op.drop_table("controller_summaries")
    op.drop_index(
        "ix_controller_frequencies_controller_session_id", table_name="controller_frequencies"
    )

    op.drop_table("controller_frequencies")
