"""Throwaway databases for the benchmark, their on-disk sizes, and a description of the machine."""

from __future__ import annotations

import hashlib
import os
import platform
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

SOURCE = Path(__file__).resolve().parent.parent / "src"
# Where every bench writes its JSON results (gitignored).
RESULTS = Path(__file__).resolve().parent / "results"
# The largest shared snapshot (2021-01-03 14:29:30Z, 1,383 pilots): most benches' input.
LARGEST_SNAPSHOT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "feeds"
    / "vatsim-data-20210103T142930Z.json"
)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1/postgres"
BACKENDS = ("sqlite", "postgresql")


@contextmanager
def _pg_database(admin_url: str, template: str | None = None) -> Iterator[Engine]:
    """A new PostgreSQL database (a copy of ``template`` if given), dropped on exit."""
    name = f"vcbench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        create = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        for attempt in range(40):  # a template must have no other sessions (autovacuum, say)
            try:
                with admin.connect() as conn:
                    conn.execute(text(create))
                break
            except OperationalError:
                if attempt == 39:
                    raise
                time.sleep(0.5)
        engine = create_db_engine(make_url(admin_url).set(database=name).render_as_string(False))
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def fresh_database(backend: str, pg_admin_url: str = PG_ADMIN_URL) -> Iterator[Engine]:
    """A migrated, empty database that is deleted on exit: a temp-dir file or a new PG database."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="vcbench-") as tmp:
            engine = create_db_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            try:
                upgrade(engine)
                yield engine
            finally:
                engine.dispose()
    else:
        with _pg_database(pg_admin_url) as engine:
            upgrade(engine)
            yield engine


@contextmanager
def copied_database(engine: Engine, pg_admin_url: str = PG_ADMIN_URL) -> Iterator[Engine]:
    """A copy of ``engine``'s database as it is now, deleted on exit."""
    if engine.dialect.name != "sqlite":
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the source to be idle
        with _pg_database(pg_admin_url, template=engine.url.database) as copy:
            yield copy
        return
    with tempfile.TemporaryDirectory(prefix="vcbench-copy-") as tmp:
        path = Path(tmp) / "copy.db"
        source = engine.raw_connection()
        try:
            target = sqlite3.connect(path)
            driver = source.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.backup(target)
            target.close()
        finally:
            source.close()
        copy = create_db_engine(f"sqlite:///{path}")
        try:
            yield copy
        finally:
            copy.dispose()


def sqlite_page_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        size = conn.execute(text("PRAGMA page_size")).scalar_one()
    return int(pages) * int(size)


def _sqlite_storage(conn: Connection, table: str) -> dict[str, Any]:
    indexes = [
        str(row[0])
        for row in conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
            {"t": table},
        )
    ]

    def stat(name: str) -> tuple[int, int, int]:
        row = conn.execute(
            text(
                "SELECT COALESCE(SUM(pgsize), 0), COALESCE(SUM(payload), 0),"
                " COALESCE(SUM(unused), 0) FROM dbstat WHERE name = :n"
            ),
            {"n": name},
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    table_bytes, payload, unused = stat(table)
    return {
        "method": "dbstat",
        "table_bytes": table_bytes,
        "index_bytes": sum(stat(name)[0] for name in indexes),
        "indexes": indexes,
        "payload_bytes": payload,
        "unused_bytes": unused,
    }


def _pg_storage(conn: Connection, table: str) -> dict[str, Any]:
    conn.execute(text(f"VACUUM ANALYZE {table}"))
    # A partitioned table has no storage of its own: add up its leaf partitions.
    # pg_partition_tree lists no leaves of a plain table: then the table is its own leaf.
    row = conn.execute(
        text(
            "WITH leaves AS (SELECT relid FROM pg_partition_tree(CAST(:t AS regclass))"
            " WHERE isleaf UNION SELECT CAST(:t AS regclass) WHERE NOT EXISTS"
            " (SELECT 1 FROM pg_partition_tree(CAST(:t AS regclass)) WHERE isleaf))"
            " SELECT COALESCE(SUM(pg_relation_size(relid)), 0),"
            " COALESCE(SUM(pg_table_size(relid)), 0),"
            " COALESCE(SUM(pg_indexes_size(relid)), 0), COUNT(*) FROM leaves"
        ),
        {"t": table},
    ).one()
    return {
        "method": "pg_table_size + pg_indexes_size of the leaf partitions after VACUUM ANALYZE",
        "partitions": int(row[3]),
        "heap_main_fork_bytes": int(row[0]),
        "table_bytes": int(row[1]),
        "index_bytes": int(row[2]),
    }


def storage(
    engine: Engine, table: str, *, sqlite_fallback_bytes: int | None = None
) -> dict[str, Any]:
    """Bytes on disk of ``table`` (table and index parts) and per row.

    ``sqlite_fallback_bytes`` is the growth of the whole SQLite file over the run, used if
    the ``dbstat`` virtual table is missing from this SQLite build.
    """
    autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with autocommit as conn:
        rows = int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
        if engine.dialect.name == "postgresql":
            report = _pg_storage(conn, table)
        else:
            try:
                report = _sqlite_storage(conn, table)
            except Exception as exc:  # no dbstat in this build
                report = {
                    "method": f"page_count delta of the whole file (dbstat unavailable: {exc})",
                    "table_bytes": sqlite_fallback_bytes or 0,
                    "index_bytes": 0,
                }
    total = report["table_bytes"] + report["index_bytes"]
    report.update(rows=rows, total_bytes=total)
    if rows:
        report["bytes_per_row"] = total / rows
        report["table_bytes_per_row"] = report["table_bytes"] / rows
        report["index_bytes_per_row"] = report["index_bytes"] / rows
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine(pg_admin_url: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if pg_admin_url is not None:
        admin = create_engine(pg_admin_url)
        try:
            with admin.connect() as conn:
                info["postgresql"] = conn.execute(text("SHOW server_version")).scalar_one()
        finally:
            admin.dispose()
    return info


def source_fingerprint() -> str:
    """SHA-256 over the package's source files, to tie results to the code that produced them."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*.py")):
        digest.update(str(path.relative_to(SOURCE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
