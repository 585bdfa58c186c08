"""The lock that makes one collector the writer of a database.

PostgreSQL: a session-level advisory lock on a connection of its own. The session is told to
end itself after ``lease`` seconds without a statement (``idle_session_timeout``), and the
holder runs a statement several times per lease: a holder that dies, freezes or loses the
network loses the lock within one lease, and a standby can take it. A new leader then moves
the fencing epoch on (store/cluster.py), which is what keeps a frozen ex-leader from
committing if it ever wakes up.

SQLite: an exclusive ``flock`` on a file beside the database, held for the process's life; a
second collector on the same file is refused at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from vatsim_collector.errors.exceptions import ConfigurationError

# The advisory lock's key: any fixed 64-bit number, the same for every collector (advisory
# locks are per database, so collectors of different databases never meet).
LEADER_LOCK_KEY = 0x5641_5453_494D_4C44


class LeaderLock:
    """One PostgreSQL session that holds, or tries to take, the leader lock.

    Used from one thread at a time (the elector's)."""

    def __init__(self, engine: Engine, *, lease_seconds: float) -> None:
        # A connection of its own, outside the pool: it lives as long as the leadership.
        self._engine = create_engine(
            engine.url, poolclass=NullPool, connect_args={"connect_timeout": 5}
        )
        self.lease_seconds = lease_seconds
        self._conn: Connection | None = None
        self.held = False

    def _session(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            millis = int(self.lease_seconds * 1000)
            conn.execute(text(f"SET idle_session_timeout = {millis}"))
            conn.execute(text("SET application_name = 'vatsim-collector leader lock'"))
            self._conn = conn
        return self._conn

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another session holds it or the database
        cannot be reached."""
        try:
            got = bool(
                self._session()
                .execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY})
                .scalar_one()
            )
        except SQLAlchemyError:
            self._drop()
            return False
        self.held = got
        return got

    def keepalive(self) -> bool:
        """Whether the lock is still held; also what keeps the session from timing out."""
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            # The session ended (timed out while this process was frozen, or the server went
            # away): its lock went with it.
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and self.held:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY}
                )
        self._drop()

    def _drop(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()

    def close(self) -> None:
        self.release()
        self._engine.dispose()


class DatabaseInUse(ConfigurationError):
    """Another collector already writes this SQLite file."""


class SqliteFileLock:
    """Held for the life of the process: two collectors on one SQLite file would both write."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".collector-lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``DatabaseInUse`` naming the file and the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the process's life)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DatabaseInUse(
                f"another collector (pid {holder}) is already running on"
                f" {self.path.with_name(self.path.name.removesuffix('.collector-lock'))};"
                " one SQLite file takes one collector. Stop it first, or use PostgreSQL for a"
                " hot standby (docs/scaling.md)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
