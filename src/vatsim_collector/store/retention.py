"""Retention: expire old positions, transceivers, held documents, error records and events.

Each class of data has its own age limit (0 days keeps it forever). History proper (snapshots,
sessions, flights, flight plans, prefiles, ATIS revisions) is never expired here, and neither
are dead letters: they wait for a replay, and their number is bounded instead.

On PostgreSQL the volume tables are partitioned by UTC day, so a day expires by dropping its
partitions once the whole day is older than the cutoff: no big DELETE, no bloat. A drop waits at
most ``lock_timeout`` for readers; if it cannot get its lock it is skipped and retried next run.

Everywhere else (SQLite, and the small tables on PostgreSQL) rows are deleted in chunks of at
most ``chunk_rows`` rows, each chunk its own short transaction, walking the primary key (or the
time index) from its oldest end, so the ingest never waits long for the write lock.

With an archive (``VATSIM_ARCHIVE_DIR``), positions and transceivers are written to Parquet
(``store.archive``) before they go, one file per UTC day and table, and only whole expired days
go: a partition is archived and then dropped; on SQLite a day's rows are archived and then
deleted in chunks. A day whose archive fails is kept, the error is reported, and the next run
tries again. The drop (or delete) happens only if the day still has exactly the rows archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Column, Engine, Table, delete, func, select, text, tuple_
from sqlalchemy.exc import OperationalError

from vatsim_collector.store import schema as t
from vatsim_collector.store.archive import ArchivedDay, ArchiveError, DayArchive
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.partitions import (
    PARTITIONED_TABLES,
    PartitionManager,
    day_bounds,
    day_of,
)

log = structlog.get_logger(__name__)

# PostgreSQL's SQLSTATE for "lock_not_available", raised when lock_timeout expires.
_LOCK_NOT_AVAILABLE = "55P03"

CLASSES = ("positions", "transceivers", "held_documents", "error_records", "events")
# The time each small table expires by. Events have a text id, which orders a chunk all the
# same: rows of one instant go in id order.
_MOMENT = {"held_documents": "received_at", "error_records": "occurred_at", "events": "time"}


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days each class of data is kept; 0 keeps it forever."""

    positions: int = 30
    transceivers: int = 7
    held_documents: int = 30
    error_records: int = 30
    events: int = 30

    def __post_init__(self) -> None:
        for name in CLASSES:
            if getattr(self, name) < 0:
                raise ValueError(f"retention days for {name} must be >= 0")

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        return cls(
            positions=settings.retention_positions_days,
            transceivers=settings.retention_transceivers_days,
            held_documents=settings.retention_held_documents_days,
            error_records=settings.retention_error_records_days,
            events=settings.retention_events_days,
        )

    def days(self, name: str) -> int:
        value = getattr(self, name)
        assert isinstance(value, int)
        return value


