"""Decode → sanity gate → tracking → one committed transaction, for one fetched snapshot.

The in-memory state is advanced before the database write; if the write fails, the state is
rebuilt from the database, which the rolled-back transaction left untouched.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.airspace.boundary_filtering import within_boundary
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.live import LiveAirspace, LiveChanges
from vatsim_collector.errors.exceptions import StorageUnavailable
from vatsim_collector.events.event import Event
from vatsim_collector.feed.decode import (
    FeedDecodeError,
    decode_snapshot_records,
    decode_transceivers_records,
)
from vatsim_collector.feed.limits import FEED_EPOCH
from vatsim_collector.feed.models import Snapshot, StationTransceivers
from vatsim_collector.feed.report import RecordReport
from vatsim_collector.feed.sanity import SanityGate
from vatsim_collector.movements.detector import DetectorStep, MovementDetector
from vatsim_collector.pipeline.domain_events import domain_events, snapshot_received
from vatsim_collector.pipeline.live_movements import LiveMovements
from vatsim_collector.store import held
from vatsim_collector.store import schema as t
from vatsim_collector.store.airspace_restore import restore_airspace
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.held import HeldDocument, QuarantinedSnapshot
from vatsim_collector.store.outbox import EventOutbox
from vatsim_collector.store.partitions import PartitionManager
from vatsim_collector.store.redact import strip_names
from vatsim_collector.store.restore import load_latest_transceivers, load_live_state
from vatsim_collector.store.write_faults import data_error_reason, is_data_error, is_unavailable
from vatsim_collector.store.writer import SnapshotWriter
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.live import LiveView
from vatsim_collector.tracking.state import LiveState
from vatsim_collector.tracking.tracker import Tracker

if TYPE_CHECKING:  # built by airspace.setup only when configured (it needs shapely)
    from vatsim_collector.airspace.boundary import BoundaryFilter

log = structlog.get_logger(__name__)


class HeldInput(Protocol):
    """A document waiting to be stored, as the poller's queue keeps it."""

    @property
    def data(self) -> bytes: ...
    @property
    def source(self) -> str: ...
    @property
    def fetched_at(self) -> datetime: ...


class Outcome(StrEnum):
    INGESTED = "ingested"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    # Decoded and checked, but the database refused to store it for reasons in the data
    # (a range, a limit, an encoding): kept in held_documents, and the next snapshot proceeds.
    HELD = "held"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    update_timestamp: datetime | None = None
    reason: str | None = None
    snapshot_id: int | None = None
    changes: Changeset | None = field(default=None, repr=False)
    # What the airspace analytics changed with it, when they run.
    airspace: LiveChanges | None = field(default=None, repr=False)
    # What to publish on the bus: ``snapshot.received`` first, then the domain events it caused.
    events: list[Event] = field(default_factory=list, repr=False)
    # Malformed records left out of the snapshot, and how many per "section.reason".
    records_dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    # Why the transceivers document was rejected (held), if it was; the snapshot goes on.
    transceivers_problem: str | None = None


@dataclass
class IngestStats:
    snapshots_ingested: int = 0
    snapshots_duplicate: int = 0
    snapshots_rejected: int = 0
    snapshots_quarantined: int = 0
    snapshots_held: int = 0
    pilot_sessions_opened: int = 0
    pilot_sessions_closed: int = 0
    controller_sessions_opened: int = 0
    controller_sessions_closed: int = 0
    atis_sessions_opened: int = 0
    atis_sessions_closed: int = 0
    flights_opened: int = 0
    flight_plan_revisions: int = 0
    positions_written: int = 0
    transceivers_written: int = 0
    prefiles_seen: int = 0
    # Left out by the boundary filter (always 0 without one).
    pilots_filtered: int = 0
    controllers_filtered: int = 0
    atis_filtered: int = 0
    # Malformed records left out of ingested snapshots, in all and per "section.reason"; and
    # values of benign drift coerced (a float altitude to an integer).
    records_dropped: int = 0
    records_coerced: int = 0
    records_dropped_by_reason: dict[str, int] = field(default_factory=dict)

    def count(self, changes: Changeset) -> None:
        self.snapshots_ingested += 1
        # The counters stay flat fields, "<kind>_sessions_opened" and so on: they are the
        # names /status and the stop log report.
        for sessions in changes.sessions:
            opened, closed = f"{sessions.kind}_sessions_opened", f"{sessions.kind}_sessions_closed"
            setattr(self, opened, getattr(self, opened) + len(sessions.opened))
            setattr(self, closed, getattr(self, closed) + len(sessions.closed))
        self.flights_opened += len(changes.flights.new)
        self.flight_plan_revisions += len(changes.pilots.plan_revisions)
        self.positions_written += len(changes.pilots.present)
        self.transceivers_written += changes.transceiver_count
        self.prefiles_seen += len(changes.prefiles.new)

    def count_records(self, records: RecordReport) -> None:
        self.records_dropped += len(records.dropped)
        for key, count in _reasons(records).items():
            self.records_dropped_by_reason[key] = self.records_dropped_by_reason.get(key, 0) + count
        self.records_coerced += sum(records.coerced.values())

    def as_dict(self) -> dict[str, int]:
        """The counters (the per-reason breakdown is ``records_dropped_by_reason``)."""
        # Field by field: ``asdict`` deep-copies every value, three quarters of what building
        # /api/status cost, and it is built on every request (api/status_cache.py).
        pairs = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {name: value for name, value in pairs if isinstance(value, int)}


