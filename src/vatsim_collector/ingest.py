"""Decode → sanity gate → tracking → one committed transaction, for one fetched snapshot.

The in-memory state is advanced before the database write; if the write fails, the state is
rebuilt from the database, which the rolled-back transaction left untouched.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from vatsim_collector.events.event import Event
from vatsim_collector.feed.decode import FeedDecodeError, decode_snapshot, decode_transceivers
from vatsim_collector.feed.models import Snapshot, StationTransceivers
from vatsim_collector.feed.sanity import SanityGate
from vatsim_collector.store import schema as t
from vatsim_collector.store.airspace_restore import restore_airspace
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.partitions import PartitionManager
from vatsim_collector.store.redact import strip_names
from vatsim_collector.store.restore import load_live_state
from vatsim_collector.store.writer import SnapshotWriter
from vatsim_collector.tracking.airspace import AirspaceEngine
from vatsim_collector.tracking.airspace_live import LiveAirspace
from vatsim_collector.tracking.boundary import BoundaryFilter
from vatsim_collector.tracking.boundary_filtering import within_boundary
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.domain_events import domain_events, snapshot_received
from vatsim_collector.tracking.live import LiveView
from vatsim_collector.tracking.state import LiveState
from vatsim_collector.tracking.tracker import Tracker

log = structlog.get_logger(__name__)


class Outcome(StrEnum):
    INGESTED = "ingested"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    update_timestamp: datetime | None = None
    reason: str | None = None
    snapshot_id: int | None = None
    changes: Changeset | None = field(default=None, repr=False)
    # What to publish on the bus: ``snapshot.received`` first, then the domain events it caused.
    events: list[Event] = field(default_factory=list, repr=False)


@dataclass
class IngestStats:
    snapshots_ingested: int = 0
    snapshots_duplicate: int = 0
    snapshots_rejected: int = 0
    snapshots_quarantined: int = 0
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

    def count(self, changes: Changeset) -> None:
        self.snapshots_ingested += 1
        self.pilot_sessions_opened += len(changes.opened_pilots)
        self.pilot_sessions_closed += len(changes.closed_pilots)
        self.controller_sessions_opened += len(changes.opened_controllers)
        self.controller_sessions_closed += len(changes.closed_controllers)
        self.atis_sessions_opened += len(changes.opened_atis)
        self.atis_sessions_closed += len(changes.closed_atis)
        self.flights_opened += len(changes.new_flights)
        self.flight_plan_revisions += len(changes.plan_revisions)
        self.positions_written += len(changes.present_pilots)
        self.transceivers_written += changes.transceiver_count
        self.prefiles_seen += len(changes.new_prefiles)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class IngestConfig:
    missed_snapshots_to_end: int = 4
    flight_reconnect_minutes: float = 30.0
    sanity_min_pilots: int = 10
    sanity_max_drop_fraction: float = 0.5
    sanity_accept_after: int = 3
    store_names: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> IngestConfig:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


class DatabaseUnavailable(Exception):
    """The database could not be reached or written; the snapshot was not stored."""


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextlib.contextmanager
def _outage_as_unavailable() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        if not _unavailable(exc):
            raise
        cause = getattr(exc, "orig", None) or exc
        # The driver's class name only: its message may carry host or user details.
        raise DatabaseUnavailable(f"database unavailable: {type(cause).__name__}") from exc


class Ingestor:
    def __init__(
        self,
        db: DatabaseService | Engine,
        config: IngestConfig,
        *,
        airspace: AirspaceEngine | None = None,
        boundary: BoundaryFilter | None = None,
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
        # What readers on other threads may look at; see tracking.live.
        self.live = LiveView.empty()
        self.last_snapshot: Snapshot | None = None
        self.last_transceivers: list[StationTransceivers] | None = None
        # Set when the in-memory state could not be rebuilt (database down): the next ingest
        # rebuilds it first, so nothing is ever applied on top of a state the database lacks.
        self._restore_needed = False

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

    def restore(self) -> LiveState:
        """Load open sessions from the database; call before the first ingest."""
        with self.db.read("ingest.restore") as conn:
            self.state = load_live_state(
                conn,
                missed_to_end=self.config.missed_snapshots_to_end,
                reconnect_window=timedelta(minutes=self.config.flight_reconnect_minutes),
            )
            if self.airspace is not None:
                restore_airspace(conn, self.airspace, self.state)
        self.tracker = self._tracker(self.state)
        self.live = LiveView.of(self.state)
        self._restore_needed = False
        return self.state

    def ingest(
        self,
        raw: bytes,
        *,
        transceivers_raw: bytes | None = None,
        fetched_at: datetime | None = None,
        source: str = "feed",
    ) -> IngestResult:
        """Ingest one fetched document (and its transceivers).

        Raises ``DatabaseUnavailable`` if the database cannot be used; nothing of the snapshot
        is stored then, and the caller should keep the bytes to try again later.
        """
        with _outage_as_unavailable():
            if self._restore_needed:
                self.restore()
            fetched_at = fetched_at or datetime.now(UTC)
            try:
                snapshot = decode_snapshot(raw)
            except FeedDecodeError as exc:
                return self._reject(raw, str(exc), source, fetched_at)
            transceivers: list[StationTransceivers] | None = None
            if transceivers_raw is not None:
                try:
                    transceivers = decode_transceivers(transceivers_raw)
                except FeedDecodeError as exc:
                    # The snapshot is still good; keep the bad transceivers for inspection.
                    reason = f"transceivers: {exc}"
                    self._hold(transceivers_raw, "rejected", reason, source, fetched_at)
            return self.ingest_snapshot(
                snapshot, transceivers, raw=raw, fetched_at=fetched_at, source=source
            )

    def ingest_snapshot(
        self,
        snapshot: Snapshot,
        transceivers: list[StationTransceivers] | None,
        *,
        raw: bytes,
        fetched_at: datetime,
        source: str = "feed",
    ) -> IngestResult:
        at = snapshot.update_timestamp
        last = self.state.last_snapshot_at
        if last is not None and at <= last:
            if at == last or self._stored(at):
                self.stats.snapshots_duplicate += 1
                return IngestResult(Outcome.DUPLICATE, at)
            stale = f"snapshot {at.isoformat()} is older than the latest stored {last.isoformat()}"
            return self._reject(raw, stale, source, fetched_at)
        reason = self.gate.check(snapshot, self.state.last_accepted_clients)
        if reason is not None:
            return self._quarantine(snapshot, raw, reason, source, fetched_at)
        if self.boundary is not None:
            filtered = within_boundary(snapshot, transceivers, self.boundary)
            snapshot, transceivers = filtered.snapshot, filtered.transceivers
            self.stats.pilots_filtered += filtered.pilots_dropped
            self.stats.controllers_filtered += filtered.controllers_dropped
            self.stats.atis_filtered += filtered.atis_dropped
        snapshot_id = t.snapshot_id_for(at)
        with self.db.timed("ingest.partitions"):
            self.partitions.ensure_for(self.engine, snapshot_id)
        changes = self.tracker.apply(snapshot, transceivers)
        if self.airspace is not None:
            changes.airspace = self.airspace.apply(
                changes, transceivers_fetched=transceivers is not None
            )
        try:
            with self.db.write("ingest.snapshot") as conn:
                snapshot_id = self.writer.write(
                    conn,
                    changes,
                    fetched_at=fetched_at,
                    transceivers_fetched=transceivers is not None,
                )
        except BaseException:
            # The transaction rolled back; the state must not remember what was not stored.
            self._restore_needed = True
            with contextlib.suppress(SQLAlchemyError):
                self.restore()
            raise
        # Only now, committed, does the snapshot become the latest one readers are told about.
        self.state.last_snapshot_at = at
        self.state.last_accepted_clients = snapshot.client_count
        self.live = LiveView.of(self.state)
        self.stats.count(changes)
        self.last_snapshot = snapshot
        self.last_transceivers = transceivers
        received = snapshot_received(
            snapshot,
            snapshot_id=snapshot_id,
            outcome=Outcome.INGESTED.value,
            transceivers=changes.transceiver_count if transceivers is not None else None,
        )
        events = [received, *domain_events(changes, correlation_id=received.id)]
        return IngestResult(
            Outcome.INGESTED, at, snapshot_id=snapshot_id, changes=changes, events=events
        )

    def _stored(self, at: datetime) -> bool:
        with self.db.read("ingest.find_snapshot") as conn:
            found = conn.execute(
                select(t.snapshots.c.id).where(t.snapshots.c.update_timestamp == at)
            ).first()
        return found is not None

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
        with self.db.write("ingest.hold_document") as conn:
            conn.execute(
                insert(t.held_documents).values(
                    received_at=received_at,
                    kind=kind,
                    source=source,
                    reason=reason,
                    snapshot_id=snapshot_id,
                    body_gzip=self._held_body(raw),
                )
            )

    def _reject(self, raw: bytes, reason: str, source: str, fetched_at: datetime) -> IngestResult:
        log.warning("snapshot rejected", source=source, reason=reason)
        self._hold(raw, "rejected", reason, source, fetched_at)
        self.stats.snapshots_rejected += 1
        return IngestResult(Outcome.REJECTED, reason=reason)

    def _quarantine(
        self, snapshot: Snapshot, raw: bytes, reason: str, source: str, fetched_at: datetime
    ) -> IngestResult:
        at = snapshot.update_timestamp
        if self._stored(at):
            self.stats.snapshots_duplicate += 1
            return IngestResult(Outcome.DUPLICATE, at)
        log.warning("snapshot quarantined", update_timestamp=at.isoformat(), reason=reason)
        with self.db.write("ingest.quarantine") as conn:
            snapshot_id = t.snapshot_id_for(at)
            conn.execute(
                insert(t.snapshots).values(
                    id=snapshot_id,
                    update_timestamp=at,
                    fetched_at=fetched_at,
                    status="quarantined",
                    reason=reason,
                    pilots=len(snapshot.pilots),
                    controllers=len(snapshot.controllers),
                    atis=len(snapshot.atis),
                    prefiles=len(snapshot.prefiles),
                    transceivers=None,
                )
            )
            conn.execute(
                insert(t.held_documents).values(
                    received_at=fetched_at,
                    kind="quarantined",
                    source=source,
                    reason=reason,
                    snapshot_id=snapshot_id,
                    body_gzip=self._held_body(raw),
                )
            )
        self.stats.snapshots_quarantined += 1
        received = snapshot_received(
            snapshot,
            snapshot_id=snapshot_id,
            outcome=Outcome.QUARANTINED.value,
            transceivers=None,
        )
        return IngestResult(
            Outcome.QUARANTINED, at, reason=reason, snapshot_id=snapshot_id, events=[received]
        )
