"""The transactional outbox: each snapshot's events, written in the snapshot's own transaction.

A snapshot and its events commit together or not at all, so a process killed between the
commit and the publish loses nothing: the relay (``brokers.nats.relay``) reads the rows oldest
first, publishes them and deletes them once the broker acknowledged them.

Row ids follow the commit order of the snapshots: only the leader writes snapshots, one
transaction after the other, so reading by id is reading in snapshot order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, insert, select

from vatsim_collector.events.event import Event, encode_event
from vatsim_collector.store import schema as t

__all__ = ["EventOutbox", "OutboxBacklog", "OutboxRow", "backlog", "delete_rows", "read_batch"]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: str
    subject: str
    snapshot_id: int | None
    body: bytes  # the event as the bus carries it (``events.event.encode_event``)
    created_at: datetime


@dataclass(frozen=True)
class OutboxBacklog:
    rows: int
    oldest_created_at: datetime | None

    def age_seconds(self, now: datetime) -> float:
        """How long the oldest row has waited; 0 for an empty outbox."""
        if self.oldest_created_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_created_at).total_seconds())


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EventOutbox:
    """Writes events into the outbox, each under ``<subject_prefix>.<event type>``."""

    def __init__(self, subject_prefix: str, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.subject_prefix = subject_prefix
        self._clock = clock

    def subject(self, event_type: str) -> str:
        return f"{self.subject_prefix}.{event_type}"

    def write(self, conn: Connection, events: Sequence[Event], *, snapshot_id: int | None) -> int:
        """Add ``events`` in their order, in ``conn``'s transaction; how many were added."""
        if not events:
            return 0
        now = self._clock()
        conn.execute(
            insert(t.event_outbox),
            [
                {
                    "event_id": event.id,
                    "subject": self.subject(event.type),
                    "snapshot_id": snapshot_id,
                    "event": encode_event(event).decode(),
                    "created_at": now,
                }
                for event in events
            ],
        )
        return len(events)


def read_batch(conn: Connection, limit: int) -> list[OutboxRow]:
    """The ``limit`` oldest rows, oldest first."""
    o = t.event_outbox.c
    rows = conn.execute(
        select(o.id, o.event_id, o.subject, o.snapshot_id, o.event, o.created_at)
        .order_by(o.id)
        .limit(limit)
    ).all()
    return [
        OutboxRow(int(r.id), r.event_id, r.subject, r.snapshot_id, r.event.encode(), r.created_at)
        for r in rows
    ]


def delete_rows(conn: Connection, ids: Sequence[int]) -> int:
    """Remove the rows the broker acknowledged; how many were there."""
    if not ids:
        return 0
    result = conn.execute(delete(t.event_outbox).where(t.event_outbox.c.id.in_(list(ids))))
    return int(result.rowcount)


def backlog(conn: Connection) -> OutboxBacklog:
    """Rows waiting, and when the oldest of them was written."""
    o = t.event_outbox.c
    count = conn.execute(select(func.count()).select_from(t.event_outbox)).scalar_one()
    oldest = conn.execute(select(o.created_at).order_by(o.id).limit(1)).scalar_one_or_none()
    return OutboxBacklog(int(count), oldest)
