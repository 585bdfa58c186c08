"""What the health monitor reports of the outbox and of NATS (``store.health.HealthCheck``).

The backlog is counted in the database, so every node reports it, whichever relays; the
connection is this node's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.brokers.nats.connection import NatsConnection
from vatsim_collector.store import outbox
from vatsim_collector.store.database import DatabaseService

__all__ = ["OutboxHealth"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OutboxHealth:
    db: DatabaseService
    connection: NatsConnection
    # Rows waiting above which the service is degraded.
    backlog_degraded: int
    clock: Callable[[], datetime] = field(default=_utc_now)
    last: outbox.OutboxBacklog | None = None

    def __call__(self) -> list[str]:
        reasons: list[str] = []
        if not self.connection.connected:
            reasons.append("NATS is not connected: events wait in the outbox")
        try:
            with self.db.read("health.outbox") as conn:
                self.last = outbox.backlog(conn)
        except SQLAlchemyError:
            return reasons  # the database's own probe reports it
        waiting = self.last
        if waiting.rows > self.backlog_degraded:
            reasons.append(
                f"{waiting.rows} events waiting in the outbox (limit {self.backlog_degraded}),"
                f" the oldest for {waiting.age_seconds(self.clock()):.0f} s"
            )
        return reasons