@dataclass
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    # Partitions dropped, and partitions left for the next run because their lock was busy.
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_skipped: list[str] = field(default_factory=list)
    # Chunked-delete transactions that removed at least one row.
    chunks: int = 0
    seconds: float = 0.0
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    # Days written to (or found complete in) the archive, and days kept because archiving
    # them failed ("positions 2026-01-01: reason").
    archived: list[ArchivedDay] = field(default_factory=list)
    archive_failed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            **{f"{name}_deleted": count for name, count in self.deleted.items()},
            "partitions_dropped": list(self.partitions_dropped),
            "partitions_skipped": list(self.partitions_skipped),
            "archived": [f"{a.table} {a.day.isoformat()}" for a in self.archived],
            "archived_rows": sum(a.rows for a in self.archived),
            "archived_bytes": sum(a.bytes for a in self.archived),
            "archive_failed": list(self.archive_failed),
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionJob:
    def __init__(
        self,
        db: DatabaseService | Engine,
        policy: RetentionPolicy,
        *,
        chunk_rows: int,
        partitions: PartitionManager,
        clock: Callable[[], datetime] = _utcnow,
        ahead_days: int = 2,
        lock_timeout: float = 5.0,
        chunk_pause: float = 0.005,
        archive: DayArchive | None = None,
    ) -> None:
        """``partitions`` should be the ingestor's manager, so a dropped day is forgotten.

        ``ahead_days`` is ``partitions_ahead_days``: each run makes sure today's partitions and
        that many following days' exist. ``chunk_pause`` (seconds) is slept between chunks so a
        waiting writer gets the lock in between. With an ``archive``, positions and
        transceivers are archived a whole day at a time before they go.
        """
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        # Every statement goes through the database service, so its queries are counted and
        # timed with the others (/api/database/service/stats).
        self.db = DatabaseService.of(db)
        self.engine = self.db.engine
        self.policy = policy
        self.chunk_rows = chunk_rows
        self.partitions = partitions
        self.clock = clock
        self.ahead_days = ahead_days
        self.lock_timeout = lock_timeout
        self.chunk_pause = chunk_pause
        self.archive = archive

    def run_once(self) -> RetentionReport:
        started = time.monotonic()
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the retention clock must return aware datetimes")
        now = now.astimezone(UTC)  # partitions are UTC days
        report = RetentionReport()
        partitioned = PartitionManager.applies(self.engine)
        if partitioned:
            self.partitions.ensure_ahead(self.db, self.ahead_days, today=now.date())
        for name in CLASSES:
            days = self.policy.days(name)
            if days == 0:
                continue
            cutoff = now - timedelta(days=days)
            report.cutoffs[name] = cutoff
            if name in PARTITIONED_TABLES:
                if partitioned:
                    self._drop_partitions(name, cutoff, report)
                elif self.archive is not None:
                    self._archive_and_delete_days(name, self.archive, cutoff, report)
                else:
                    self._delete_volume(name, t.snapshot_id_for(cutoff), report)
            else:
                self._delete_by_time(name, cutoff, report)
        report.seconds = time.monotonic() - started
        return report

    # ----- PostgreSQL: whole partitions -------------------------------------------------

    def _drop_partitions(self, table: str, cutoff: datetime, report: RetentionReport) -> None:
        cutoff_id = t.snapshot_id_for(cutoff)
        with self.db.read(f"retention.{table}.partitions") as conn:
            expired = [
                p for p in PartitionManager.existing(conn, table) if _ends_by(p.day, cutoff_id)
            ]
        quote = self.engine.dialect.identifier_preparer.quote
        timeout_ms = max(1, round(self.lock_timeout * 1000))
        for partition in expired:
            archived = None
            if self.archive is not None:
                archived = self._archive(self.archive, table, partition.day, report)
                if archived is None:
                    continue
            try:
                with self.db.write(f"retention.{table}.drop") as conn:
                    conn.execute(text(f"SET LOCAL lock_timeout = '{timeout_ms}ms'"))
                    if archived is not None:
                        # Locked first, so no row can arrive between this count and the drop.
                        conn.execute(
                            text(f"LOCK TABLE {quote(partition.name)} IN ACCESS EXCLUSIVE MODE")
                        )
                        rows = conn.execute(
                            text(f"SELECT count(*) FROM {quote(partition.name)}")
                        ).scalar_one()
                        if rows != archived.rows:
                            raise _ChangedSinceArchived(table, partition.day, rows, archived)
                    conn.execute(text(f"DROP TABLE IF EXISTS {quote(partition.name)}"))
            except _ChangedSinceArchived as exc:
                self._archive_failed(report, table, partition.day, str(exc))
                continue
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                log.warning("retention skipped a busy partition", partition=partition.name)
                report.partitions_skipped.append(partition.name)
                continue
            self.partitions.forget(partition.day)
            report.partitions_dropped.append(partition.name)

    # ----- chunked deletes ---------------------------------------------------------------

    def _archive(
        self, archive: DayArchive, table: str, day: date, report: RetentionReport
    ) -> ArchivedDay | None:
        """The day archived, or None if that failed (reported: the day must stay)."""
        try:
            archived = archive.archive_day(self.db, table, day)
        except Exception as exc:
            self._archive_failed(report, table, day, f"{type(exc).__name__}: {exc}")
            return None
        report.archived.append(archived)
        return archived

    @staticmethod
    def _archive_failed(report: RetentionReport, table: str, day: date, reason: str) -> None:
        log.error("archive failed; the day is kept", table=table, day=day.isoformat(), error=reason)
        report.archive_failed.append(f"{table} {day.isoformat()}: {reason}")

    def _archive_and_delete_days(
        self, name: str, archive: DayArchive, cutoff: datetime, report: RetentionReport
    ) -> None:
        """Archive, then delete, each whole UTC day of ``name`` that ends by ``cutoff``, oldest
        first; the day holding the cutoff waits until all of it has expired."""
        table = t.metadata.tables[name]
        cutoff_id = t.snapshot_id_for(cutoff)
        lower = 0
        while True:
            with self.db.read(f"retention.{name}.next_day") as conn:
                first = conn.execute(
                    select(func.min(table.c.snapshot_id)).where(table.c.snapshot_id >= lower)
                ).scalar()
            if first is None:
                return
            day = day_of(first)
            start_id, end_id = day_bounds(day)
            if end_id > cutoff_id:
                return
            lower = end_id
            archived = self._archive(archive, name, day, report)
            if archived is None:
                continue
            with self.db.read(f"retention.{name}.count") as conn:
                rows = conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.snapshot_id >= start_id, table.c.snapshot_id < end_id)
                ).scalar_one()
            # Rows are only added to an expired day by replaying old files at this very moment;
            # such a day is archived again next run, before it is deleted.
            if rows != archived.rows:
                changed = _ChangedSinceArchived(name, day, rows, archived)
                self._archive_failed(report, name, day, str(changed))
                continue
            self._delete_volume(name, end_id, report, lower_id=start_id)

    def _delete_volume(
        self, name: str, upper_id: int, report: RetentionReport, *, lower_id: int | None = None
    ) -> None:
        """Walk the primary key (snapshot id first) from its oldest end, ``chunk_rows`` at a time,
        deleting snapshot ids below ``upper_id`` (and from ``lower_id``, if given).

        Each chunk is the key range up to the ``chunk_rows``-th oldest expired key: a seek and a
        bounded range scan of the primary key, then one bounded delete.
        """
        table = t.metadata.tables[name]
        key = list(table.primary_key.columns)
        first = key[0]
        expired = first < upper_id
        if lower_id is not None:
            expired = expired & (first >= lower_id)
        nth_key = select(*key).where(expired).order_by(*key).offset(self.chunk_rows - 1).limit(1)
        last_key = select(*key).where(expired).order_by(*(c.desc() for c in key)).limit(1)

        def chunk() -> int:
            # The bound is read on its own, and the delete is its own write transaction: in WAL
            # mode a read transaction that turns into a write fails at once (no busy wait) if the
            # ingest committed in between. Rows are only ever added above the cutoff, so the
            # range cannot grow between the two.
            with self.db.read(f"retention.{name}.bound") as conn:
                bound = conn.execute(nth_key).first() or conn.execute(last_key).first()
            if bound is None:
                return 0
            statement = delete(table).where(
                expired, first <= bound[0], tuple_(*key) <= tuple_(*bound)
            )
            with self.db.write(f"retention.{name}.delete") as conn:
                return int(conn.execute(statement).rowcount)

        self._chunked(name, chunk, report)

    def _delete_by_time(self, name: str, cutoff: datetime, report: RetentionReport) -> None:
        table: Table = t.metadata.tables[name]
        moment: Column[Any] = table.c[_MOMENT[name]]
        oldest = (
            select(table.c.id)
            .where(moment < cutoff)
            .order_by(moment, table.c.id)
            .limit(self.chunk_rows)
        )
        statement = delete(table).where(table.c.id.in_(oldest))

        def chunk() -> int:
            with self.db.write(f"retention.{name}.delete") as conn:
                return int(conn.execute(statement).rowcount)

        self._chunked(name, chunk, report)

    def _chunked(self, name: str, chunk: Callable[[], int], report: RetentionReport) -> None:
        """Run ``chunk`` (one short transaction; the connection goes back to the pool after)
        until it removes fewer than ``chunk_rows`` rows."""
        while True:
            removed = chunk()
            if removed > 0:
                report.chunks += 1
                report.deleted[name] += removed
            if removed < self.chunk_rows:
                return
            if self.chunk_pause > 0:
                time.sleep(self.chunk_pause)


class _ChangedSinceArchived(ArchiveError):
    def __init__(self, table: str, day: date, rows: int, archived: ArchivedDay) -> None:
        super().__init__(
            f"{table} {day.isoformat()} has {rows} rows, {archived.rows} were archived;"
            " archived again next run"
        )


def _ends_by(day: date, cutoff_id: int) -> bool:
    """True when every snapshot id of ``day`` is below ``cutoff_id``."""
    return day_bounds(day)[1] <= cutoff_id


async def run_periodically(job: RetentionJob, interval: float, stop: asyncio.Event) -> None:
    """Run ``job`` now and then every ``interval`` seconds until ``stop`` is set; never raises."""
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(job.run_once)
        except Exception:
            log.exception("retention run failed")
        else:
            log.info("retention run", **report.summary())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
