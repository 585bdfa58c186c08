"""The collection loop: fetch on a fixed-rate schedule, ingest off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from vatsim_collector.feed.client import FeedClient, FeedError
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.ingest import Ingestor, IngestResult

log = structlog.get_logger(__name__)


@dataclass
class PollerCounters:
    cycles: int = 0
    fetch_errors: int = 0
    write_errors: int = 0


class Poller:
    def __init__(
        self,
        client: FeedClient,
        ingestor: Ingestor,
        schedule: FixedRateSchedule,
    ) -> None:
        self.client = client
        self.ingestor = ingestor
        self.schedule = schedule
        self.counters = PollerCounters()
        self.last_error: str | None = None
        self._stopping = asyncio.Event()
        # Serialises ingest with anything else that touches the tracker (the API reads only).
        self._ingest_lock = asyncio.Lock()

    async def poll_once(self) -> IngestResult | None:
        self.counters.cycles += 1
        try:
            fetched = await self.client.fetch()
        except FeedError as exc:
            self.counters.fetch_errors += 1
            self.last_error = str(exc)
            log.warning("feed fetch failed", error=str(exc))
            return None
        if fetched is None:
            return None  # same update_timestamp as last time: the feed has not regenerated yet
        async with self._ingest_lock:
            try:
                # Ingest is CPU and database work; a thread keeps the API responsive meanwhile.
                result = await asyncio.to_thread(
                    self.ingestor.ingest,
                    fetched.data,
                    transceivers_raw=fetched.transceivers,
                    fetched_at=fetched.fetched_at,
                    source=fetched.data_url,
                )
            except Exception as exc:
                self.counters.write_errors += 1
                self.last_error = f"ingest failed: {type(exc).__name__}"
                log.exception(
                    "ingest failed", update_timestamp=fetched.update_timestamp.isoformat()
                )
                return None
        self.last_error = None
        return result

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
