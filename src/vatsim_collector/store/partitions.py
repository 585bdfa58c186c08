"""Daily partitions of the volume tables on PostgreSQL.

Snapshot ids are milliseconds since the epoch, so one UTC day is one id range. A partition is
created, in its own short transaction, before the first snapshot of its day is written, and a
few days ahead by the maintenance job; retention drops whole partitions. SQLite has no
partitions: everything here is a no-op there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from vatsim_collector.store.database import DatabaseService

PARTITIONED_TABLES = ("positions", "transceivers")
DAY_MS = 86_400_000
_EPOCH_DAY = date(1970, 1, 1)
# A transaction-level advisory lock taken before creating partitions (any fixed 64-bit number,
# distinct from the leader lock's). CREATE TABLE IF NOT EXISTS is not safe against a concurrent
# CREATE of the same table: the loser fails with "already exists". Retention's look-ahead and
# the first snapshot of a day do create the same day's partitions at the same moment.
PARTITION_LOCK_KEY = 0x7661_7473_7061_7274


def day_of(snapshot_id: int) -> date:
    return _EPOCH_DAY + timedelta(days=snapshot_id // DAY_MS)


def day_bounds(day: date) -> tuple[int, int]:
    start = (day - _EPOCH_DAY).days * DAY_MS
    return start, start + DAY_MS


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    day: date


class PartitionManager:
    def __init__(self) -> None:
        self._ready: set[date] = set()

    @staticmethod
    def applies(engine: Engine | Connection) -> bool:
        return engine.dialect.name == "postgresql"

    def ensure_for(self, db: DatabaseService | Engine, snapshot_id: int) -> None:
        """Make sure the day of ``snapshot_id`` has its partitions (committed on return)."""
        day = day_of(snapshot_id)
        service = DatabaseService.of(db)
        if day in self._ready or not self.applies(service.engine):
            return
        with service.write("partitions.create") as conn:
            self.create(conn, day)
        self._ready.add(day)

    def ensure_ahead(
        self, db: DatabaseService | Engine, days: int, today: date | None = None
    ) -> None:
        service = DatabaseService.of(db)
        if not self.applies(service.engine):
            return
        first = today or datetime.now(UTC).date()
        for offset in range(days + 1):
            day = first + timedelta(days=offset)
            if day not in self._ready:
                with service.write("partitions.create") as conn:
                    self.create(conn, day)
                self._ready.add(day)

    @staticmethod
    def create(conn: Connection, day: date) -> None:
        start, end = day_bounds(day)
        quote = conn.dialect.identifier_preparer.quote
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
        for table in PARTITIONED_TABLES:
            conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {quote(partition_name(table, day))} "
                    f"PARTITION OF {quote(table)} FOR VALUES FROM ({start}) TO ({end})"
                )
            )

    @staticmethod
    def existing(conn: Connection, table: str) -> list[Partition]:
        rows = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent"
                " WHERE p.relname = :table ORDER BY c.relname"
            ),
            {"table": table},
        ).scalars()
        found = []
        prefix = f"{table}_p"
        for name in rows:
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                day = datetime.strptime(name[len(prefix) :], "%Y%m%d").date()
                found.append(Partition(table, name, day))
        return found

    def forget(self, day: date) -> None:
        """Called when a day's partitions are dropped, so they are recreated if needed."""
        self._ready.discard(day)
