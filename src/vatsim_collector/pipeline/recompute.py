"""Recompute sector occupancy, ATC contact and summaries for a time range from stored data.

The unit of recomputation is the whole pilot session: every session overlapping [start, end]
is rebuilt from its first snapshot to its last, so no interval is cut at the range's edges and
the engine starts each session from nothing, exactly as live processing did. The snapshots
replayed therefore span from the earliest of those sessions' starts to the latest of their
last-seen times. Inputs are what live ingest stored: positions, the transceivers linked to
sessions (a snapshot whose transceivers were not fetched has none, and gives no contact, live
or here), controllers' frequency history, and the sector set, which must be the one used live.

Movements (movements/), when a detector factory is given, are replayed the same way: each
session's stored positions through a fresh detector in snapshot order, with the filed arrival
of its latest plan revision at each snapshot and the same ends as live ingest (the
missed-snapshot rule, or a new logon of the callsign), so each movement is confirmed by the same
snapshot as live. The sessions' movement rows are replaced, and the saved detector state of
those still open is the detector's after the last snapshot.

Everything happens in one transaction: a recompute that fails leaves the old rows in place.
Positions and transceivers are expired by retention (30 and 7 days by default); a range older
than that has nothing left to recompute from.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection

from vatsim_collector.airspace.contacts import controller_radio
from vatsim_collector.airspace.engine import (
    AirspaceChanges,
    AirspaceEngine,
    ControllerObservation,
    PilotObservation,
    Point,
)
from vatsim_collector.feed.models import StationTransceivers, Transceiver
from vatsim_collector.movements.detector import DetectorStep, MovementDetector
from vatsim_collector.movements.model import Movement, PilotSample
from vatsim_collector.store import recompute_rows as rows_of
from vatsim_collector.store.airspace_writer import write_airspace
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.movements import (
    SavedState,
    delete_session_movements,
    insert_movements,
    replace_states,
)
from vatsim_collector.store.summaries_store import SummaryWriter
from vatsim_collector.tracking.state import Flight

__all__ = ["RecomputeReport", "recompute"]


@dataclass
class RecomputeReport:
    pilot_sessions: int = 0
    snapshots: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    occupancies_deleted: int = 0
    occupancies_written: int = 0
    contacts_deleted: int = 0
    contacts_written: int = 0
    flight_summaries: int = 0
    controller_summaries: int = 0
    movements_deleted: int = 0
    movements_written: int = 0
    movement_states: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("window_start", "window_end"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(eq=False)
class _Pilot:
    id: int
    cid: int
    callsign: str
    flight: Flight
    ended: bool


@dataclass(eq=False)
class _Controller:
    id: int
    callsign: str
    ended: bool
    # (first seen, frequency, facility), oldest first
    history: list[tuple[datetime, str, int]]

    def tuned_at(self, at: datetime) -> tuple[str, int]:
        i = bisect.bisect_right([h[0] for h in self.history], at) - 1
        _, frequency, facility = self.history[max(i, 0)]
        return frequency, facility


def _pilots(conn: Connection, start: datetime, end: datetime) -> dict[int, _Pilot]:
    rows = rows_of.pilot_sessions_overlapping(conn, start, end)
    flights: dict[int, Flight] = {}
    out: dict[int, _Pilot] = {}
    for r in rows:
        flight = flights.setdefault(
            r.flight_id,
            Flight(
                cid=r.cid,
                callsign=r.callsign,
                departure=None,
                arrival=None,
                started_at=start,
                id=r.flight_id,
            ),
        )
        out[r.id] = _Pilot(r.id, r.cid, r.callsign, flight, r.ended_at is not None)
    return out


def _controllers(conn: Connection, start: datetime, end: datetime) -> dict[int, _Controller]:
    sessions = rows_of.controller_sessions_overlapping(conn, start, end)
    out = {r.id: _Controller(r.id, r.callsign, r.ended_at is not None, []) for r in sessions}
    for r in rows_of.frequency_history(conn, sorted(out)):
        out[r.controller_session_id].history.append(
            (r.first_seen_at, r.frequency or "", r.facility)
        )
    for r in sessions:
        if not out[r.id].history:  # stored before frequencies were recorded
            out[r.id].history.append((r.first_seen_at, r.frequency or "", r.facility))
    return out


def _observations(
    conn: Connection,
    snapshot: Any,
    pilots: dict[int, _Pilot],
    controllers: dict[int, _Controller],
    positions: list[Any],
) -> tuple[list[PilotObservation], list[ControllerObservation]]:
    radios: dict[int, list[int]] = defaultdict(list)
    stations: dict[int, list[Transceiver]] = defaultdict(list)
    if snapshot.transceivers is not None:
        for r in rows_of.snapshot_transceivers(conn, snapshot.id):
            if r.pilot_session_id in pilots:
                radios[r.pilot_session_id].append(r.frequency_hz)
            elif r.controller_session_id in controllers:
                stations[r.controller_session_id].append(
                    Transceiver(
                        id=r.transceiver_id,
                        frequency=r.frequency_hz,
                        latDeg=r.latitude,
                        lonDeg=r.longitude,
                        heightMslM=r.height_msl_m,
                        heightAglM=r.height_agl_m,
                    )
                )
    observed = [
        PilotObservation(
            key=r.pilot_session_id,
            ref=pilots[r.pilot_session_id],
            point=Point(r.latitude, r.longitude, r.altitude),
            radios_hz=tuple(dict.fromkeys(f for f in radios.get(r.pilot_session_id, ()) if f > 0)),
        )
        for r in positions
        if r.pilot_session_id in pilots
    ]
    at = snapshot.update_timestamp
    tuned: list[ControllerObservation] = []
    for cid, transceivers in stations.items():
        controller = controllers[cid]
        frequency, facility = controller.tuned_at(at)
        station = StationTransceivers(callsign=controller.callsign, transceivers=transceivers)
        tuned.append(
            ControllerObservation(
                key=cid,
                ref=controller,
                radio=controller_radio(cid, frequency, facility, controller.callsign, station),
            )
        )
    return observed, tuned


class _Ends:
    """Which sessions end with each replayed snapshot, as live ingest ended them: after
    ``missed_to_end`` accepted snapshots in a row without them, or, with ``replaced``, at the
    snapshot where a new logon of the same cid and callsign was first seen."""

    def __init__(self, missed_to_end: int, replaced: dict[int, datetime] | None = None) -> None:
        self.missed_to_end = missed_to_end
        self.replaced = replaced or {}
        self.missed: dict[int, int] = {}

    def step(self, at: datetime, seen: set[int]) -> list[int]:
        ended: list[int] = []
        for key in list(self.missed):
            if key in seen:
                continue
            self.missed[key] += 1
            replaced = self.replaced.get(key)
            if self.missed[key] >= self.missed_to_end or (replaced is not None and replaced <= at):
                del self.missed[key]
                ended.append(key)
        for present in seen:
            self.missed[present] = 0
        return ended


class _MovementReplay:
    """One detector over the replayed snapshots; the rows it finds and the states it keeps."""

    def __init__(
        self,
        detector: MovementDetector,
        pilots: dict[int, _Pilot],
        plans: dict[int, list[tuple[datetime, str | None]]],
        ends: _Ends,
    ) -> None:
        self.detector = detector
        self.pilots = pilots
        self.plans = plans
        self.ends = ends
        self.found: list[tuple[Movement, int]] = []
        # The last state saved per session and the snapshot that saved it.
        self.states: dict[int, tuple[str, int]] = {}

    def _filed(self, session_id: int, at: datetime) -> str | None:
        revisions = self.plans.get(session_id)
        if not revisions:
            return None
        i = bisect.bisect_right([r[0] for r in revisions], at) - 1
        return revisions[i][1] if i >= 0 else None

    def step(self, snapshot_id: int, at: datetime, positions: list[Any]) -> None:
        samples = [
            PilotSample(
                key=r.pilot_session_id,
                ref=self.pilots[r.pilot_session_id],
                latitude=r.latitude,
                longitude=r.longitude,
                altitude_ft=float(r.altitude),
                groundspeed_kt=float(r.groundspeed),
                heading_deg=float(r.heading),
                filed_arrival=self._filed(r.pilot_session_id, at),
            )
            for r in positions
            if r.pilot_session_id in self.pilots
        ]
        ended = self.ends.step(
            at, {r.pilot_session_id for r in positions if r.pilot_session_id in self.pilots}
        )
        self._keep(self.detector.step(at, samples, ended), snapshot_id)

    def _keep(self, step: DetectorStep, snapshot_id: int) -> None:
        self.found.extend((m, snapshot_id) for m in step.movements)
        for key, _ref, state in step.saved:
            self.states[cast(int, key)] = (state, snapshot_id)
        for key, _ref in step.dropped:
            self.states.pop(cast(int, key), None)

    def finish(self, last_snapshot: Any) -> None:
        """End what the database ended but no replayed snapshot did (the rest of its
        snapshots are gone), at the last replayed snapshot."""
        left = [k for k in self.ends.missed if self.pilots[k].ended]
        if left and last_snapshot is not None:
            step = self.detector.step(last_snapshot.update_timestamp, [], left)
            self._keep(step, last_snapshot.id)

    def write(self, conn: Connection, report: RecomputeReport) -> None:
        ids = sorted(self.pilots)
        report.movements_deleted += delete_session_movements(conn, ids)
        rows = []
        for m, _snapshot_id in self.found:
            p = m.ref
            assert isinstance(p, _Pilot)
            rows.append((m, p.id, p.flight.id or 0, p.cid, p.callsign))
        report.movements_written += insert_movements(
            conn, rows, snapshot_ids=[sid for _m, sid in self.found]
        )
        report.movement_states += replace_states(
            conn,
            ids,
            [
                SavedState(key, state, snapshot_id)
                for key, (state, snapshot_id) in sorted(self.states.items())
                if not self.pilots[key].ended
            ],
        )


def _written(changes: AirspaceChanges, report: RecomputeReport) -> None:
    report.occupancies_written += len(changes.entered)
    report.contacts_written += len(changes.contacts_started)


def recompute(
    db: DatabaseService,
    engine_factory: Callable[[], AirspaceEngine],
    *,
    start: datetime,
    end: datetime,
    missed_to_end: int,
    detector_factory: Callable[[], MovementDetector | None] | None = None,
) -> RecomputeReport:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end < start:
        raise ValueError("end must not be before start")
    report = RecomputeReport()
    with db.write("recompute") as conn:
        pilots = _pilots(conn, start, end)
        report.pilot_sessions = len(pilots)
        if not pilots:
            return report
        low, high = rows_of.pilot_session_window(conn, sorted(pilots))
        report.window_start, report.window_end = low, high
        controllers = _controllers(conn, low, high)
        deleted = rows_of.delete_airspace_rows(conn, sorted(pilots))
        report.occupancies_deleted, report.contacts_deleted = deleted
        engine = engine_factory()
        snapshots = rows_of.accepted_snapshots(conn, low, high)
        ends = _Ends(missed_to_end)
        missed = ends.missed
        detector = detector_factory() if detector_factory is not None else None
        moves = (
            None
            if detector is None
            else _MovementReplay(
                detector,
                pilots,
                rows_of.filed_arrivals(conn, sorted(pilots)),
                _Ends(missed_to_end, rows_of.replaced_at(conn, sorted(pilots))),
            )
        )
        for snapshot in snapshots:
            positions = rows_of.snapshot_positions(conn, snapshot.id)
            observed, tuned = _observations(conn, snapshot, pilots, controllers, positions)
            seen = {o.ref.id for o in observed if o.ref.id is not None}
            ended = ends.step(snapshot.update_timestamp, seen)
            changes = engine.step(snapshot.update_timestamp, observed, tuned, ended_pilots=ended)
            write_airspace(conn, changes)
            _written(changes, report)
            if moves is not None:
                moves.step(snapshot.id, snapshot.update_timestamp, positions)
            report.snapshots += 1
        if moves is not None:
            # The snapshots after the window end the sessions last seen in it, as they did live.
            last = snapshots[-1] if snapshots else None
            for after in rows_of.snapshots_after(conn, high, missed_to_end):
                moves.step(after.id, after.update_timestamp, [])
                last = after
            moves.finish(last)
            moves.write(conn, report)
        # Sessions that ended after the last replayed snapshot, and controllers that ended:
        # their rows close at their last inside / last contact, whenever that is noticed.
        closing = engine.step(
            high,
            [],
            [],
            ended_pilots=[k for k in missed if pilots[k].ended],
            ended_controllers=[c.id for c in controllers.values() if c.ended],
        )
        write_airspace(conn, closing)
        writer = SummaryWriter(db)
        for flight_id in sorted({p.flight.id for p in pilots.values() if p.flight.id}):
            report.flight_summaries += writer.flight_in(conn, flight_id)
        for controller_id in sorted(controllers):
            report.controller_summaries += writer.controller_in(conn, controller_id)
    return report
