"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vatsim_collector.store.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "atis_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("logon_time", UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("server", sa.Text(), nullable=True),
        sa.Column("frequency", sa.Text(), nullable=True),
        sa.Column("facility", sa.SmallInteger(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("visual_range", sa.Integer(), nullable=True),
        sa.Column("is_observer", sa.Boolean(), nullable=False),
        sa.Column("is_supervisor", sa.Boolean(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_atis_sessions")),
        sa.UniqueConstraint(
            "cid", "callsign", "logon_time", name=op.f("uq_atis_sessions_cid_callsign_logon_time")
        ),
    )
    op.create_index("ix_atis_sessions_ended_at", "atis_sessions", ["ended_at"], unique=False)

    op.create_table(
        "controller_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("logon_time", UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("server", sa.Text(), nullable=True),
        sa.Column("frequency", sa.Text(), nullable=True),
        sa.Column("facility", sa.SmallInteger(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("visual_range", sa.Integer(), nullable=True),
        sa.Column("is_observer", sa.Boolean(), nullable=False),
        sa.Column("is_supervisor", sa.Boolean(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controller_sessions")),
        sa.UniqueConstraint(
            "cid",
            "callsign",
            "logon_time",
            name=op.f("uq_controller_sessions_cid_callsign_logon_time"),
        ),
    )
    op.create_index(
        "ix_controller_sessions_ended_at", "controller_sessions", ["ended_at"], unique=False
    )

    op.create_table(
        "error_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("error_type", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_records")),
    )
    op.create_index("ix_error_records_occurred_at", "error_records", ["occurred_at"], unique=False)

    op.create_table(
        "flights",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("departure", sa.Text(), nullable=True),
        sa.Column("arrival", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flights")),
    )
    op.create_index(
        "ix_flights_callsign_started_at", "flights", ["callsign", "started_at"], unique=False
    )
    op.create_index("ix_flights_cid_callsign", "flights", ["cid", "callsign"], unique=False)

    op.create_table(
        "prefiles",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("flight_rules", sa.Text(), nullable=True),
        sa.Column("aircraft", sa.Text(), nullable=True),
        sa.Column("aircraft_faa", sa.Text(), nullable=True),
        sa.Column("aircraft_short", sa.Text(), nullable=True),
        sa.Column("departure", sa.Text(), nullable=True),
        sa.Column("arrival", sa.Text(), nullable=True),
        sa.Column("alternate", sa.Text(), nullable=True),
        sa.Column("cruise_tas", sa.Text(), nullable=True),
        sa.Column("altitude", sa.Text(), nullable=True),
        sa.Column("deptime", sa.Text(), nullable=True),
        sa.Column("enroute_time", sa.Text(), nullable=True),
        sa.Column("fuel_time", sa.Text(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("assigned_transponder", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prefiles")),
    )
    op.create_index("ix_prefiles_cid_callsign", "prefiles", ["cid", "callsign"], unique=False)
    op.create_index("ix_prefiles_ended_at", "prefiles", ["ended_at"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("update_timestamp", UTCDateTime(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("pilots", sa.Integer(), nullable=False),
        sa.Column("controllers", sa.Integer(), nullable=False),
        sa.Column("atis", sa.Integer(), nullable=False),
        sa.Column("prefiles", sa.Integer(), nullable=False),
        sa.Column("transceivers", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        sa.UniqueConstraint("update_timestamp", name=op.f("uq_snapshots_update_timestamp")),
    )
    op.create_index(
        "ix_snapshots_status_update_timestamp",
        "snapshots",
        ["status", "update_timestamp"],
        unique=False,
    )

    op.create_table(
        "atis_revisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "atis_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("atis_code", sa.Text(), nullable=True),
        sa.Column("text_atis", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["atis_session_id"],
            ["atis_sessions.id"],
            name=op.f("fk_atis_revisions_atis_session_id_atis_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_atis_revisions")),
    )
    op.create_index(
        "ix_atis_revisions_atis_session_id", "atis_revisions", ["atis_session_id"], unique=False
    )

    op.create_table(
        "held_documents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("body_gzip", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_held_documents_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_documents")),
    )
    op.create_index(
        "ix_held_documents_received_at", "held_documents", ["received_at"], unique=False
    )

    op.create_table(
        "pilot_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cid", sa.Integer(), nullable=False),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("logon_time", UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("server", sa.Text(), nullable=True),
        sa.Column(
            "flight_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("pilot_rating", sa.SmallInteger(), nullable=True),
        sa.Column("military_rating", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_pilot_sessions_flight_id_flights")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pilot_sessions")),
        sa.UniqueConstraint(
            "cid", "callsign", "logon_time", name=op.f("uq_pilot_sessions_cid_callsign_logon_time")
        ),
    )
    op.create_index("ix_pilot_sessions_ended_at", "pilot_sessions", ["ended_at"], unique=False)
    op.create_index("ix_pilot_sessions_flight_id", "pilot_sessions", ["flight_id"], unique=False)

    op.create_table(
        "flight_plans",
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
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("flight_rules", sa.Text(), nullable=True),
        sa.Column("aircraft", sa.Text(), nullable=True),
        sa.Column("aircraft_faa", sa.Text(), nullable=True),
        sa.Column("aircraft_short", sa.Text(), nullable=True),
        sa.Column("departure", sa.Text(), nullable=True),
        sa.Column("arrival", sa.Text(), nullable=True),
        sa.Column("alternate", sa.Text(), nullable=True),
        sa.Column("cruise_tas", sa.Text(), nullable=True),
        sa.Column("altitude", sa.Text(), nullable=True),
        sa.Column("deptime", sa.Text(), nullable=True),
        sa.Column("enroute_time", sa.Text(), nullable=True),
        sa.Column("fuel_time", sa.Text(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("assigned_transponder", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["flight_id"], ["flights.id"], name=op.f("fk_flight_plans_flight_id_flights")
        ),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_flight_plans_pilot_session_id_pilot_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flight_plans")),
    )
    op.create_index("ix_flight_plans_flight_id", "flight_plans", ["flight_id"], unique=False)
    op.create_index(
        "ix_flight_plans_pilot_session_id", "flight_plans", ["pilot_session_id"], unique=False
    )

    op.create_table(
        "positions",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "pilot_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("altitude", sa.Integer(), nullable=False),
        sa.Column("groundspeed", sa.SmallInteger(), nullable=False),
        sa.Column("heading", sa.SmallInteger(), nullable=False),
        sa.Column("transponder", sa.SmallInteger(), nullable=True),
        sa.Column("qnh_mb", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_positions_pilot_session_id_pilot_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name=op.f("fk_positions_snapshot_id_snapshots")
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "pilot_session_id", name=op.f("pk_positions")),
        postgresql_partition_by="RANGE (snapshot_id)",
        sqlite_with_rowid=False,
    )
    op.create_table(
        "transceivers",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("callsign", sa.Text(), nullable=False),
        sa.Column("transceiver_id", sa.SmallInteger(), nullable=False),
        sa.Column("frequency_hz", sa.Integer(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("height_msl_m", sa.Float(), nullable=True),
        sa.Column("height_agl_m", sa.Float(), nullable=True),
        sa.Column(
            "pilot_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "controller_session_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "atis_session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["atis_session_id"],
            ["atis_sessions.id"],
            name=op.f("fk_transceivers_atis_session_id_atis_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["controller_session_id"],
            ["controller_sessions.id"],
            name=op.f("fk_transceivers_controller_session_id_controller_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["pilot_session_id"],
            ["pilot_sessions.id"],
            name=op.f("fk_transceivers_pilot_session_id_pilot_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name=op.f("fk_transceivers_snapshot_id_snapshots")
        ),
        sa.PrimaryKeyConstraint(
            "snapshot_id", "callsign", "transceiver_id", name=op.f("pk_transceivers")
        ),
        postgresql_partition_by="RANGE (snapshot_id)",
        sqlite_with_rowid=False,
    )


def downgrade() -> None:

    op.drop_table("transceivers")
    op.drop_table("positions")
    op.drop_index("ix_flight_plans_pilot_session_id", table_name="flight_plans")
    op.drop_index("ix_flight_plans_flight_id", table_name="flight_plans")

    op.drop_table("flight_plans")
    op.drop_index("ix_pilot_sessions_flight_id", table_name="pilot_sessions")
    op.drop_index("ix_pilot_sessions_ended_at", table_name="pilot_sessions")

    op.drop_table("pilot_sessions")
    op.drop_index("ix_held_documents_received_at", table_name="held_documents")

    op.drop_table("held_documents")
    op.drop_index("ix_atis_revisions_atis_session_id", table_name="atis_revisions")

    op.drop_table("atis_revisions")
    op.drop_index("ix_snapshots_status_update_timestamp", table_name="snapshots")

    op.drop_table("snapshots")
    op.drop_index("ix_prefiles_ended_at", table_name="prefiles")
    op.drop_index("ix_prefiles_cid_callsign", table_name="prefiles")

    op.drop_table("prefiles")
    op.drop_index("ix_flights_cid_callsign", table_name="flights")
    op.drop_index("ix_flights_callsign_started_at", table_name="flights")

    op.drop_table("flights")
    op.drop_index("ix_error_records_occurred_at", table_name="error_records")

    op.drop_table("error_records")
    op.drop_index("ix_controller_sessions_ended_at", table_name="controller_sessions")

    op.drop_table("controller_sessions")
    op.drop_index("ix_atis_sessions_ended_at", table_name="atis_sessions")

    op.drop_table("atis_sessions")
