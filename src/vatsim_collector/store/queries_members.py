"""Reads for one member's history: flights flown, sessions controlled, totals.

Hours are what the collector saw, as everywhere: a session counts from the first snapshot it
appeared in to the last one (``first_seen_at`` to ``last_seen_at``). No name is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Row, func, literal, select

from vatsim_collector.store import schema as t


@dataclass(frozen=True)
class PilotTotals:
    sessions: int
    flights: int
    seconds: float
    first_seen: datetime | None
    last_seen: datetime | None


def pilot_totals(conn: Connection, cid: int) -> PilotTotals:
    p = t.pilot_sessions.c
    rows = conn.execute(
        select(p.first_seen_at, p.last_seen_at, p.flight_id).where(p.cid == cid)
    ).all()
    return PilotTotals(
        sessions=len(rows),
        flights=len({row.flight_id for row in rows}),
        seconds=sum((row.last_seen_at - row.first_seen_at).total_seconds() for row in rows),
        first_seen=min((row.first_seen_at for row in rows), default=None),
        last_seen=max((row.last_seen_at for row in rows), default=None),
    )


def ever_seen(conn: Connection, cid: int) -> bool:
    """Whether the member was ever seen, as a pilot, a controller or an ATIS."""
    for table in (t.pilot_sessions, t.controller_sessions, t.atis_sessions):
        if conn.execute(select(table.c.id).where(table.c.cid == cid).limit(1)).first():
            return True
    return False


def flights(conn: Connection, cid: int, limit: int, offset: int) -> tuple[int, list[Row[Any]]]:
    """The member's flights, newest first, with their sessions' count and seen time."""
    f, p = t.flights.c, t.pilot_sessions.c
    total = int(conn.execute(select(func.count()).where(f.cid == cid)).scalar_one())
    rows: list[Row[Any]] = list(
        conn.execute(
            select(
                f.id,
                f.callsign,
                f.departure,
                f.arrival,
                f.started_at,
                f.ended_at,
                func.count(p.id).label("sessions"),
            )
            .select_from(t.flights.outerjoin(t.pilot_sessions, p.flight_id == f.id))
            .where(f.cid == cid)
            .group_by(f.id, f.callsign, f.departure, f.arrival, f.started_at, f.ended_at)
            .order_by(f.started_at.desc(), f.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return total, rows


def flight_seconds(conn: Connection, flight_ids: list[int]) -> dict[int, float]:
    """Seen time per flight: the sum over its sessions (a reconnect's gap is not flown)."""
    if not flight_ids:
        return {}
    p = t.pilot_sessions.c
    out: dict[int, float] = dict.fromkeys(flight_ids, 0.0)
    for row in conn.execute(
        select(p.flight_id, p.first_seen_at, p.last_seen_at).where(p.flight_id.in_(flight_ids))
    ):
        out[row.flight_id] += (row.last_seen_at - row.first_seen_at).total_seconds()
    return out


def controller_sessions(
    conn: Connection, cid: int, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    """The member's controller and ATIS sessions, newest first; ``atis`` tells them apart."""
    parts = []
    for table, atis in ((t.controller_sessions, False), (t.atis_sessions, True)):
        c = table.c
        parts.append(
            select(
                c.id,
                c.callsign,
                c.facility,
                c.frequency,
                c.logon_time,
                c.first_seen_at,
                c.last_seen_at,
                c.ended_at,
                literal(atis, Boolean()).label("atis"),
            ).where(c.cid == cid)
        )
    union = parts[0].union_all(parts[1]).subquery()
    total = int(conn.execute(select(func.count()).select_from(union)).scalar_one())
    rows: list[Row[Any]] = list(
        conn.execute(
            select(union)
            .order_by(union.c.first_seen_at.desc(), union.c.atis, union.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return total, rows
