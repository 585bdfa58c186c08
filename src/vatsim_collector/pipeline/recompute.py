"""Recompute sector occupancy, ATC contact and summaries for a time range from stored data.

The unit of recomputation is the whole pilot session: every session overlapping [start, end]
is rebuilt from its first snapshot to its last, so no interval is cut at the range's edges and
the engine starts each session from nothing, exactly as live processing did. The snapshots
replayed therefore span from the earliest of those sessions' starts to the latest of their
last-seen times. Inputs are what live ingest stored: positions, the transceivers linked to
sessions (a snapshot whose transceivers were not fetched has none, and gives no contact, live
or here), controllers' frequency history, and the sector set, which must be the one used live.

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
from typing import Any

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
from vatsim_collector.store import recompute_rows as rows_of
from vatsim_collector.store.airspace_writer import write_airspace
from vatsim_collector.store.database import DatabaseService
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
        for r in rows_of.snapshot_positions(conn, snapshot.id)
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
        missed: dict[int, int] = {}
        for snapshot in snapshots:
            observed, tuned = _observations(conn, snapshot, pilots, controllers)
            seen = {o.ref.id for o in observed if o.ref.id is not None}
            ended: list[int] = []
            for key in list(missed):
                if key in seen:
                    continue
                missed[key] += 1
                if missed[key] >= missed_to_end:
                    del missed[key]
                    ended.append(key)
            for present in seen:
                missed[present] = 0
            changes = engine.step(snapshot.update_timestamp, observed, tuned, ended_pilots=ended)
            write_airspace(conn, changes)
            _written(changes, report)
            report.snapshots += 1
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
