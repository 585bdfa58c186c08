"""several nodes: leadership and fencing, node registry, breaker resets, event outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

``cluster_leadership`` starts with its one row at epoch 0 and no leader. ``error_records``
gains the node that raised each record, ``snapshots`` the epoch of the leader that stored it
(NULL for older rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vatsim_collector.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    leadership = op.create_table(
        "cluster_leadership",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("leader_node", sa.Text(), nullable=True),
        sa.Column("elected_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_leadership")),
    )
    op.bulk_insert(leadership, [{"id": 1, "epoch": 0, "leader_node": None, "elected_at": None}])
    op.create_table(
        "cluster_nodes",
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("breakers", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_cluster_nodes")),
    )
    op.create_table(
        "breaker_resets",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("breaker", sa.Text(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaker_resets")),
    )
    op.create_index("ix_breaker_resets_node", "breaker_resets", ["node"], unique=False)
    op.create_table(
        "event_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_outbox_event_id")),
    )
    # Plain ADD COLUMN on both backends: no SQLite table rebuild, so the views stay.
    op.add_column("error_records", sa.Column("node", sa.Text(), nullable=True))
    op.add_column("snapshots", sa.Column("leader_epoch", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite 3.35 and later): a batch rebuild would break the views.
    op.execute("ALTER TABLE snapshots DROP COLUMN leader_epoch")
    op.execute("ALTER TABLE error_records DROP COLUMN node")
    op.drop_table("event_outbox")
    op.drop_index("ix_breaker_resets_node", table_name="breaker_resets")
    op.drop_table("breaker_resets")
    op.drop_table("cluster_nodes")
    op.drop_table("cluster_leadership")