@dataclass(frozen=True)
class IngestConfig:
    missed_snapshots_to_end: int = 4
    flight_reconnect_minutes: float = 30.0
    sanity_min_pilots: int = 10
    sanity_max_drop_fraction: float = 0.5
    sanity_accept_after: int = 3
    store_names: bool = False
    future_margin_seconds: float = 300.0
    # None: no age limit (the service sets it from its settings; library users choose).
    max_document_age_seconds: float | None = None
    max_records_per_section: int = 20_000
    held_records_per_snapshot: int = 20

    @classmethod
    def from_settings(cls, settings: Any) -> IngestConfig:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


# What one committed snapshot write made: its changes, the airspace's, its id, its events.
_Written = tuple[Changeset, LiveChanges | None, int, list[Event]]


class DatabaseUnavailable(StorageUnavailable):
    """The database could not be reached or written; the snapshot was not stored."""


@contextlib.contextmanager
def _outage_as_unavailable() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        cause = getattr(exc, "orig", None) or exc
        # The driver's class name only: its message may carry host or user details.
        raise DatabaseUnavailable(f"database unavailable: {type(cause).__name__}") from exc


def _served(snapshot: Snapshot, transceivers: list[StationTransceivers] | None) -> RecordReport:
    """The record report of a snapshot decoded elsewhere: everything in it was served."""
    served = {
        "pilots": len(snapshot.pilots),
        "controllers": len(snapshot.controllers),
        "atis": len(snapshot.atis),
        "prefiles": len(snapshot.prefiles),
    }
    if transceivers is not None:
        served["transceivers"] = len(transceivers)
    return RecordReport(served=served, dropped=[], coerced={})


def _reasons(records: RecordReport) -> dict[str, int]:
    """Dropped records per ``"section.reason"``, the key metrics and status use."""
    return {f"{section}.{reason}": n for (section, reason), n in records.counts_by_reason().items()}


