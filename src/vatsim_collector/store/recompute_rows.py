"""The stored rows a recompute of airspace analytics reads, and the rows it replaces.

Read in chunks of ids where a list of sessions is involved, so no statement carries more
parameters than SQLite allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from vatsim_collector.store import schema as t

# Ids per IN (...) list: under the bound-parameter limits of both backends.
IN_CHUNK = 5000


def chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


def pilot_sessions_overlapping(conn: Connection, start: datetime, end: datetime) -> Sequence[Any]:
    """Pilot sessions open at some moment of [start, end]: id, cid, callsign, flight, end."""
    ps = t.pilot_sessions
    return conn.execute(
        select(ps.c.id, ps.c.cid, ps.c.callsign, ps.c.flight_id, ps.c.ended_at).where(
            ps.c.first_seen_at <= end,
            (ps.c.ended_at.is_(None)) | (ps.c.last_seen_at >= start),
        )
    ).all()


def pilot_session_window(conn: Connection, ids: Sequence[int]) -> tuple[datetime, datetime]:
    """From the first seen to the last seen moment of these pilot sessions."""
    ps = t.pilot_sessions
    lows: list[datetime] = []
    highs: list[datetime] = []
    for chunk in chunks(ids):
        rows = conn.execute(
            select(ps.c.first_seen_at, ps.c.last_seen_at).where(ps.c.id.in_(chunk))
        ).all()
        lows.extend(r.first_seen_at for r in rows)
        highs.extend(r.last_seen_at for r in rows)
    return min(lows), max(highs)


def controller_sessions_overlapping(
    conn: Connection, start: datetime, end: datetime
) -> Sequence[Any]:
    cs = t.controller_sessions
    return conn.execute(
        select(cs).where(
            cs.c.first_seen_at <= end, (cs.c.ended_at.is_(None)) | (cs.c.last_seen_at >= start)
        )
    ).all()


def frequency_history(conn: Connection, controller_ids: Sequence[int]) -> list[Any]:
    """Each controller session's frequency and facility changes, in the order seen."""
    cf = t.controller_frequencies
    rows: list[Any] = []
    for chunk in chunks(controller_ids):
        rows.extend(
            conn.execute(select(cf).where(cf.c.controller_session_id.in_(chunk)).order_by(cf.c.id))
        )
    return rows


def delete_airspace_rows(conn: Connection, pilot_ids: Sequence[int]) -> tuple[int, int]:
    """Remove these sessions' occupancy and contact rows; how many of each."""
    so, ci = t.sector_occupancy, t.contact_intervals
    occupancies = contacts = 0
    for chunk in chunks(pilot_ids):
        occupancies += conn.execute(delete(so).where(so.c.pilot_session_id.in_(chunk))).rowcount
        contacts += conn.execute(delete(ci).where(ci.c.pilot_session_id.in_(chunk))).rowcount
    return occupancies, contacts


def accepted_snapshots(conn: Connection, low: datetime, high: datetime) -> Sequence[Any]:
    """Accepted snapshots in [low, high], oldest first: id, update timestamp, transceivers."""
    snap = t.snapshots
    return conn.execute(
        select(snap.c.id, snap.c.update_timestamp, snap.c.transceivers)
        .where(
            snap.c.status == "accepted",
            snap.c.update_timestamp >= low,
            snap.c.update_timestamp <= high,
        )
        .order_by(snap.c.id)
    ).all()


def snapshot_transceivers(conn: Connection, snapshot_id: int) -> list[Any]:
    tx = t.transceivers
    return list(
        conn.execute(
            select(tx)
            .where(tx.c.snapshot_id == snapshot_id)
            .order_by(tx.c.callsign, tx.c.transceiver_id)
        )
    )


def snapshot_positions(conn: Connection, snapshot_id: int) -> list[Any]:
    pos = t.positions
    return list(
        conn.execute(
            select(
                pos.c.pilot_session_id,
                pos.c.latitude,
                pos.c.longitude,
                pos.c.altitude,
                pos.c.groundspeed,
                pos.c.heading,
            )
            .where(pos.c.snapshot_id == snapshot_id)
            .order_by(pos.c.pilot_session_id)
        )
    )


def snapshots_after(conn: Connection, high: datetime, limit: int) -> Sequence[Any]:
    """The first ``limit`` accepted snapshots after ``high``, oldest first: those that end,
    by the missed-snapshot rule, the sessions last seen by then."""
    snap = t.snapshots
    return conn.execute(
        select(snap.c.id, snap.c.update_timestamp)
        .where(snap.c.status == "accepted", snap.c.update_timestamp > high)
        .order_by(snap.c.id)
        .limit(limit)
    ).all()


def filed_arrivals(
    conn: Connection, pilot_ids: Sequence[int]
) -> dict[int, list[tuple[datetime, str | None]]]:
    """Each pilot session's plan revisions as (first seen, arrival as filed), oldest first."""
    fp = t.flight_plans
    out: dict[int, list[tuple[datetime, str | None]]] = {}
    for chunk in chunks(pilot_ids):
        for r in conn.execute(
            select(fp.c.pilot_session_id, fp.c.first_seen_at, fp.c.arrival)
            .where(fp.c.pilot_session_id.in_(chunk))
            .order_by(fp.c.id)
        ):
            out.setdefault(r.pilot_session_id, []).append((r.first_seen_at, r.arrival))
    return out


def replaced_at(conn: Connection, pilot_ids: Sequence[int]) -> dict[int, datetime]:
    """For each of these sessions, when a later session of the same cid and callsign was
    first seen (a new logon ends the old session at once), if there was one."""
    ps = t.pilot_sessions
    later = ps.alias("later")
    out: dict[int, datetime] = {}
    for chunk in chunks(pilot_ids):
        for r in conn.execute(
            select(ps.c.id, func.min(later.c.first_seen_at).label("at"))
            .join(
                later,
                (later.c.cid == ps.c.cid)
                & (later.c.callsign == ps.c.callsign)
                & (later.c.first_seen_at > ps.c.last_seen_at),
            )
            .where(ps.c.id.in_(chunk))
            .group_by(ps.c.id)
        ):
            out[r.id] = r.at
    return out
