"""The collection loop: fetch on a fixed-rate schedule, ingest off the event loop.

When the database cannot be reached, fetched snapshots go to the disk spool instead, and
every cycle tries to write the spool back, oldest first, before anything newer: nothing
fetched during an outage is lost, and sessions see the snapshots in their true order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars

from vatsim_collector.errors.breaker import CircuitOpenError
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.recovery import RecoveryStrategy
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.errors.taxonomy import ResourceExhausted, classify
from vatsim_collector.events.bus import EventBus
from vatsim_collector.feed.client import FeedClient, FetchedFeed
from vatsim_collector.feed.decode import FeedDecodeError
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.ingest import DatabaseUnavailable, Ingestor, IngestResult, Outcome
from vatsim_collector.store.spool import DroppedEntry, SnapshotSpool, SpooledSnapshot

log = structlog.get_logger(__name__)

# Told the outcome and the seconds of each ingest that returned (metrics time it this way).
IngestObserver = Callable[[Outcome, float], None]


@dataclass
class PollerCounters:
    cycles: int = 0
    fetch_errors: int = 0
    write_errors: int = 0
    spooled: int = 0
    drained: int = 0


def _is_transient(exc: BaseException) -> bool:
    return classify(exc).transient


class Poller:
    def __init__(
        self,
        client: FeedClient,
        ingestor: Ingestor,
        schedule: FixedRateSchedule,
        spool: SnapshotSpool | None = None,
        *,
        errors: ErrorManager | None = None,
        breakers: BreakerRegistry | None = None,
        retry: RetryPolicy | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.client = client
        self.bus = bus
        self.ingestor = ingestor
        self.schedule = schedule
        self.spool = spool
        self.errors = errors
        self.counters = PollerCounters()
        self.ingest_observers: list[IngestObserver] = []
        self.last_error: str | None = None
        # Since when the feed has been failing; the API keeps serving the last good snapshot
        # meanwhile and reports it stale.
        self.feed_failing_since: datetime | None = None
        self.last_good_fetch_at: datetime | None = None
        self._stopping = asyncio.Event()
        self.db_breaker = breakers.get_or_create("database") if breakers else None
        self.feed = RecoveryStrategy[FetchedFeed | None](
            "feed.data",
            retry=retry,
            breaker=breakers.get_or_create("feed.data") if breakers else None,
            fallback=self._keep_last_good,
            is_transient=_is_transient,
            on_outcome=errors.record_recovery if errors else None,
        )

    def _report(self, exc: BaseException, service: str, operation: str, **context: Any) -> None:
        if self.errors is not None:
            self.errors.record(exc, service=service, operation=operation, context=context)
        else:
            log.warning("failure", service=service, operation=operation, error=str(exc))

    async def _keep_last_good(self, exc: BaseException) -> FetchedFeed | None:
        """Fallback when the feed fails: no new snapshot; what was stored stays served."""
        if self.feed_failing_since is None:
            self.feed_failing_since = datetime.now(UTC)
        self.counters.fetch_errors += 1
        self.last_error = str(exc)
        return None

    async def _fetch(self) -> FetchedFeed | None:
        async def attempt() -> FetchedFeed | None:
            try:
                return await self.client.fetch()
            except Exception as exc:
                # Every failed attempt is an error record (and its log line), retried or not.
                self._report(exc, "feed", "fetch_data")
                raise

        return await self.feed.run(attempt)

    @property
    def backlog(self) -> int:
        return 0 if self.spool is None else len(self.spool)

    async def poll_once(self) -> IngestResult | None:
        self.counters.cycles += 1
        result: IngestResult | None = None
        failures_before = self.counters.fetch_errors
        fetched = await self._fetch()
        if self.counters.fetch_errors == failures_before:
            # The feed answered (new data or a duplicate): it is not failing any more.
            self.feed_failing_since = None
            self.last_error = None
            self.last_good_fetch_at = datetime.now(UTC)
        if fetched is not None and fetched.transceivers_exception is not None:
            self._report(fetched.transceivers_exception, "feed", "fetch_transceivers")
        await self.drain()
        if fetched is not None:
            item = SpooledSnapshot(
                fetched.data, fetched.transceivers, fetched.fetched_at, fetched.data_url
            )
            # Every log line about this snapshot names it, the ingest thread's included.
            with bound_contextvars(snapshot=fetched.update_timestamp.isoformat()):
                if self.backlog:
                    self._to_spool(item)  # behind older snapshots still waiting
                else:
                    result = await self._ingest(item)
        return result

    async def _store(self, item: SpooledSnapshot) -> IngestResult:
        """Ingest through the database breaker; raises DatabaseUnavailable (or
        CircuitOpenError, without touching the database) when the snapshot was not stored."""
        breaker = self.db_breaker
        probe = breaker.before_call() if breaker else False
        started = time.perf_counter()
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
            if breaker:
                breaker.on_failure(exc, probe=probe)
            self._report(exc, "database", "ingest")
            raise
        except BaseException:
            if breaker:
                breaker.on_success(probe=probe)  # the database answered; the bug is ours
            raise
        if breaker:
            breaker.on_success(probe=probe)
        seconds = time.perf_counter() - started
        for observe in self.ingest_observers:
            observe(result.outcome, seconds)
        cycle: dict[str, str] = {}
        if result.update_timestamp is not None:
            cycle["snapshot"] = result.update_timestamp.isoformat()
        if result.events:
            # The id every event of this snapshot carries as its correlation_id.
            cycle["correlation_id"] = result.events[0].id
        with bound_contextvars(**cycle):
            if result.outcome is Outcome.REJECTED and result.reason:
                self._report(FeedDecodeError(result.reason), "ingest", "decode", source=item.source)
            if self.bus is not None and result.events:
                # Committed: now the rest of the system may hear of it.
                await self.bus.publish_many(result.events)
            log.info(
                "snapshot processed",
                outcome=result.outcome.value,
                seconds=round(seconds, 3),
                events=len(result.events),
            )
        return result

    async def _ingest(self, item: SpooledSnapshot) -> IngestResult | None:
        try:
            result = await self._store(item)
        except (DatabaseUnavailable, CircuitOpenError) as exc:
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
            self._report(exc, "ingest", "ingest", source=item.source)
            log.exception("ingest failed", source=item.source)
            return None
        return result

    def _to_spool(self, item: SpooledSnapshot) -> None:
        assert self.spool is not None
        dropped = self.spool.put(item)
        self.counters.spooled += 1
        if self.errors is not None:
            # The database fallback: kept on disk counts as recovered, a dropped one as lost.
            self.errors.record_recovery("database.spool", True)
            for _ in dropped:
                self.errors.record_recovery("database.spool", False)
        log.warning("snapshot spooled until the database is back", waiting=len(self.spool))
        for entry in dropped:
            self._record_drop(entry)

    def _record_drop(self, entry: DroppedEntry) -> None:
        # The ErrorManager logs it and keeps the record queued until the database is back.
        self._report(
            ResourceExhausted("spool bound reached; oldest waiting snapshot dropped"),
            "poller",
            "spool",
            fetched_at=entry.fetched_at.isoformat(),
            bytes=entry.size,
        )

    async def drain(self) -> None:
        """Store waiting snapshots, oldest first, until the spool is empty or a write fails."""
        spool = self.spool
        while spool is not None and len(spool):
            item = spool.peek()
            if item is None:
                break
            try:
                await self._store(item)
            except (DatabaseUnavailable, CircuitOpenError):
                return
            except Exception as exc:
                # Not a database outage: this entry would fail forever and block the rest.
                log.exception("spooled snapshot could not be ingested; discarded")
                self._report(exc, "ingest", "drain_spool", source=item.source)
                self.counters.write_errors += 1
            spool.pop()
            self.counters.drained += 1
            if not len(spool):
                log.info("spool drained; database writes caught up")

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
