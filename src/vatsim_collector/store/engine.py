"""Builds SQLAlchemy engines from a database URL, with the settings each backend needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class PoolSettings:
    size: int = 5
    max_overflow: int = 5
    timeout: float = 30.0
    recycle: float = 1800.0


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the API read while the collector writes; NORMAL is durable across
        # application crashes in WAL mode and only risks the last commit on power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        # Enough page cache for the B-tree pages every snapshot touches.
        cursor.execute("PRAGMA cache_size=-65536")
    finally:
        cursor.close()


def create_db_engine(url: str, *, pool: PoolSettings | None = None, echo: bool = False) -> Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file if needed."""
    pool = pool or PoolSettings()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {
        "echo": echo,
        "pool_size": pool.size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.timeout,
        "pool_recycle": pool.recycle,
    }
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, **common)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A dead server must fail fast, not hang the collector for the OS default of minutes.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5}, **common)
