"""Row estimates and on-disk sizes per table, cheap enough for every health call.

PostgreSQL answers from its catalogue (``reltuples``, ``pg_total_relation_size``). SQLite has
no catalogue counts: ``ANALYZE`` with a small ``analysis_limit`` samples each index instead of
reading the table, and ``sqlite_stat1`` then holds the estimates. Results are cached for
``ttl`` seconds either way.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from vatsim_collector.store.manager import DatabaseManager
from vatsim_collector.store.schema import metadata

TABLES = tuple(t.name for t in metadata.sorted_tables)


@dataclass(frozen=True)
class TableStat:
    name: str
    rows_estimate: int | None
    bytes: int | None


@dataclass(frozen=True)
class StorageStats:
    measured_at: datetime
    tables: tuple[TableStat, ...]
    total_bytes: int | None
    growth_bytes_per_hour: float | None
    growth_rows_per_hour: dict[str, float]


def _postgres(conn: Connection) -> tuple[list[TableStat], int]:
    # reltuples is -1 until a table is first analysed (autovacuum may take minutes): sample
    # those once, which costs a bounded ANALYZE rather than a full COUNT(*).
    unanalysed = (
        conn.execute(
            text(
                "SELECT c.relname FROM pg_class c"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
                " AND c.reltuples < 0"
            )
        )
        .scalars()
        .all()
    )
    quote = conn.dialect.identifier_preparer.quote
    for name in unanalysed:
        conn.execute(text(f"ANALYZE {quote(name)}"))
    conn.commit()
    rows = conn.execute(
        text(
            # A partitioned parent has no rows of its own: add up its partitions.
            "SELECT p.relname,"
            " COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint,"
            " COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint"
            " FROM pg_class p"
            " LEFT JOIN pg_inherits i ON i.inhparent = p.oid"
            " JOIN pg_class c ON c.oid = COALESCE(i.inhrelid, p.oid)"
            " WHERE p.relname = ANY(:names) AND p.relnamespace = 'public'::regnamespace"
            " GROUP BY p.relname"
        ),
        {"names": list(TABLES)},
    ).all()
    stats = [TableStat(name, int(rows_), int(size)) for name, rows_, size in rows]
    total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return stats, int(total)


def _sqlite(conn: Connection, path: str | None) -> tuple[list[TableStat], int | None]:
    conn.exec_driver_sql("PRAGMA analysis_limit=400")
    conn.exec_driver_sql("ANALYZE")
    conn.commit()
    estimates: dict[str, int] = {}
    for tbl, stat in conn.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1"):
        first = str(stat).split(" ", 1)[0]
        if first.isdigit():
            estimates[tbl] = max(estimates.get(tbl, 0), int(first))
    stats = [TableStat(name, estimates.get(name, 0), None) for name in TABLES]
    total = None
    if path is not None:
        total = sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    return stats, total


class TableStatsCache:
    def __init__(
        self,
        manager: DatabaseManager,
        *,
        ttl: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.manager = manager
        self.ttl = ttl
        self._clock = clock
        self._cached: StorageStats | None = None
        self._cached_at = 0.0
        self._lock = threading.Lock()
        # (time, total bytes, rows per table), one sample per refresh, for growth per hour.
        self._history: deque[tuple[datetime, int | None, dict[str, int]]] = deque(maxlen=240)

    def get(self, *, force: bool = False) -> StorageStats:
        with self._lock:
            if not force and self._cached and time.monotonic() - self._cached_at < self.ttl:
                return self._cached
            tables: list[TableStat]
            total: int | None
            with self.manager.connect() as conn:
                if self.manager.backend == "postgresql":
                    tables, total = _postgres(conn)
                else:
                    tables, total = _sqlite(conn, self.manager.sqlite_file)
            now = self._clock()
            rows = {t.name: t.rows_estimate or 0 for t in tables}
            self._history.append((now, total, rows))
            growth_bytes, growth_rows = self._growth(now)
            self._cached = StorageStats(
                measured_at=now,
                tables=tuple(tables),
                total_bytes=total,
                growth_bytes_per_hour=growth_bytes,
                growth_rows_per_hour=growth_rows,
            )
            self._cached_at = time.monotonic()
            return self._cached

    def _growth(self, now: datetime) -> tuple[float | None, dict[str, float]]:
        """Growth over the last hour of samples (or as much as there is, at least a minute)."""
        window = [s for s in self._history if (now - s[0]).total_seconds() <= 3600]
        if len(window) < 2:
            return None, {}
        (t0, b0, r0), (t1, b1, r1) = window[0], window[-1]
        hours = (t1 - t0).total_seconds() / 3600
        if hours < 1 / 60:
            return None, {}
        growth_bytes = None if b0 is None or b1 is None else round((b1 - b0) / hours, 1)
        growth_rows = {name: round((r1.get(name, 0) - r0.get(name, 0)) / hours, 1) for name in r1}
        return growth_bytes, growth_rows
