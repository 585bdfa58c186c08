"""The collection loop: fetch on a fixed-rate schedule, ingest off the event loop.

When the database cannot be reached, fetched snapshots go to the disk spool instead, and
every cycle tries to write the spool back, oldest first, before anything newer: nothing
fetched during an outage is lost, and sessions see the snapshots in their true order.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.feed.client import FeedClient, FeedError
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.ingest import DatabaseUnavailable, Ingestor, IngestResult
from vatsim_collector.store import schema as t
from vatsim_collector.store.spool import DroppedEntry, SnapshotSpool, SpooledSnapshot

log = structlog.get_logger(__name__)

# Error records waiting for the database to come back (kept bounded in memory).
MAX_PENDING_ERROR_RECORDS = 1000


@dataclass
class PollerCounters:
    cycles: int = 0
    fetch_errors: int = 0
    write_errors: int = 0
    spooled: int = 0
    drained: int = 0


class Poller:
    def __init__(
        self,
        client: FeedClient,
        ingestor: Ingestor,
        schedule: FixedRateSchedule,
        spool: SnapshotSpool | None = None,
    ) -> None:
        self.client = client
        self.ingestor = ingestor
        self.schedule = schedule
        self.spool = spool
        self.counters = PollerCounters()
        self.last_error: str | None = None
        self._pending_errors: list[dict[str, object]] = []
        self._stopping = asyncio.Event()

    @property
    def backlog(self) -> int:
        return 0 if self.spool is None else len(self.spool)

    async def poll_once(self) -> IngestResult | None:
        self.counters.cycles += 1
        result: IngestResult | None = None
        try:
            fetched = await self.client.fetch()
        except FeedError as exc:
            self.counters.fetch_errors += 1
            self.last_error = str(exc)
            log.warning("feed fetch failed", error=str(exc))
            fetched = None
        await self.drain()
        if fetched is not None:
            item = SpooledSnapshot(
                fetched.data, fetched.transceivers, fetched.fetched_at, fetched.data_url
            )
            if self.backlog:
                self._to_spool(item)  # behind older snapshots still waiting
            else:
                result = await self._ingest(item)
        return result

    async def _ingest(self, item: SpooledSnapshot) -> IngestResult | None:
        try:
            # Ingest is CPU and database work; a thread keeps the API responsive meanwhile.
            result = await asyncio.to_thread(
                self.ingestor.ingest,
                item.data,
                transceivers_raw=item.transceivers,
                fetched_at=item.fetched_at,
                source=item.source,
            )
        except DatabaseUnavailable as exc:
            self.last_error = str(exc)
            self.counters.write_errors += 1
            if self.spool is None:
                log.error("database unavailable and no spool: snapshot lost", error=str(exc))
            else:
                self._to_spool(item)
            return None
        except Exception as exc:
            self.counters.write_errors += 1
            self.last_error = f"ingest failed: {type(exc).__name__}"
            log.exception("ingest failed", source=item.source)
            return None
        self.last_error = None
        return result

    def _to_spool(self, item: SpooledSnapshot) -> None:
        assert self.spool is not None
        dropped = self.spool.put(item)
        self.counters.spooled += 1
        log.warning("snapshot spooled until the database is back", waiting=len(self.spool))
        for entry in dropped:
            self._record_drop(entry)

    def _record_drop(self, entry: DroppedEntry) -> None:
        log.error(
            "spool full: oldest waiting snapshot dropped",
            fetched_at=entry.fetched_at.isoformat(),
            bytes=entry.size,
        )
        if len(self._pending_errors) < MAX_PENDING_ERROR_RECORDS:
            self._pending_errors.append(
                {
                    "occurred_at": datetime.now(UTC),
                    "service": "poller",
                    "operation": "spool",
                    "category": "resource",
                    "severity": "error",
                    "error_type": "SpoolFull",
                    "message": "spool bound reached; oldest waiting snapshot dropped",
                    "context": json.dumps(
                        {"fetched_at": entry.fetched_at.isoformat(), "bytes": entry.size}
                    ),
                }
            )

    async def drain(self) -> None:
        """Store waiting snapshots, oldest first, until the spool is empty or a write fails."""
        spool = self.spool
        while spool is not None and len(spool):
            item = spool.peek()
            if item is None:
                break
            try:
                await asyncio.to_thread(
                    self.ingestor.ingest,
                    item.data,
                    transceivers_raw=item.transceivers,
                    fetched_at=item.fetched_at,
                    source=item.source,
                )
            except DatabaseUnavailable:
                return
            except Exception:
                # Not a database outage: this entry would fail forever and block the rest.
                log.exception("spooled snapshot could not be ingested; discarded")
                self.counters.write_errors += 1
            spool.pop()
            self.counters.drained += 1
            if not len(spool):
                log.info("spool drained; database writes caught up")
        await asyncio.to_thread(self._flush_error_records)

    def _flush_error_records(self) -> None:
        if not self._pending_errors:
            return
        try:
            with self.ingestor.db.write("poller.error_records") as conn:
                conn.execute(insert(t.error_records), self._pending_errors)
        except SQLAlchemyError:
            return  # still down; they wait for the next cycle
        self._pending_errors.clear()

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self.poll_once()
            waiter = asyncio.create_task(self.schedule.wait_next())
            stopper = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()

    def stop(self) -> None:
        self._stopping.set()