class Ingestor:
    def __init__(
        self,
        db: DatabaseService | Engine,
        config: IngestConfig,
        *,
        airspace: AirspaceEngine | None = None,
        boundary: BoundaryFilter | None = None,
        movements: MovementDetector | None = None,
    ) -> None:
        self.db = db if isinstance(db, DatabaseService) else DatabaseService.for_engine(db)
        self.engine = self.db.engine
        self.config = config
        self.stats = IngestStats()
        self.gate = SanityGate(
            min_pilots=config.sanity_min_pilots,
            max_drop_fraction=config.sanity_max_drop_fraction,
            accept_after=config.sanity_accept_after,
        )
        self.writer = SnapshotWriter(store_names=config.store_names)
        self.partitions = PartitionManager()
        self.state = LiveState()
        self.tracker = self._tracker(self.state)
        # Sector occupancy and ATC contact, when configured (the service always does).
        self.airspace = LiveAirspace(airspace) if airspace is not None else None
        # Record only one region's traffic, when configured (off by default).
        self.boundary = boundary
        # Takeoffs, landings and the rest, when enabled (movements/; the service enables it).
        self.movements = LiveMovements(movements) if movements is not None else None
        # What readers on other threads (the API) may look at; see tracking.live. With no such
        # reader (``replay``) it is built when first read instead of after every commit: a
        # copy of every online session per snapshot that nobody would look at.
        self.readers_on_other_threads = True
        self._live: LiveView | None = LiveView.empty()
        self.last_snapshot: Snapshot | None = None
        self.last_transceivers: list[StationTransceivers] | None = None
        # Called first in every transaction that stores a snapshot; raises to refuse the
        # commit, else returns the leadership epoch the snapshot is stored under. Several
        # nodes on one database set it to check that epoch (cluster.leadership), so an
        # ex-leader can never commit.
        self.fence: Callable[[Connection], int | None] | None = None
        # With NATS: each snapshot's events are also written to the outbox in the snapshot's
        # own transaction, for the relay (brokers.nats.relay) to publish. None: the bus only.
        self.outbox: EventOutbox | None = None
        # Also called in every transaction that stores a snapshot, after its events are made,
        # with those events: the bulk replay's event log and summaries, so that a snapshot
        # this path stores commits with them (an interruption loses neither). None: nothing.
        self.in_transaction: Callable[[Connection, list[Event]], None] | None = None
        # Set when the in-memory state could not be rebuilt (database down): the next ingest
        # rebuilds it first, so nothing is ever applied on top of a state the database lacks.
        self._restore_needed = False

    @property
    def live(self) -> LiveView:
        view = self._live
        if view is None:
            view = self._live = LiveView.of(self.state)
        return view

    @live.setter
    def live(self, view: LiveView) -> None:
        self._live = view

    def _publish_live(self) -> None:
        """The committed state becomes the view readers get (or is built when first read)."""
        self._live = LiveView.of(self.state) if self.readers_on_other_threads else None

    def _tracker(self, state: LiveState) -> Tracker:
        return Tracker(
            state,
            missed_to_end=self.config.missed_snapshots_to_end,
            reconnect_window=timedelta(minutes=self.config.flight_reconnect_minutes),
        )

    def invalidate(self) -> None:
        """The database changed under the live state (a member was forgotten): rebuild the
        state from the database before the next snapshot is applied."""
        self._restore_needed = True

    @property
    def restore_needed(self) -> bool:
        """Whether the state must be rebuilt from the database before it is used again."""
        return self._restore_needed

    def restore(self) -> LiveState:
        """Load open sessions from the database; call before the first ingest.

        Everything is read as of one moment, so a node following another's writes
        (``pipeline/follower.py``) never rebuilds a state that is half one snapshot."""
        with self.db.read_consistent("ingest.restore") as conn:
            self.state = load_live_state(
                conn,
                missed_to_end=self.config.missed_snapshots_to_end,
                reconnect_window=timedelta(minutes=self.config.flight_reconnect_minutes),
            )
            if self.airspace is not None:
                restore_airspace(conn, self.airspace, self.state)
            if self.movements is not None:
                self.movements.restore(conn, self.state)
            transceivers = load_latest_transceivers(conn)
        self.tracker = self._tracker(self.state)
        self.last_transceivers = transceivers
        self._publish_live()
        self._restore_needed = False
        return self.state

    def ingest(
        self,
        raw: bytes,
        *,
        transceivers_raw: bytes | None = None,
        fetched_at: datetime | None = None,
        source: str = "feed",
        live: bool = False,
    ) -> IngestResult:
        """Ingest one fetched document (and its transceivers).

        ``live``: the document was just fetched from the feed (not replayed from a file), so a
        document already older than ``max_document_age_seconds`` when fetched is quarantined.

        Raises ``DatabaseUnavailable`` if the database cannot be used; nothing of the snapshot
        is stored then, and the caller should keep the bytes to try again later. Whatever is
        wrong with the data is never raised: bad records are dropped and counted, a bad
        envelope is rejected, a document the database refuses is held.
        """
        with _outage_as_unavailable():
            if self._restore_needed:
                self.restore()
            fetched_at = fetched_at or datetime.now(UTC)
            try:
                snapshot, records = decode_snapshot_records(raw)
            except FeedDecodeError as exc:
                return self._reject(raw, str(exc), source, fetched_at)
            except Exception as exc:  # a decoder bug must cost one document, not the loop
                log.exception("decoder failed", source=source)
                reason = f"decoder failed: {type(exc).__name__}"
                return self._reject(raw, reason, source, fetched_at)
            transceivers: list[StationTransceivers] | None = None
            transceivers_problem: str | None = None
            if transceivers_raw is not None:
                try:
                    transceivers, transceiver_records = decode_transceivers_records(
                        transceivers_raw
                    )
                except Exception as exc:
                    # The snapshot is still good; keep the bad transceivers for inspection.
                    detail = str(exc) if isinstance(exc, FeedDecodeError) else type(exc).__name__
                    transceivers_problem = f"transceivers: {detail}"
                    self._hold(
                        transceivers_raw, "rejected", transceivers_problem, source, fetched_at
                    )
                else:
                    records.absorb(transceiver_records)
            result = self.ingest_snapshot(
                snapshot,
                transceivers,
                raw=raw,
                fetched_at=fetched_at,
                source=source,
                live=live,
                records=records,
            )
            if transceivers_problem is not None:
                result = replace(result, transceivers_problem=transceivers_problem)
            return result

    def _implausible_time(self, at: datetime, fetched_at: datetime, live: bool) -> str | None:
        """Why ``at`` cannot be a true update timestamp of the feed, or None."""
        ahead = (at - fetched_at).total_seconds()
        if ahead > self.config.future_margin_seconds:
            return (
                f"update_timestamp {at.isoformat()} is {ahead:.0f} s ahead of the collector's "
                f"clock (margin {self.config.future_margin_seconds:g} s)"
            )
        if at < FEED_EPOCH:
            return f"update_timestamp {at.isoformat()} is before the VATSIM feed existed"
        max_age = self.config.max_document_age_seconds
        if live and max_age is not None and -ahead > max_age:
            return (
                f"update_timestamp {at.isoformat()} was {-ahead:.0f} s old when fetched "
                f"(limit {max_age:g} s)"
            )
        return None

    def _oversized_section(self, records: RecordReport) -> str | None:
        limit = self.config.max_records_per_section
        for section, served in records.served.items():
            if served > limit:
                return f"{served} {section}, more than the limit of {limit} per section"
        return None

    def ingest_snapshot(
        self,
        snapshot: Snapshot,
        transceivers: list[StationTransceivers] | None,
        *,
        raw: bytes,
        fetched_at: datetime,
        source: str = "feed",
        live: bool = False,
        records: RecordReport | None = None,
    ) -> IngestResult:
        records = records if records is not None else _served(snapshot, transceivers)
        at = snapshot.update_timestamp
        implausible = self._implausible_time(at, fetched_at, live)
        if implausible is not None:
            return self._quarantine_document(raw, at, implausible, source, fetched_at)
        last = self.state.last_snapshot_at
        if last is not None and at <= last:
            if at == last or self._stored(at):
                self.stats.snapshots_duplicate += 1
                return IngestResult(Outcome.DUPLICATE, at)
            stale = f"snapshot {at.isoformat()} is older than the latest stored {last.isoformat()}"
            return self._reject(raw, stale, source, fetched_at, at)
        reason = self._oversized_section(records) or self.gate.check(
            snapshot, self.state.last_accepted_clients
        )
        if reason is not None:
            return self._quarantine(snapshot, raw, reason, source, fetched_at)
        if self.boundary is not None:
            filtered = within_boundary(snapshot, transceivers, self.boundary)
            snapshot, transceivers = filtered.snapshot, filtered.transceivers
            self.stats.pilots_filtered += filtered.pilots_dropped
            self.stats.controllers_filtered += filtered.controllers_dropped
            self.stats.atis_filtered += filtered.atis_dropped
        written: _Written | None = None
        for attempt in (1, 2):
            try:
                written = self._write_snapshot(
                    snapshot, transceivers, records, fetched_at=fetched_at, source=source
                )
                break
            except BaseException as exc:
                # The transaction rolled back; the state must not remember what was not stored.
                self._restore_needed = True
                with contextlib.suppress(SQLAlchemyError):
                    self.restore()
                if isinstance(exc, DatabaseUnavailable) or not is_data_error(exc):
                    raise
                if attempt == 1 and not self._restore_needed:
                    # The database may have changed under the state (a member forgotten
                    # through another node): once more, on the state rebuilt from it.
                    log.warning(
                        "snapshot refused; trying once more on the rebuilt state",
                        reason=data_error_reason(exc),
                    )
                    continue
                # Not an outage: the same snapshot would fail again on every try and block
                # every later one. Keep it for inspection; the next snapshot proceeds.
                reason = f"not stored: {data_error_reason(exc)}"
                return self._held(raw, at, reason, source, fetched_at)
        assert written is not None  # the loop either wrote, raised or returned
        changes, airspace, snapshot_id, events = written
        # Only now, committed, does the snapshot become the latest one readers are told about.
        self.state.last_snapshot_at = at
        self.state.last_accepted_clients = snapshot.client_count
        self._publish_live()
        self.stats.count(changes)
        self.stats.count_records(records)
        self.last_snapshot = snapshot
        self.last_transceivers = transceivers
        return IngestResult(
            Outcome.INGESTED,
            at,
            snapshot_id=snapshot_id,
            changes=changes,
            airspace=airspace,
            events=events,
            records_dropped=len(records.dropped),
            drop_reasons=_reasons(records),
        )

    def _write_snapshot(
        self,
        snapshot: Snapshot,
        transceivers: list[StationTransceivers] | None,
        records: RecordReport,
        *,
        fetched_at: datetime,
        source: str,
    ) -> _Written:
        """Track ``snapshot`` and write it in one transaction; raises if it was not stored."""
        snapshot_id = t.snapshot_id_for(snapshot.update_timestamp)
        with self.db.timed("ingest.partitions"):
            self.partitions.ensure_for(self.db, snapshot_id)
        changes = self.tracker.apply(snapshot, transceivers)
        airspace = (
            self.airspace.apply(changes, transceivers_fetched=transceivers is not None)
            if self.airspace is not None
            else None
        )
        moved = self.movements.step(changes, self.state) if self.movements is not None else None
        with self.db.write("ingest.snapshot") as conn:
            snapshot_id, events = self.write_tracked(
                conn,
                snapshot,
                transceivers,
                records,
                changes,
                airspace,
                moved,
                fetched_at=fetched_at,
                source=source,
            )
        return changes, airspace, snapshot_id, events

    def write_tracked(
        self,
        conn: Connection,
        snapshot: Snapshot,
        transceivers: list[StationTransceivers] | None,
        records: RecordReport,
        changes: Changeset,
        airspace: LiveChanges | None,
        moved: DetectorStep | None,
        *,
        fetched_at: datetime,
        source: str,
    ) -> tuple[int, list[Event]]:
        """Write a tracked snapshot in ``conn``'s transaction (the bulk replay shares one among
        several): its rows, movements and held records, then its events, which go to the
        outbox here so that they commit with the snapshot or not at all. The bus gets them
        only after the commit, from the caller."""
        epoch = self.fence(conn) if self.fence is not None else None
        snapshot_id = self.writer.write(
            conn,
            changes,
            fetched_at=fetched_at,
            transceivers_fetched=transceivers is not None,
            airspace=airspace,
            leader_epoch=epoch,
        )
        if moved is not None:
            LiveMovements.write(conn, moved, snapshot_id)
        self._hold_records(conn, records, snapshot_id, source, fetched_at)
        received = snapshot_received(
            snapshot,
            snapshot_id=snapshot_id,
            outcome=Outcome.INGESTED.value,
            transceivers=changes.transceiver_count if transceivers is not None else None,
        )
        events = [
            received,
            *domain_events(
                changes,
                airspace,
                moved.movements if moved is not None else (),
                correlation_id=received.id,
            ),
        ]
        if self.outbox is not None:
            self.outbox.write(conn, events, snapshot_id=snapshot_id)
        if self.in_transaction is not None:
            self.in_transaction(conn, events)
        return snapshot_id, events

    def _hold_records(
        self,
        conn: Connection,
        records: RecordReport,
        snapshot_id: int,
        source: str,
        received_at: datetime,
    ) -> None:
        """A bounded sample of the records dropped from this snapshot, for inspection."""
        sample = records.dropped[: self.config.held_records_per_snapshot]
        held.hold(
            conn,
            (
                HeldDocument(
                    received_at=received_at,
                    kind="record",
                    source=source,
                    reason=f"{dropped.section}: {dropped.reason}: {dropped.detail}",
                    snapshot_id=snapshot_id,
                    # A record may have no cid or be no valid JSON: the decoder knows best
                    # where its name is.
                    body_gzip=gzip.compress(
                        dropped.raw if self.config.store_names else dropped.raw_without_name()
                    ),
                )
                for dropped in sample
            ),
        )

    def hold_failed(self, item: HeldInput, reason: str) -> IngestResult:
        """Keep a document whose ingest failed unexpectedly, so the next one can proceed."""
        with _outage_as_unavailable():
            return self._held(item.data, None, reason, item.source, item.fetched_at)

    def _held(
        self, raw: bytes, at: datetime | None, reason: str, source: str, fetched_at: datetime
    ) -> IngestResult:
        log.error("snapshot held: the database refused it", source=source, reason=reason)
        with _outage_as_unavailable():
            self._hold(raw, "held", reason, source, fetched_at)
        self.stats.snapshots_held += 1
        return IngestResult(Outcome.HELD, at, reason=reason)

    def _stored(self, at: datetime) -> bool:
        with self.db.read("ingest.find_snapshot") as conn:
            return held.snapshot_stored(conn, at)

    def _held_body(self, raw: bytes) -> bytes:
        # A held document is raw feed input; names are kept in it only if they are stored.
        body = raw if self.config.store_names else strip_names(raw)
        return gzip.compress(body, compresslevel=6)

    def _hold(
        self,
        raw: bytes,
        kind: str,
        reason: str,
        source: str,
        received_at: datetime,
        snapshot_id: int | None = None,
    ) -> None:
        document = HeldDocument(
            received_at, kind, source, reason, self._held_body(raw), snapshot_id
        )
        with self.db.write("ingest.hold_document") as conn:
            held.hold(conn, [document])

    def _reject(
        self,
        raw: bytes,
        reason: str,
        source: str,
        fetched_at: datetime,
        at: datetime | None = None,
    ) -> IngestResult:
        log.warning("snapshot rejected", source=source, reason=reason)
        self._hold(raw, "rejected", reason, source, fetched_at)
        self.stats.snapshots_rejected += 1
        return IngestResult(Outcome.REJECTED, at, reason=reason)

    def _quarantine_document(
        self, raw: bytes, at: datetime, reason: str, source: str, fetched_at: datetime
    ) -> IngestResult:
        """Hold a document whose timestamp cannot be true. Unlike a quarantined snapshot it
        gets no ``snapshots`` row: its id would be a moment that never was."""
        log.warning("snapshot quarantined", update_timestamp=at.isoformat(), reason=reason)
        self._hold(raw, "quarantined", reason, source, fetched_at)
        self.stats.snapshots_quarantined += 1
        return IngestResult(Outcome.QUARANTINED, at, reason=reason)

    def _quarantine(
        self, snapshot: Snapshot, raw: bytes, reason: str, source: str, fetched_at: datetime
    ) -> IngestResult:
        at = snapshot.update_timestamp
        if self._stored(at):
            self.stats.snapshots_duplicate += 1
            return IngestResult(Outcome.DUPLICATE, at)
        log.warning("snapshot quarantined", update_timestamp=at.isoformat(), reason=reason)
        row = QuarantinedSnapshot(
            at,
            fetched_at,
            reason,
            pilots=len(snapshot.pilots),
            controllers=len(snapshot.controllers),
            atis=len(snapshot.atis),
            prefiles=len(snapshot.prefiles),
        )
        body = self._held_body(raw)
        with self.db.write("ingest.quarantine") as conn:
            epoch = self.fence(conn) if self.fence is not None else None
            snapshot_id = held.quarantine(conn, row, leader_epoch=epoch)
            document = HeldDocument(fetched_at, "quarantined", source, reason, body, snapshot_id)
            held.hold(conn, [document])
            received = snapshot_received(
                snapshot,
                snapshot_id=snapshot_id,
                outcome=Outcome.QUARANTINED.value,
                transceivers=None,
            )
            if self.outbox is not None:
                self.outbox.write(conn, [received], snapshot_id=snapshot_id)
            if self.in_transaction is not None:
                self.in_transaction(conn, [received])
        self.stats.snapshots_quarantined += 1
        return IngestResult(
            Outcome.QUARANTINED, at, reason=reason, snapshot_id=snapshot_id, events=[received]
        )
