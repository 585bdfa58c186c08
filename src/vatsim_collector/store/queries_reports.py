"""Reads for the event traffic report: one airport's (or several airports') runway movements in
a window, which of those flights' sessions were in contact with ATC, and the sectors they
flew through.

Only takeoffs and landings are read: they are what an event team counts as departures and
arrivals. The sessions behind them are selected inside the database (a subquery on the same
movements), so a busy day's thousands of session ids never travel as bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Select, and_, or_, select

from vatsim_collector.store import schema as t

TAKEOFF = "takeoff"
LANDING = "landing"
_COUNTED = (TAKEOFF, LANDING)


@dataclass(frozen=True)
class Movement:
    airport: str
    kind: str  # takeoff or landing
    at: datetime
    flight_id: int
    pilot_session_id: int


def _counted(airports: Sequence[str], start: datetime, end: datetime) -> Select[tuple[int]]:
    m = t.movements.c
    return select(m.pilot_session_id).where(
        m.airport.in_(list(airports)), m.kind.in_(_COUNTED), m.at >= start, m.at < end
    )


def movements(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> list[Movement]:
    """Takeoffs and landings at ``airports`` (ICAO codes) in [start, end), oldest first."""
    m = t.movements.c
    rows = conn.execute(
        select(m.airport, m.kind, m.at, m.flight_id, m.pilot_session_id)
        .where(m.airport.in_(list(airports)), m.kind.in_(_COUNTED), m.at >= start, m.at < end)
        .order_by(m.at, m.id)
    )
    return [
        Movement(r.airport, r.kind, r.at, int(r.flight_id), int(r.pilot_session_id)) for r in rows
    ]


def sessions_in_contact(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> set[int]:
    """The pilot sessions with a counted movement at ``airports`` in the window that had a
    contact with any controller overlapping the window (a contact still open counts to now)."""
    ci = t.contact_intervals.c
    rows = conn.execute(
        select(ci.pilot_session_id)
        .distinct()
        .where(
            ci.pilot_session_id.in_(_counted(airports, start, end)),
            ci.started_at < end,
            or_(ci.ended_at.is_(None), ci.ended_at > start),
        )
    )
    return {int(r.pilot_session_id) for r in rows}


def sectors_flown(
    conn: Connection, airports: Sequence[str], start: datetime, end: datetime
) -> list[tuple[int, str]]:
    """(pilot session, sector) for each sector occupancy overlapping the window of a session
    with a counted movement at ``airports`` in it; each pair once."""
    so = t.sector_occupancy.c
    rows = conn.execute(
        select(so.pilot_session_id, so.sector)
        .distinct()
        .where(
            and_(
                so.pilot_session_id.in_(_counted(airports, start, end)),
                so.entered_at < end,
                or_(so.exited_at.is_(None), so.exited_at > start),
            )
        )
    )
    return [(int(r.pilot_session_id), str(r.sector)) for r in rows]
