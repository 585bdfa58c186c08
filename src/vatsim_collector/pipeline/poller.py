"""The collection loop: a fetcher on a fixed-rate schedule and a writer, joined by a queue.

Fetching never waits for the database. Each fetched snapshot joins the pending queue (in
memory, spilling to the disk spool when it grows), and the writer stores the queue oldest
first. A slow or locked database, a long write-back after an outage or a slow ingest only makes
the queue longer: the next fetch still happens on time, and sessions see every snapshot in its
true order.

What fails is told apart by whose fault it is:
- the database cannot be reached: the snapshot stays at the head of the queue, the
  ``database`` breaker counts it, and the writer tries again later;
- the data cannot be stored (a value out of range, a document that makes ingest raise): the
  document is held in ``held_documents`` with the reason and the next one proceeds, so one bad
  snapshot can never block the rest (no poison pill);
- anything unexpected in either loop is recorded, counted and survived. If a loop dies anyway,
  ``fatal`` says why: ``/health`` reports ``down`` and the service exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars

from vatsim_collector.cluster.leadership import Elector, Observation
from vatsim_collector.errors.breaker import CircuitOpenError
from vatsim_collector.errors.exceptions import DataRejected, ResourceExhausted
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.recovery import RecoveryStrategy
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.errors.taxonomy import classify
from vatsim_collector.events.bus import EventBus
from vatsim_collector.feed.client import (
    FeedClient,
    FeedDeadlineExceeded,
    FetchedFeed,
    read_update_timestamp,
)
from vatsim_collector.feed.decode import FeedDecodeError
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.follower import Follower
from vatsim_collector.pipeline.ingest import DatabaseUnavailable, Ingestor, IngestResult, Outcome
from vatsim_collector.pipeline.pending import PendingSnapshots
from vatsim_collector.pipeline.spool import DroppedEntry, SnapshotSpool, SpooledSnapshot
from vatsim_collector.store.cluster import FencedOut

log = structlog.get_logger(__name__)

# Told the outcome and the seconds of each ingest that returned (metrics time it this way).
IngestObserver = Callable[[Outcome, float], None]

# A loop that keeps failing unexpectedly waits this long before its next turn, so a bug can
# never spin the CPU; the failures are counted and recorded meanwhile.
_LOOP_ERROR_PAUSE = 1.0


@dataclass
class PollerCounters:
    cycles: int = 0
    fetch_errors: int = 0
    write_errors: int = 0
    # Snapshots that spilled from memory to the disk spool while waiting for the writer.
    spooled: int = 0
    # Snapshots stored after waiting in the spool.
    drained: int = 0
    # Ticks of the feed never stored: gaps between consecutive stored update timestamps
    # longer than the poll interval (the feed's cadence).
    missed_ticks: int = 0
    # Unexpected exceptions survived by the fetch or write loop.
    loop_errors: int = 0
    # Snapshots held because the database refused their data.
    data_errors: int = 0
    # Damaged spool files moved aside.
    spool_damaged: int = 0
    # Fetched snapshots lost to a queue bound (memory and spool full).
    dropped: int = 0
    # Standby: fetched snapshots let go because the leader stored them (or, while another
    # node leads, because they were older than the gap-fill window).
    standby_released: int = 0
    # Snapshots this node fetched as a standby and stored when it took over (the gap).
    gap_filled: int = 0


def _is_transient(exc: BaseException) -> bool:
    # A fetch that used its whole deadline is not retried at once: that would double the cycle.
    if isinstance(exc, FeedDeadlineExceeded):
        return False
    return classify(exc).transient


def _stamp_of(item: SpooledSnapshot) -> datetime | None:
    """The document's ``update_timestamp``, if it has a readable one."""
    if item.update_timestamp is not None:
        return item.update_timestamp
    try:
        return read_update_timestamp(item.data)
    except ValueError:  # msgspec's DecodeError and ValidationError are ValueErrors
        return None


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
        pending_in_memory: int = 4,
        live: bool = True,
        cadence: float = 15.0,
        elector: Elector | None = None,
        standby_poll: bool = True,
        gap_fill_seconds: float = 600.0,
        follower: Follower | None = None,
    ) -> None:
        self.client = client
        self.bus = bus
        self.ingestor = ingestor
        self.schedule = schedule
        self.spool = spool
        self.pending = PendingSnapshots(spool, memory_limit=pending_in_memory)
        self.errors = errors
        # Documents come straight from the feed: the ingestor may quarantine one that was
        # already too old when fetched (a replay of recorded files takes any age).
        self.live = live
        # Seconds between the feed's update timestamps: a longer gap between two stored ones
        # is a tick missed.
        self.cadence = cadence
        self.counters = PollerCounters()
        # Several nodes on one database: this node writes only while it leads. Without an
        # elector it always writes (one process, tests, tools).
        self.elector = elector
        self.standby_poll = standby_poll
        self.gap_fill_seconds = gap_fill_seconds
        self._may_write = asyncio.Event()
        if elector is None or elector.leading:
            self._may_write.set()
        # Taken by whatever changes the queue as a whole (enqueue, promotion, standby trim),
        # so a snapshot fetched during a promotion cannot slip in ahead of the gap.
        self._queue_lock = asyncio.Lock()
        # A standby's API shows what the leader stores: the follower rebuilds the live state
        # from the database while this node does not lead; never at the same time as a
        # takeover's own rebuild, and never once it leads.
        self.follower = follower
        self._restore_lock = asyncio.Lock()
        self.ingest_observers: list[IngestObserver] = []
        self.last_error: str | None = None
        # Why the collection loop died, if it did: the service reports down and exits.
        self.fatal: str | None = None
        # Since when the feed has been failing; the API keeps serving the last good snapshot
        # meanwhile and reports it stale.
        self.feed_failing_since: datetime | None = None
        self.last_good_fetch_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._queued = asyncio.Event()
        self._writing = False
        # The last write_pending stopped because the database could not take the head.
        self._write_blocked = False
        self._last_stored_at: datetime | None = ingestor.live.snapshot_at
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
        """Fetched snapshots waiting to be stored, in memory and in the spool."""
        return len(self.pending)

    @property
    def waiting(self) -> int:
        """The backlog less the snapshot the writer is storing right now: more than zero
        means the writer is falling behind (or the database is away)."""
        return max(0, len(self.pending) - (1 if self._writing else 0))

    # -- fetching -------------------------------------------------------------------------

    async def fetch_once(self) -> FetchedFeed | None:
        """One fetch cycle: a new snapshot joins the pending queue; nothing is written here."""
        self.counters.cycles += 1
        failures_before = self.counters.fetch_errors
        fetched = await self._fetch()
        if self.counters.fetch_errors == failures_before:
            # The feed answered (new data or a duplicate): it is not failing any more.
            self.feed_failing_since = None
            self.last_error = None
            self.last_good_fetch_at = datetime.now(UTC)
        if fetched is not None and fetched.transceivers_exception is not None:
            self._report(fetched.transceivers_exception, "feed", "fetch_transceivers")
        if fetched is None:
            return None
        await self._enqueue(
            SpooledSnapshot(
                fetched.data,
                fetched.transceivers,
                fetched.fetched_at,
                fetched.data_url,
                update_timestamp=fetched.update_timestamp,
            )
        )
        return fetched

    async def _enqueue(self, item: SpooledSnapshot) -> None:
        async with self._queue_lock:
            await self._enqueue_locked(item)

    async def _enqueue_locked(self, item: SpooledSnapshot) -> None:
        spilled_before = self.pending.spilled
        # A spill writes and fsyncs megabytes: not on the event loop, which serves the API.
        dropped = await asyncio.to_thread(self.pending.put, item)
        self.counters.spooled += self.pending.spilled - spilled_before
        for entry in dropped:
            self._record_drop(entry)
        self._collect_queue_reports()
        if self.pending.on_disk and self.pending.spilled > spilled_before:
            log.warning(
                "snapshots waiting for the database spilled to the spool",
                waiting=len(self.pending),
            )
        self._queued.set()

    def _record_drop(self, entry: DroppedEntry) -> None:
        self.counters.dropped += 1
        if self.errors is not None:
            # The database fallback: kept on disk counts as recovered, a dropped one as lost.
            self.errors.record_recovery("database.spool", False)
        # The ErrorManager logs it and keeps the record queued until the database is back.
        self._report(
            ResourceExhausted("pending queue bound reached; oldest waiting snapshot dropped"),
            "poller",
            "spool",
            fetched_at=entry.fetched_at.isoformat(),
            bytes=entry.size,
        )

    def _collect_queue_reports(self) -> None:
        for damaged in self.pending.take_damaged():
            self.counters.spool_damaged += 1
            self._report(
                ResourceExhausted(f"damaged spool file moved aside: {damaged.reason}"),
                "poller",
                "spool_read",
                file=str(damaged.path),
            )
        for exc in self.pending.take_errors():
            self._report(exc, "poller", "spool_write")

    # -- writing --------------------------------------------------------------------------

    async def write_pending(self) -> list[IngestResult]:
        """Store waiting snapshots, oldest first, until none is left or the database fails."""
        results: list[IngestResult] = []
        self._write_blocked = False
        while not self.fatal and self._may_write.is_set():
            from_disk = self.pending.on_disk > 0
            if from_disk and self._stopping.is_set():
                break  # stopping: the spool keeps it for the next start
            item = self.pending.peek()
            self._collect_queue_reports()
            if item is None:
                break
            try:
                self._writing = True
                result = await self._store(item)
            except (DatabaseUnavailable, CircuitOpenError) as exc:
                self.last_error = str(exc)
                self.counters.write_errors += 1
                self._write_blocked = True
                break
            except FencedOut as exc:
                # Another node leads now: this snapshot is its to store (it polls the same
                # feed), and this node keeps it only as a standby would.
                self._may_write.clear()
                self.last_error = str(exc)
                self._report(exc, "cluster", "fence")
                if self.elector is not None:
                    self.elector.fenced_out(str(exc))
                break
            except Exception as exc:
                # Not the database's availability: this document would fail forever and block
                # every later one. Keep it for inspection and go on.
                held = await self._hold_failed(item, exc)
                if held is None:
                    self._write_blocked = True
                    break  # could not even hold it: the database is gone after all
                result = held
            finally:
                self._writing = False
            # This very item: a bound may have dropped it while it was being stored.
            self.pending.pop(item)
            if from_disk:
                self.counters.drained += 1
                if not self.pending.on_disk:
                    log.info("spool drained; database writes caught up")
            self._after_store(item, result)
            results.append(result)
        return results

    async def _hold_failed(self, item: SpooledSnapshot, exc: Exception) -> IngestResult | None:
        self.counters.write_errors += 1
        self.counters.data_errors += 1
        self.last_error = f"ingest failed: {type(exc).__name__}"
        self._report(exc, "ingest", "ingest", source=item.source)
        log.error("ingest failed; document held", source=item.source, error=type(exc).__name__)
        reason = f"ingest failed: {type(exc).__name__}"
        try:
            return await asyncio.to_thread(self.ingestor.hold_failed, item, reason)
        except DatabaseUnavailable:
            return None

    def _after_store(self, item: SpooledSnapshot, result: IngestResult) -> None:
        stamp = result.update_timestamp
        if result.outcome in (Outcome.INGESTED, Outcome.DUPLICATE, Outcome.HELD):
            if stamp is not None:
                self.client.accepted(stamp)
            if result.outcome is Outcome.INGESTED and stamp is not None:
                self._count_missed_ticks(stamp)
            return
        # Rejected or quarantined: a later document with this timestamp may be the good one.
        stamp = stamp or _stamp_of(item)
        if stamp is not None:
            # The client remembers the refused bytes: the same document served again is not
            # offered again, a different one with this timestamp is.
            self.client.refused(stamp)

    def _count_missed_ticks(self, stamp: datetime) -> None:
        previous, self._last_stored_at = self._last_stored_at, stamp
        if previous is None or stamp <= previous:
            return
        # Rounded: the feed's own cadence jitters by a second or two.
        missed = round((stamp - previous).total_seconds() / self.cadence) - 1
        if missed > 0:
            self.counters.missed_ticks += missed
            log.warning(
                "feed ticks missed",
                missed=missed,
                previous=previous.isoformat(),
                stored=stamp.isoformat(),
            )

    async def _store(self, item: SpooledSnapshot) -> IngestResult:
        """Ingest through the database breaker; raises DatabaseUnavailable (or
        CircuitOpenError, without touching the database) when the snapshot was not stored."""
        breaker = self.db_breaker
        probe = breaker.before_call() if breaker else False
        started = time.perf_counter()
        stamp = _stamp_of(item)
        try:
            # Every log line about this snapshot names it, the ingest thread's included.
            with bound_contextvars(**({"snapshot": stamp.isoformat()} if stamp else {})):
                # Ingest is CPU and database work; a thread keeps the API responsive meanwhile.
                result = await asyncio.to_thread(
                    self.ingestor.ingest,
                    item.data,
                    transceivers_raw=item.transceivers,
                    fetched_at=item.fetched_at,
                    source=item.source,
                    live=self.live,
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
            self._report_outcome(result, item)
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

    def _report_outcome(self, result: IngestResult, item: SpooledSnapshot) -> None:
        reason = result.reason or ""
        if result.outcome is Outcome.REJECTED:
            self._report(FeedDecodeError(reason), "ingest", "decode", source=item.source)
        elif result.outcome is Outcome.QUARANTINED:
            self._report(DataRejected(reason), "ingest", "quarantine", source=item.source)
        elif result.outcome is Outcome.HELD:
            self.counters.data_errors += 1
            self._report(DataRejected(reason), "ingest", "write", source=item.source)
        if result.transceivers_problem is not None:
            self._report(
                FeedDecodeError(result.transceivers_problem),
                "ingest",
                "decode_transceivers",
                source=item.source,
            )
        if result.records_dropped:
            self._report(
                DataRejected(f"{result.records_dropped} malformed records dropped"),
                "ingest",
                "records",
                source=item.source,
                reasons=result.drop_reasons,
            )

    # -- several nodes: standby, takeover, step-down ------------------------------------------

    async def promote(self, epoch: int) -> None:
        """Lead: rebuild the state from what the previous leader committed, let go of what
        it already stored, and write the rest (the gap) before anything fetched later."""
        async with self._queue_lock, self._restore_lock:
            await asyncio.to_thread(self.ingestor.restore)
            newest = self.ingestor.state.last_snapshot_at
            released = await asyncio.to_thread(self._release_stored, newest, None)
            self.counters.standby_released += released
            self.counters.gap_filled += len(self.pending)
            self._last_stored_at = newest
            log.info("taking over", epoch=epoch, gap=len(self.pending), already_stored=released)
            self._may_write.set()
        self._queued.set()

    async def demote(self, reason: str) -> None:
        """Stop writing; what waits stays queued (and is trimmed as a standby's would be)."""
        self._may_write.clear()
        self._queued.set()

    async def observe(self, observation: Observation) -> None:
        """A standby lets go of what the leader has stored, and, while another node leads,
        of what is older than the gap-fill window. While the database cannot be read no
        observation arrives, and everything fetched is kept (within the spool bounds)."""
        if self._may_write.is_set():
            return
        other_leads = observation.leader is not None and (
            self.elector is None or observation.leader != self.elector.node.name
        )
        cutoff = (
            observation.read_at - timedelta(seconds=self.gap_fill_seconds) if other_leads else None
        )
        async with self._queue_lock:
            released = await asyncio.to_thread(
                self._release_stored, observation.newest_accepted_at, cutoff
            )
        self.counters.standby_released += released

    async def _follow_loop(self, follower: Follower) -> None:
        while not self._stopping.is_set():
            if not self._may_write.is_set():
                async with self._restore_lock:
                    if not self._may_write.is_set():
                        await follower.refresh()
            await self._until(asyncio.sleep(follower.interval))

    def _release_stored(self, newest: datetime | None, fetched_before: datetime | None) -> int:
        """Drop waiting snapshots from the head while they are no newer than ``newest`` or
        were fetched before ``fetched_before``; how many."""
        released = 0
        while (item := self.pending.peek()) is not None:
            stamp = _stamp_of(item)
            stored = newest is not None and stamp is not None and stamp <= newest
            old = fetched_before is not None and item.fetched_at < fetched_before
            if not (stored or old):
                break
            self.pending.pop(item)
            if stamp is not None:
                # Never offered again by the client, as if this node had stored it.
                self.client.accepted(stamp)
            released += 1
        self._collect_queue_reports()
        return released

    # -- the loops ------------------------------------------------------------------------

    async def poll_once(self) -> IngestResult | None:
        """One fetch, then everything waiting written: the two loops' work, in sequence.

        Returns the result of the newest snapshot written, if any."""
        await self.fetch_once()
        results = await self.write_pending()
        return results[-1] if results else None

    async def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._may_write.is_set() or self.standby_poll:
                    await self.fetch_once()
            except Exception as exc:
                await self._survive(exc, "fetch_loop")
            await self._until(self.schedule.wait_next())

    async def _write_loop(self) -> None:
        while True:
            self._queued.clear()
            try:
                await self.write_pending()
            except Exception as exc:
                await self._survive(exc, "write_loop")
            if self._stopping.is_set():
                return
            if not self._may_write.is_set():
                await self._until(self._may_write.wait())  # a standby: until it leads
            elif self._write_blocked:
                # The database is away: try again after a poll interval (the breaker decides
                # whether the attempt reaches the database at all).
                await self._until(asyncio.sleep(self.schedule.interval))
            elif not len(self.pending):
                await self._until(self._queued.wait())
            # else: a snapshot arrived as the last one was stored: on to it at once.

    async def _until(self, waiting: Coroutine[Any, Any, Any]) -> None:
        """Wait for ``waiting`` or for stop, whichever comes first."""
        waiter = asyncio.ensure_future(waiting)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper):
                task.cancel()

    async def _survive(self, exc: Exception, loop: str) -> None:
        self.counters.loop_errors += 1
        self.last_error = f"{loop}: {type(exc).__name__}"
        log.exception("unexpected failure in the collection loop; continuing", loop=loop)
        with contextlib.suppress(Exception):
            self._report(exc, "poller", loop)
        await self._until(asyncio.sleep(_LOOP_ERROR_PAUSE))

    async def _guarded(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.fatal = f"the {name} loop died: {type(exc).__name__}: {exc}"
            log.critical("collection stopped", loop=name, error=self.fatal)
            self._stopping.set()
            raise

    async def run(self) -> None:
        """Fetch and write until ``stop()``; on the way out, what still waits is spilled to the
        spool, so the next start stores it."""
        fetcher = asyncio.create_task(self._guarded("fetch", self._fetch_loop()), name="fetch")
        writer = asyncio.create_task(self._guarded("write", self._write_loop()), name="write")
        loops = [fetcher, writer]
        if self.follower is not None:
            loops.append(asyncio.create_task(self._follow_loop(self.follower), name="follow"))
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self.pending.spill()
            self._collect_queue_reports()

    def stop(self) -> None:
        self._stopping.set()
