"""Reads for the event traffic report: airports' runway movements in a window counted per
quarter hour, how many of those flights were in contact with ATC, and the sectors their
sessions flew through.

Only takeoffs and landings count: they are what an event team calls departures and arrivals.
Everything is counted inside the database, per airport: an event day has thousands of
movements, contacts and sector visits, and reading them row by row into Python cost several
times the queries themselves. The sessions behind the movements are selected by a subquery on
the same movements, so their ids never travel as bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Subquery,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
)

from vatsim_collector.store import schema as t

TAKEOFF = "takeoff"
LANDING = "landing"
_COUNTED = (TAKEOFF, LANDING)
QUARTER_SECONDS = 900


@dataclass(frozen=True)
class QuarterCount:
    airport: str
    kind: str  # takeoff or landing
    start: datetime  # the aligned quarter hour (UTC)
    movements: int


@dataclass(frozen=True)
class ContactCount:
    flights: int  # with a counted movement at the airport in the window
    in_contact: int  # of those, in contact with any ATC during the window


def _quarter(conn: Connection, at: ColumnElement[datetime]) -> ColumnElement[int]:
    """The quarter hour ``at`` falls in, as quarters since the epoch."""
    if conn.dialect.name == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; %s is whole epoch seconds.
        seconds: ColumnElement[int] = cast(func.strftime("%s", at), Integer)
        return seconds // QUARTER_SECONDS
    return cast(func.floor(func.extract("epoch", at) / QUARTER_SECONDS), BigInteger)


def _counted(airports: Sequence[str], start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    m = t.movements.c
    return [m.airport.in_(list(airports)), m.kind.in_(_COUNTED), m.at >= start, m.at < end]


def _sessions(airports: Sequence[str], start: datetime, end: datetime) -> Subquery:
    """(airport, pilot session, flight) of each counted movement, each once."""
    m = t.movements.c
    return (
        select(m.airport, m.pilot_session_id, m.flight_id)
        .distinct()
        .where(*_counted(airports, start, end))
        .subquery("counted")
    )


def quarter_counts(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> list[QuarterCount]:
    """Takeoffs and landings at ``airports`` (ICAO codes) in [start, end), per airport, kind
    and aligned quarter hour; quarters without movements are left out."""
    m = t.movements.c
    quarter = _quarter(conn, m.at).label("quarter")
    rows = conn.execute(
        select(m.airport, m.kind, quarter, func.count().label("n"))
        .where(*_counted(airports, start, end))
        .group_by(m.airport, m.kind, quarter)
    )
    return [
        QuarterCount(
            r.airport,
            r.kind,
            datetime.fromtimestamp(int(r.quarter) * QUARTER_SECONDS, UTC),
            int(r.n),
        )
        for r in rows
    ]


def contact_counts(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> dict[str, ContactCount]:
    """Per airport with counted movements: its flights, and those of which a session with such
    a movement had a contact with any controller overlapping the window (a contact still open
    lasts to now)."""
    counted = _sessions(airports, start, end)
    ci = t.contact_intervals.c
    contacted = exists().where(
        ci.pilot_session_id == counted.c.pilot_session_id,
        ci.started_at < end,
        or_(ci.ended_at.is_(None), ci.ended_at > start),
    )
    flight = counted.c.flight_id
    rows = conn.execute(
        select(
            counted.c.airport,
            func.count(flight.distinct()),
            # One pass: a contacted flight's id, else NULL, which COUNT leaves out.
            func.count(case((contacted, flight)).distinct()),
        ).group_by(counted.c.airport)
    )
    return {str(a): ContactCount(int(flights), int(n)) for a, flights, n in rows}


def sector_counts(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> list[tuple[str, str, int]]:
    """(airport, sector, distinct sessions) for the sessions with a counted movement at the
    airport in the window, counting sector visits that overlap the window."""
    counted = _sessions(airports, start, end)
    so = t.sector_occupancy.c
    n = func.count(so.pilot_session_id.distinct())
    rows = conn.execute(
        select(counted.c.airport, so.sector, n)
        .select_from(
            counted.join(
                t.sector_occupancy,
                and_(
                    so.pilot_session_id == counted.c.pilot_session_id,
                    so.entered_at < end,
                    or_(so.exited_at.is_(None), so.exited_at > start),
                ),
            )
        )
        .group_by(counted.c.airport, so.sector)
    )
    return [(str(a), str(s), int(c)) for a, s, c in rows]
