"""Read-only SQL of the history endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from vatsim_collector.store import schema as t


def counts_per_bucket(conn: Connection, start: datetime, size_ms: int) -> Sequence[Any]:
    """``(bucket index, most pilots, most controllers, snapshots)`` per bucket since ``start``,
    for the accepted snapshots, oldest first."""
    s = t.snapshots
    # Snapshot ids are update_timestamp in epoch milliseconds: integer division buckets them
    # in SQL on both backends, and the status/update_timestamp index bounds the scan.
    bucket = (s.c.id // size_ms).label("bucket")
    query = (
        select(
            bucket,
            func.max(s.c.pilots),
            func.max(s.c.controllers),
            func.count(),
        )
        .where(s.c.status == "accepted", s.c.update_timestamp >= start)
        .group_by(bucket)
        .order_by(bucket)
    )
    return conn.execute(query).all()
