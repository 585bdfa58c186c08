"""Rebuilds the airspace engine's state from the database after a restart.

Open occupancies and contacts are rows without an end. What the engine kept between their
start and end is derived, exactly, from what is stored:

* an open occupancy's last time inside and its count of snapshots outside come from the
  session's last ``exit_after`` positions, classified by the same sector set;
* an open contact's last contact is its pilot session's last-seen time: had the pilot been seen
  without the contact since, the contact would have ended (and been written) then.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import Connection, Row, func, select

from vatsim_collector.airspace.engine import AirspaceState, OpenContact, OpenOccupancy, Point
from vatsim_collector.airspace.live import LiveAirspace
from vatsim_collector.store import schema as t
from vatsim_collector.tracking.state import LiveState

__all__ = ["restore_airspace"]

log = structlog.get_logger(__name__)

_IN_CHUNK = 5000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


def _last_positions(
    conn: Connection, session_ids: list[int], count: int
) -> dict[int, list[Row[Any]]]:
    """Each session's last ``count`` positions, newest first, with their snapshot times."""
    pos, snap = t.positions, t.snapshots
    found: dict[int, list[Row[Any]]] = defaultdict(list)
    for chunk in _chunks(session_ids):
        ranked = (
            select(
                pos.c.pilot_session_id,
                pos.c.snapshot_id,
                pos.c.latitude,
                pos.c.longitude,
                pos.c.altitude,
                func.row_number()
                .over(partition_by=pos.c.pilot_session_id, order_by=pos.c.snapshot_id.desc())
                .label("rank"),
            )
            .where(pos.c.pilot_session_id.in_(chunk))
            .subquery()
        )
        rows = conn.execute(
            select(ranked, snap.c.update_timestamp)
            .join(snap, snap.c.id == ranked.c.snapshot_id)
            .where(ranked.c.rank <= count)
            .order_by(ranked.c.pilot_session_id, ranked.c.rank)
        ).all()
        for row in rows:
            found[row.pilot_session_id].append(row)
    return found


def _restore_occupancy(conn: Connection, live: LiveAirspace, state: LiveState) -> None:
    engine = live.engine
    sessions = {s.id: s for s in state.pilots.values() if s.id is not None}
    occ = t.sector_occupancy
    open_rows = [
        r
        for r in conn.execute(select(occ).where(occ.c.exited_at.is_(None))).all()
        if r.pilot_session_id in sessions
    ]
    if not open_rows:
        return
    history = _last_positions(
        conn, sorted({r.pilot_session_id for r in open_rows}), engine.exit_after
    )
    flat = [(sid, row) for sid, rows in history.items() for row in rows]
    sectors = engine.classify([Point(r.latitude, r.longitude, r.altitude) for _, r in flat])
    classified: dict[int, list[tuple[Row[Any], str | None]]] = defaultdict(list)
    for (sid, row), sector in zip(flat, sectors, strict=True):
        classified[sid].append((row, sector))
    for r in open_rows:
        session = sessions[r.pilot_session_id]
        entry = Point(r.entry_latitude, r.entry_longitude, r.entry_altitude)
        last_at, last, outside = r.entered_at, entry, 0
        for row, sector in classified[r.pilot_session_id]:  # newest first
            if sector == r.sector:
                last_at = row.update_timestamp
                last = Point(row.latitude, row.longitude, row.altitude)
                break
            outside += 1
        engine.restore_occupancy(
            session.key,
            OpenOccupancy(
                pilot=session,
                sector=r.sector,
                entered_at=r.entered_at,
                entry=entry,
                last_inside_at=last_at,
                last_inside=last,
                outside=outside,
            ),
        )


def _restore_contacts(conn: Connection, live: LiveAirspace, state: LiveState) -> None:
    pilots = {s.id: s for s in state.pilots.values() if s.id is not None}
    controllers = {s.id: s for s in state.controllers.values() if s.id is not None}
    con = t.contact_intervals
    for r in conn.execute(select(con).where(con.c.ended_at.is_(None))).all():
        pilot = pilots.get(r.pilot_session_id)
        controller = controllers.get(r.controller_session_id)
        if pilot is None or controller is None:
            # Its session ended without the contact being ended: not possible through the
            # engine, so say so rather than guess.
            log.warning("open contact of an ended session left as it is", contact_id=r.id)
            continue
        live.engine.restore_contact(
            pilot.key,
            controller.key,
            OpenContact(
                pilot=pilot,
                controller=controller,
                frequency_hz=r.frequency_hz,
                started_at=r.started_at,
                last_contact_at=pilot.last_seen,
            ),
        )
    freq = t.controller_frequencies
    for chunk in _chunks(sorted(controllers)):
        for r in conn.execute(
            select(freq).where(freq.c.controller_session_id.in_(chunk)).order_by(freq.c.id)
        ).all():
            session = controllers[r.controller_session_id]
            live.frequencies[session.key] = (r.frequency or "", r.facility)


def restore_airspace(conn: Connection, live: LiveAirspace, state: LiveState) -> None:
    live.engine.state = AirspaceState()
    live.frequencies.clear()
    _restore_occupancy(conn, live, state)
    _restore_contacts(conn, live, state)
