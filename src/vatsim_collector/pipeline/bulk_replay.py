"""Bulk replay: a back-fill of many recorded files, with the database left exactly as replaying
them one by one leaves it.

What makes it faster than ``pipeline.replay``:

* Reading and gunzipping run in worker processes (``pipeline.bulk_read``), a bounded number of
  files ahead of the process that tracks and writes, so both cores work.
* Several snapshots share one transaction (``batch_size``), and the built-in handlers' work --
  the event log and the flight and controller summaries -- is done in that transaction rather
  than on the bus afterwards. A batch is therefore committed whole or not at all, which makes
  an interrupted back-fill resumable: files whose snapshot (or whose rejection) is stored are
  skipped on the next run, and an uncommitted batch is redone.

What keeps it identical: every document runs the same checks as ``Ingestor.ingest`` in the same
order, against the same state. A document that any check would not simply store -- undecodable,
quarantined, a duplicate, stale, oversized -- ends the running transaction and goes through
``Ingestor.ingest`` itself. A batch whose transaction fails is rolled back, the state rebuilt
from the database, and its documents ingested one by one: whatever the database refused is
then held exactly as it would have been.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.config import Settings
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import ControllerDisconnected, PilotDisconnected
from vatsim_collector.feed.decode import decode_snapshot_records, decode_transceivers_records
from vatsim_collector.feed.models import Snapshot, StationTransceivers
from vatsim_collector.feed.report import RecordReport
from vatsim_collector.pipeline.bulk_read import Loaded, Probed, load, probe
from vatsim_collector.pipeline.handlers import (
    EVENT_LOG_HANDLER,
    SUMMARIES_HANDLER,
    HandlerRegistry,
    build_registry,
)
from vatsim_collector.pipeline.ingest import Ingestor, _reasons
from vatsim_collector.pipeline.replay import ReplayFile, ReplayReport, _ingest_file
from vatsim_collector.store import held
from vatsim_collector.store import schema as t
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.sequences import rewind_sequences
from vatsim_collector.store.summaries_store import SummaryWriter
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.live import LiveView

# From this many files on, ``replay`` takes the bulk path unless told otherwise.
DEFAULT_BULK_THRESHOLD = 50
# Snapshots per transaction: enough to spread a commit's cost, few enough that a failed batch
# (redone one by one) or an interrupted one (redone on the next run) costs little.
DEFAULT_BATCH_SIZE = 20
# Files read ahead of the one being ingested: bounds the memory the readers may fill.
LOOKAHEAD = 32
READERS = 2
_DAY_MS = 86_400_000  # snapshot ids are milliseconds: a UTC day is a range of them

# The handlers a bulk replay runs inside its transactions, not on the bus.
IN_TRANSACTION_HANDLERS = frozenset({EVENT_LOG_HANDLER, SUMMARIES_HANDLER})


def order_probed(probed: Sequence[Probed], report: ReplayReport) -> list[Probed]:
    """The readable files in replay order (as ``replay.order_files`` sorts them); the
    unreadable ones reported, in the order they were given."""
    readable: list[Probed] = []
    for item in probed:
        if item.problem is not None:
            report.problems.append((str(item.path), item.problem))
        else:
            readable.append(item)
    epoch = datetime.min.replace(tzinfo=UTC)
    readable.sort(key=lambda f: (f.update_timestamp or epoch, str(f.path)))
    return readable


def bus_registry(settings: Settings) -> HandlerRegistry:
    """The configured handlers less those the bulk path runs in its own transactions."""
    registry = HandlerRegistry()
    for spec in build_registry(settings):
        if spec.name not in IN_TRANSACTION_HANDLERS:
            registry.add(
                spec.name, spec.factory, *spec.patterns, batch=spec.batch, **spec.overrides
            )
    return registry


@dataclass
class _Decoded:
    item: Loaded
    snapshot: Snapshot
    transceivers: list[StationTransceivers] | None
    records: RecordReport
    fetched_at: datetime


@dataclass
class _Stored:
    """A snapshot written in the open transaction, waiting for its commit to be counted."""

    decoded: _Decoded
    changes: Changeset
    events: list[Event]
    filtered: tuple[int, int, int]


@dataclass
class BulkStats:
    transactions: int = 0
    batches_redone: int = 0
    # Files left alone because an earlier run stored them (or their rejection).
    skipped_stored: int = 0
    one_by_one: int = 0


@dataclass
class BulkReplay:
    """One bulk replay of ``files`` (probed and ordered) into ``ingestor``'s database."""

    ingestor: Ingestor
    report: ReplayReport
    settings: Settings
    batch_size: int = DEFAULT_BATCH_SIZE
    stats: BulkStats = field(default_factory=BulkStats)

    def __post_init__(self) -> None:
        db = self.ingestor.db
        types = self.settings.event_log_type_list
        self.event_log = EventLog(db, types=types) if types else None
        self.summaries = SummaryWriter(db)

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        files: Sequence[Probed],
        pool: ProcessPoolExecutor,
        *,
        limit: int,
        publish: Callable[[list[Event]], None] | None = None,
        advance: Callable[[int], None] | None = None,
    ) -> None:
        """Ingest ``files`` in order; ``publish`` gets each committed batch's events."""
        with self.ingestor.db.write("bulk.resume") as conn:
            stamps, sources = held.replayed(conn)
            # Ids an interrupted run drew and never committed are drawn again.
            rewind_sequences(conn)
        todo: list[Probed] = []
        for item in files:
            if item.update_timestamp in stamps:
                # What ``Ingestor.ingest`` would say of it, without reading it again.
                self.ingestor.stats.snapshots_duplicate += 1
                self.stats.skipped_stored += 1
            elif str(item.path) in sources:
                self.stats.skipped_stored += 1
            else:
                todo.append(item)
        if advance is not None and len(todo) < len(files):
            advance(len(files) - len(todo))
        batch: list[Loaded] = []
        for loaded in _read_ahead(todo, pool, limit):
            batch.append(loaded)
            if len(batch) >= self.batch_size:
                self._ingest(batch, publish, advance)
                batch = []
                if self.report.aborted:
                    return
        if batch:
            self._ingest(batch, publish, advance)

    def _ingest(
        self,
        batch: list[Loaded],
        publish: Callable[[list[Event]], None] | None,
        advance: Callable[[int], None] | None,
    ) -> None:
        """Ingest ``batch`` in order: runs of plain snapshots in shared transactions, anything
        else through ``Ingestor.ingest``."""
        pending = deque(batch)
        while pending and not self.report.aborted:
            first = self._plain(pending[0])
            if first is None:
                self._one_by_one(pending.popleft(), publish)
                if advance is not None:
                    advance(1)
                continue
            before = len(pending)
            stored = self._transaction(first, pending, publish)
            if stored is not None:  # else it was redone one by one, published there
                self._committed(stored)
                if publish is not None:
                    publish([event for s in stored for event in s.events])
            if advance is not None:
                advance(before - len(pending))

    def _one_by_one(self, item: Loaded, publish: Callable[[list[Event]], None] | None) -> None:
        self.stats.one_by_one += 1
        if item.raw is None:
            # Readable when probed, not when loaded: reported as the ordering pass would.
            self.report.problems.append((str(item.path), item.problem or "cannot read"))
            self.ingestor.stats.snapshots_rejected += 1
            return
        # The transceivers are read again there, and reported there if they cannot be.
        replay_file = ReplayFile(
            item.path,
            item.raw,
            item.update_timestamp,
            item.transceivers_path,
            limit=self.settings.max_document_bytes,
        )
        # Its event-log rows and summaries are written in the transaction that stores it: a
        # run interrupted right after that commit has lost nothing a re-run would skip.
        self.ingestor.in_transaction = self._handle_in
        try:
            result = _ingest_file(self.ingestor, replay_file, self.report)
        finally:
            self.ingestor.in_transaction = None
        if result is not None and result.events and publish is not None:
            publish(result.events)

    # -- one shared transaction ----------------------------------------------------------------

    def _plain(self, item: Loaded) -> _Decoded | None:
        """``item`` decoded, if ``Ingestor.ingest`` would store it as it is; None for anything
        that needs its other paths (they decode it again, which only bad documents cost)."""
        ingestor = self.ingestor
        if item.raw is None or item.transceivers_problem is not None:
            return None
        try:
            snapshot, records = decode_snapshot_records(item.raw)
            transceivers: list[StationTransceivers] | None = None
            if item.transceivers is not None:
                transceivers, transceiver_records = decode_transceivers_records(item.transceivers)
                records.absorb(transceiver_records)
        except Exception:
            return None
        fetched_at = datetime.now(UTC)
        at = snapshot.update_timestamp
        if ingestor._implausible_time(at, fetched_at, False) is not None:
            return None
        last = ingestor.state.last_snapshot_at
        if last is not None and at <= last:
            return None
        if ingestor._oversized_section(records) is not None:
            return None
        # The gate counts consecutive drops: asked on a copy, so a "no" leaves it untouched
        # for ``Ingestor.ingest`` to ask again.
        if copy.copy(ingestor.gate).check(snapshot, ingestor.state.last_accepted_clients):
            return None
        return _Decoded(item, snapshot, transceivers, records, fetched_at)

    def _transaction(
        self,
        first: _Decoded,
        pending: deque[Loaded],
        publish: Callable[[list[Event]], None] | None,
    ) -> list[_Stored] | None:
        """Store ``first`` and the plain documents after it, up to ``batch_size`` and within one
        UTC day (a day's partitions are made before its transaction), in one transaction; the
        documents stored are taken off ``pending``. None if it failed (then they were ingested
        one by one)."""
        ingestor = self.ingestor
        snapshot_id = t.snapshot_id_for(first.snapshot.update_timestamp)
        day = snapshot_id // _DAY_MS
        gate = copy.copy(ingestor.gate)
        stored: list[_Stored] = []
        candidate: _Decoded | None = first
        try:
            with ingestor.db.timed("ingest.partitions"):
                ingestor.partitions.ensure_for(ingestor.db, snapshot_id)
            with ingestor.db.write("bulk.snapshots") as conn:
                # Sessions' last-seen times are written once for the batch (SnapshotWriter).
                ingestor.writer.defer_last_seen()
                while candidate is not None:
                    stored.append(self._store(conn, candidate))
                    pending.popleft()
                    candidate = None
                    if pending and len(stored) < self.batch_size:
                        candidate = self._plain(pending[0])
                        if candidate is not None and (
                            t.snapshot_id_for(candidate.snapshot.update_timestamp) // _DAY_MS != day
                        ):
                            candidate = None
                if self.event_log is not None:
                    # The whole batch's log rows at once: fewer, larger statements.
                    self.event_log.write_in(conn, [e for s in stored for e in s.events])
                ingestor.writer.flush_last_seen(conn)
        except Exception:
            ingestor.writer.discard_last_seen()
            # Rolled back: rebuild what the state and the gate remember, then let the one-by-one
            # path meet the failure as it would have (holding what the database refuses).
            ingestor.invalidate()
            ingestor.gate = gate
            # The rolled-back inserts drew ids; drawn again, the redo numbers rows as one by one.
            with contextlib.suppress(SQLAlchemyError), ingestor.db.write("bulk.rewind") as conn:
                rewind_sequences(conn)
            self.stats.batches_redone += 1
            redo = [s.decoded.item for s in stored]
            if candidate is not None:
                pending.popleft()
                redo.append(candidate.item)
            for item in redo:
                self._one_by_one(item, publish)
                if self.report.aborted:
                    break
            return None
        self.stats.transactions += 1
        return stored

    def _store(self, conn: Connection, decoded: _Decoded) -> _Stored:
        """What ``Ingestor.ingest_snapshot`` and ``_write_snapshot`` do for a plain snapshot,
        in the shared transaction, followed by what the summaries handler would do with its
        events (the event log's rows are written once for the whole batch)."""
        ingestor = self.ingestor
        snapshot, transceivers, records = decoded.snapshot, decoded.transceivers, decoded.records
        ingestor.gate.check(snapshot, ingestor.state.last_accepted_clients)
        filtered = (0, 0, 0)
        if ingestor.boundary is not None:
            from vatsim_collector.airspace.boundary_filtering import within_boundary

            kept = within_boundary(snapshot, transceivers, ingestor.boundary)
            snapshot, transceivers = kept.snapshot, kept.transceivers
            filtered = (kept.pilots_dropped, kept.controllers_dropped, kept.atis_dropped)
        changes = ingestor.tracker.apply(snapshot, transceivers)
        airspace = (
            ingestor.airspace.apply(changes, transceivers_fetched=transceivers is not None)
            if ingestor.airspace is not None
            else None
        )
        moved = (
            ingestor.movements.step(changes, ingestor.state)
            if ingestor.movements is not None
            else None
        )
        _, events = ingestor.write_tracked(
            conn,
            snapshot,
            transceivers,
            records,
            changes,
            airspace,
            moved,
            fetched_at=decoded.fetched_at,
            source=str(decoded.item.path),
        )
        self._summarise(conn, events)
        # The next document's checks see this one as stored; a rollback rebuilds both.
        ingestor.state.last_snapshot_at = snapshot.update_timestamp
        ingestor.state.last_accepted_clients = snapshot.client_count
        decoded.snapshot, decoded.transceivers = snapshot, transceivers
        return _Stored(decoded, changes, events, filtered)

    def _handle_in(self, conn: Connection, events: list[Event]) -> None:
        """The event log's and the summaries' handling of ``events``, in this transaction."""
        if self.event_log is not None:
            self.event_log.write_in(conn, events)
        self._summarise(conn, events)

    def _summarise(self, conn: Connection, events: list[Event]) -> None:
        """The summaries handler's work for ``events``: right after their snapshot, as soon as
        one by one's handler would run at the earliest, and never seeing a later snapshot."""
        for event in events:
            payload = event.payload
            if isinstance(payload, PilotDisconnected):
                self.summaries.flight_in(conn, payload.flight_id)
            elif isinstance(payload, ControllerDisconnected):
                self.summaries.controller_in(conn, payload.session_id)

    def _committed(self, stored: list[_Stored]) -> None:
        """Count a committed batch as ``Ingestor.ingest_snapshot`` counts each snapshot."""
        ingestor = self.ingestor
        for item in stored:
            ingestor.stats.pilots_filtered += item.filtered[0]
            ingestor.stats.controllers_filtered += item.filtered[1]
            ingestor.stats.atis_filtered += item.filtered[2]
            ingestor.stats.count(item.changes)
            ingestor.stats.count_records(item.decoded.records)
            records = item.decoded.records
            if records.dropped:
                # Worded as ``replay`` words it.
                path = str(item.decoded.item.path)
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(_reasons(records).items()))
                self.report.problems.append(
                    (path, f"{len(records.dropped)} records dropped: {reasons}")
                )
        last = stored[-1].decoded
        ingestor.live = LiveView.of(ingestor.state)
        ingestor.last_snapshot = last.snapshot
        ingestor.last_transceivers = last.transceivers


