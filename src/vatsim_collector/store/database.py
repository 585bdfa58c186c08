"""DatabaseService: every write and named query of the application goes through here.

Each use is a named scope: ``with db.write("ingest.snapshot") as conn: ...``. The scope times
the whole block, counts it (and its failure) under its name, and feeds the slow-query log, so
the statistics describe exactly what the application does, by purpose rather than by SQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.pool import QueuePool

from vatsim_collector.config import Settings
from vatsim_collector.store.manager import DatabaseManager, PoolStatus
from vatsim_collector.store.querystats import QueryStats, SlowQuery
from vatsim_collector.store.tablestats import StorageStats, TableStatsCache


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DatabaseService:
    def __init__(
        self,
        manager: DatabaseManager,
        *,
        slow_query_ms: float = 500.0,
        slow_log_size: int = 100,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.manager = manager
        self.queries = QueryStats(slow_query_ms=slow_query_ms, slow_log_size=slow_log_size)
        self.storage = TableStatsCache(manager, clock=clock)
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseService:
        return cls(
            DatabaseManager.from_settings(settings),
            slow_query_ms=settings.slow_query_ms,
            slow_log_size=settings.slow_query_log_size,
        )

    @classmethod
    def for_engine(cls, engine: Engine) -> DatabaseService:
        """A service around an engine someone else built (scripts and tests)."""
        return cls(DatabaseManager(engine))

    @classmethod
    def of(cls, db: DatabaseService | Engine) -> DatabaseService:
        """``db`` itself, or a service around a bare engine (tests and tools pass one)."""
        return db if isinstance(db, DatabaseService) else cls.for_engine(db)

    @property
    def engine(self) -> Engine:
        return self.manager.engine

    @property
    def backend(self) -> str:
        return self.manager.backend

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Count and time a block under ``name`` (a failure is an exception leaving it)."""
        started = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.queries.record(name, elapsed, failed=failed, at=self._clock())

    @contextmanager
    def read(self, name: str) -> Iterator[Connection]:
        """A connection for the named read-only query."""
        with self.timed(name), self.manager.connect() as conn:
            yield conn

    @contextmanager
    def read_consistent(self, name: str) -> Iterator[Connection]:
        """A connection for a named read of several queries that must all see the same
        committed state while others write (``DatabaseManager.snapshot``)."""
        with self.timed(name), self.manager.snapshot() as conn:
            yield conn

    @contextmanager
    def write(self, name: str) -> Iterator[Connection]:
        """A transaction for the named write, committed when the block succeeds."""
        with self.timed(name), self.manager.begin() as conn:
            yield conn

    def idle_connections(self) -> int | None:
        """Connections open and free in the pool, or None for a pool that does not keep any."""
        pool = self.engine.pool
        return pool.checkedin() if isinstance(pool, QueuePool) else None

    def pool_status(self) -> PoolStatus:
        return self.manager.pool_status()

    def query_summaries(self) -> dict[str, dict[str, float | int]]:
        return self.queries.summaries()

    def slow_queries(self) -> list[SlowQuery]:
        return self.queries.slow_queries()

    def storage_stats(self, *, force: bool = False) -> StorageStats:
        with self.timed("service.table_stats"):
            return self.storage.get(force=force)

    def dispose(self) -> None:
        self.manager.dispose()
