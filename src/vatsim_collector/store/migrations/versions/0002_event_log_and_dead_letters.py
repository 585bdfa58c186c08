"""event log and dead letters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vatsim_collector.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_time_id", "events", ["time", "id"], unique=False)
    op.create_index("ix_events_type_time", "events", ["type", "time"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("handler", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_category", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("event_id", "handler", name=op.f("uq_dead_letters_event_id_handler")),
    )
    op.create_index("ix_dead_letters_handler", "dead_letters", ["handler"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dead_letters_handler", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_events_type_time", table_name="events")
    op.drop_index("ix_events_time_id", table_name="events")
    op.drop_table("events")
