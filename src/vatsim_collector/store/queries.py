"""Read-only queries for the API: SQLAlchemy Core ``select()`` with bound parameters only.

They run on SQLite and PostgreSQL alike; nothing here builds SQL text from caller input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, select

from vatsim_collector.store import schema as t


@dataclass(frozen=True)
class FlightRow:
    id: int
    callsign: str
    departure: str | None
    arrival: str | None


@dataclass(frozen=True)
class PositionRow:
    time: datetime
    latitude: float
    longitude: float
    altitude: int
    groundspeed: int
    heading: int


_FLIGHT_COLUMNS = (t.flights.c.id, t.flights.c.callsign, t.flights.c.departure, t.flights.c.arrival)


def latest_flight(conn: Connection, callsign: str) -> FlightRow | None:
    """The callsign's most recently started flight (uses ix_flights_callsign_started_at)."""
    row = conn.execute(
        select(*_FLIGHT_COLUMNS)
        .where(t.flights.c.callsign == callsign)
        .order_by(t.flights.c.started_at.desc(), t.flights.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else FlightRow(row.id, row.callsign, row.departure, row.arrival)


def flight_by_id(conn: Connection, flight_id: int) -> FlightRow | None:
    row = conn.execute(select(*_FLIGHT_COLUMNS).where(t.flights.c.id == flight_id)).first()
    return None if row is None else FlightRow(row.id, row.callsign, row.departure, row.arrival)


def flight_track(conn: Connection, flight_id: int) -> list[PositionRow]:
    """Every stored position of the flight, across all its pilot sessions, in time order.

    Positions are keyed by snapshot first, so the query walks the snapshots of each session's
    lifetime and looks up one primary key per snapshot instead of scanning all traffic.
    """
    p, s, ps = t.positions, t.snapshots, t.pilot_sessions
    query = (
        select(
            s.c.update_timestamp,
            p.c.latitude,
            p.c.longitude,
            p.c.altitude,
            p.c.groundspeed,
            p.c.heading,
        )
        .select_from(
            ps.join(
                s,
                and_(
                    s.c.update_timestamp >= ps.c.first_seen_at,
                    s.c.update_timestamp <= ps.c.last_seen_at,
                ),
            ).join(p, and_(p.c.snapshot_id == s.c.id, p.c.pilot_session_id == ps.c.id))
        )
        .where(ps.c.flight_id == flight_id)
        .order_by(s.c.update_timestamp, p.c.pilot_session_id)
    )
    return [PositionRow(*row) for row in conn.execute(query)]