def _read_ahead(files: Sequence[Probed], pool: ProcessPoolExecutor, limit: int) -> Iterator[Loaded]:
    """The files' bytes in order, read by the pool at most ``LOOKAHEAD`` files ahead."""
    queue: deque[Future[Loaded]] = deque()
    upcoming = iter(files)
    for item in upcoming:
        queue.append(pool.submit(load, item, limit))
        if len(queue) >= LOOKAHEAD:
            break
    while queue:
        loaded = queue.popleft().result()
        following = next(upcoming, None)
        if following is not None:
            queue.append(pool.submit(load, following, limit))
        yield loaded


def probe_all(paths: Sequence[Path], pool: ProcessPoolExecutor, limit: int) -> list[Probed]:
    """Every file's timestamp, read by the pool's workers side by side."""
    return list(pool.map(probe, paths, [limit] * len(paths), chunksize=8))


def start_readers() -> ProcessPoolExecutor:
    """The reading processes; start them before the database's threads and connections exist
    (they are forked)."""
    return ProcessPoolExecutor(max_workers=READERS)


async def bulk_replay_to_bus(
    replay: BulkReplay,
    files: Sequence[Probed],
    pool: ProcessPoolExecutor,
    bus: EventBus,
    *,
    limit: int,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Run ``replay`` in a thread and publish each committed batch's events on ``bus``, so
    the remaining handlers get them as they would from ``replay_to_bus``."""
    loop = asyncio.get_running_loop()

    def publish(events: list[Event]) -> None:
        asyncio.run_coroutine_threadsafe(bus.publish_many(events), loop).result()

    await asyncio.to_thread(replay.run, files, pool, limit=limit, publish=publish, advance=advance)
