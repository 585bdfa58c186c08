"""The one place that owns the engine: connection scopes and live pool status."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.pool import QueuePool

from vatsim_collector.config import Settings
from vatsim_collector.store.engine import PoolSettings, create_db_engine, sqlite_path


@dataclass(frozen=True)
class PoolStatus:
    size: int
    checked_out: int
    overflow: int
    waiting: int
    capacity: int

    @property
    def saturation(self) -> float:
        return self.checked_out / self.capacity if self.capacity else 0.0


class DatabaseManager:
    """Hands out connections that are always returned, and knows how busy the pool is."""

    def __init__(self, engine: Engine, *, max_overflow: int | None = None) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._max_overflow = max_overflow
        self._waiting = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseManager:
        pool = PoolSettings(
            size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            timeout=settings.db_pool_timeout,
            recycle=settings.db_pool_recycle,
        )
        return cls(
            create_db_engine(settings.database_url, pool=pool), max_overflow=pool.max_overflow
        )

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_file(self) -> str | None:
        path = sqlite_path(self.engine.url.render_as_string(hide_password=False))
        return None if path is None else str(path)

    @contextmanager
    def _checked_out(self, begin: bool) -> Iterator[Connection]:
        with self._lock:
            self._waiting += 1
        try:
            conn = self.engine.connect()
        finally:
            with self._lock:
                self._waiting -= 1
        # The with-blocks return the connection to the pool however the caller leaves.
        with conn:
            if begin:
                with conn.begin():
                    yield conn
            else:
                yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._checked_out(begin=False) as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside a transaction committed on success, rolled back on error."""
        with self._checked_out(begin=True) as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection whose queries all see the database as of one moment.

        Another process may commit between two statements of a read made of several (the live
        state a follower rebuilds); at PostgreSQL's default READ COMMITTED each statement would
        see a different database. REPEATABLE READ (read only: it never fails to serialise) on
        PostgreSQL, and one deferred transaction on SQLite (WAL: a reader keeps the snapshot its
        first read took), give every statement the same one."""
        with self._checked_out(begin=False) as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                # The driver starts no transaction for a SELECT by itself; the pool's rollback
                # on return ends this one.
                conn.exec_driver_sql("BEGIN")
            yield conn

    def pool_status(self) -> PoolStatus:
        pool = self.engine.pool
        with self._lock:
            waiting = self._waiting
        if isinstance(pool, QueuePool):
            size = pool.size()
            overflow_allowed = self._max_overflow if self._max_overflow is not None else 0
            return PoolStatus(
                size=size,
                checked_out=pool.checkedout(),
                overflow=max(pool.overflow(), 0),
                waiting=waiting,
                capacity=size + max(overflow_allowed, 0),
            )
        checked_out = int(getattr(pool, "checkedout", lambda: 0)())
        return PoolStatus(size=1, checked_out=checked_out, overflow=0, waiting=waiting, capacity=1)

    def dispose(self) -> None:
        self.engine.dispose()
