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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from vatsim_collector.airspace.contacts import controller_radio
from vatsim_collector.airspace.engine import (
    AirspaceChanges,
    AirspaceEngine,
    ControllerObservation,
    PilotObservation,
    Point,
)
from vatsim_collector.feed.models import StationTransceivers, Transceiver
from vatsim_collector.store import schema as t
from vatsim_collector.store.airspace_writer import write_airspace
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.summaries_store import SummaryWriter
from vatsim_collector.tracking.state import Flight

__all__ = ["RecomputeReport", "recompute"]

_IN_CHUNK = 5000


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


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


def _pilots(conn: Connection, start: datetime, end: datetime) -> dict[int, _Pilot]:
    ps = t.pilot_sessions
    rows = conn.execute(
        select(ps.c.id, ps.c.cid, ps.c.callsign, ps.c.flight_id, ps.c.ended_at).where(
            ps.c.first_seen_at <= end,
            (ps.c.ended_at.is_(None)) | (ps.c.last_seen_at >= start),
        )
    ).all()
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


def _window(conn: Connection, ids: Sequence[int]) -> tuple[datetime, datetime]:
    ps = t.pilot_sessions
    lows: list[datetime] = []
    highs: list[datetime] = []
    for chunk in _chunks(ids):
        row = conn.execute(
            select(ps.c.first_seen_at, ps.c.last_seen_at).where(ps.c.id.in_(chunk))
        ).all()
        lows.extend(r.first_seen_at for r in row)
        highs.extend(r.last_seen_at for r in row)
    return min(lows), max(highs)


def _controllers(conn: Connection, start: datetime, end: datetime) -> dict[int, _Controller]:
    cs, cf = t.controller_sessions, t.controller_frequencies
    sessions = conn.execute(
        select(cs).where(
            cs.c.first_seen_at <= end, (cs.c.ended_at.is_(None)) | (cs.c.last_seen_at >= start)
        )
    ).all()
    out = {r.id: _Controller(r.id, r.callsign, r.ended_at is not None, []) for r in sessions}
    for chunk in _chunks(sorted(out)):
        for r in conn.execute(
            select(cf).where(cf.c.controller_session_id.in_(chunk)).order_by(cf.c.id)
        ):
            out[r.controller_session_id].history.append(
                (r.first_seen_at, r.frequency or "", r.facility)
            )
    for r in sessions:
        if not out[r.id].history:  # stored before frequencies were recorded
            out[r.id].history.append((r.first_seen_at, r.frequency or "", r.facility))
    return out


def _delete(conn: Connection, ids: Sequence[int], report: RecomputeReport) -> None:
    for chunk in _chunks(ids):
        so, ci = t.sector_occupancy, t.contact_intervals
        report.occupancies_deleted += conn.execute(
            delete(so).where(so.c.pilot_session_id.in_(chunk))
        ).rowcount
        report.contacts_deleted += conn.execute(
            delete(ci).where(ci.c.pilot_session_id.in_(chunk))
        ).rowcount


def _observations(
    conn: Connection,
    snapshot: Any,
    pilots: dict[int, _Pilot],
    controllers: dict[int, _Controller],
) -> tuple[list[PilotObservation], list[ControllerObservation]]:
    pos, tx = t.positions, t.transceivers
    radios: dict[int, list[int]] = defaultdict(list)
    stations: dict[int, list[Transceiver]] = defaultdict(list)
    if snapshot.transceivers is not None:
        for r in conn.execute(
            select(tx)
            .where(tx.c.snapshot_id == snapshot.id)
            .order_by(tx.c.callsign, tx.c.transceiver_id)
        ):
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
        for r in conn.execute(
            select(pos.c.pilot_session_id, pos.c.latitude, pos.c.longitude, pos.c.altitude)
            .where(pos.c.snapshot_id == snapshot.id)
            .order_by(pos.c.pilot_session_id)
        )
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
        low, high = _window(conn, sorted(pilots))
        report.window_start, report.window_end = low, high
        controllers = _controllers(conn, low, high)
        _delete(conn, sorted(pilots), report)
        engine = engine_factory()
        snap = t.snapshots
        snapshots = conn.execute(
            select(snap.c.id, snap.c.update_timestamp, snap.c.transceivers)
            .where(
                snap.c.status == "accepted",
                snap.c.update_timestamp >= low,
                snap.c.update_timestamp <= high,
            )
            .order_by(snap.c.id)
        ).all()
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
