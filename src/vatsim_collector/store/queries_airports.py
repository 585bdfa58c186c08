"""Reads for the airport endpoints: an airport's movements, counted, listed and timed, and the
airports with the most movements.

Departures are ``takeoff`` movements at the airport and arrivals ``landing`` movements;
touch-and-goes are counted apart and are in neither. Windows are half-open, ``[start, end)``,
on the movement's time ``at``. Every read of one airport goes through the
``(airport, at)`` index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Integer, Row, and_, case, func, select

from vatsim_collector.store import schema as t

DEPARTURE = "takeoff"
ARRIVAL = "landing"
TOUCH_AND_GO = "touch_and_go"
# The kinds traffic counts are made of.
COUNTED = (DEPARTURE, ARRIVAL, TOUCH_AND_GO)


@dataclass(frozen=True)
class Counts:
    departures: int = 0
    arrivals: int = 0
    touch_and_goes: int = 0

    @property
    def total(self) -> int:
        return self.departures + self.arrivals


@dataclass(frozen=True)
class BusyAirport:
    airport: str
    counts: Counts


def _kind_sum(kind: str) -> Any:
    m = t.movements.c
    return func.coalesce(func.sum(case((m.kind == kind, 1), else_=0)), 0).cast(Integer)


def counts(conn: Connection, airport: str, start: datetime, end: datetime) -> Counts:
    """Departures, arrivals and touch-and-goes at ``airport`` in ``[start, end)``."""
    m = t.movements.c
    row = conn.execute(
        select(_kind_sum(DEPARTURE), _kind_sum(ARRIVAL), _kind_sum(TOUCH_AND_GO)).where(
            m.airport == airport, m.at >= start, m.at < end, m.kind.in_(COUNTED)
        )
    ).one()
    return Counts(int(row[0]), int(row[1]), int(row[2]))


def per_minute(
    conn: Connection, airport: str, start: datetime, end: datetime
) -> list[tuple[datetime, str, int]]:
    """Departures, arrivals and touch-and-goes at ``airport`` in ``[start, end)`` counted per
    UTC minute and kind: ``(minute, kind, count)``, oldest first. Buckets and the peak hour
    start on whole minutes, so the minute is all they need, and a busy day is a few hundred
    rows rather than thousands. Bucketed by the caller: bucket arithmetic on times is spelt
    differently by SQLite and PostgreSQL."""
    m = t.movements.c
    minute: Any
    if conn.dialect.name == "postgresql":
        minute = func.date_trunc("minute", m.at)
    else:
        # SQLite keeps times as ISO text: the minute is its first 16 characters.
        minute = func.substr(m.at, 1, 16)
    rows = conn.execute(
        select(minute.label("minute"), m.kind, func.count())
        .where(m.airport == airport, m.at >= start, m.at < end, m.kind.in_(COUNTED))
        .group_by(minute, m.kind)
        .order_by(minute)
    )
    return [(_minute(row[0]), str(row[1]), int(row[2])) for row in rows]


def _minute(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def page(
    conn: Connection,
    airport: str,
    start: datetime,
    end: datetime,
    kinds: Sequence[str] | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Row[Any]]]:
    """The movements at ``airport`` in ``[start, end)`` of ``kinds`` (all when None), newest
    first (then by id, newest first, so that pages never overlap), and how many there are."""
    m = t.movements.c
    where = and_(
        m.airport == airport,
        m.at >= start,
        m.at < end,
        *([m.kind.in_(list(kinds))] if kinds is not None else []),
    )
    total = int(
        conn.execute(select(func.count()).select_from(t.movements).where(where)).scalar_one()
    )
    rows: list[Row[Any]] = list(
        conn.execute(
            select(
                m.id,
                m.kind,
                m.at,
                m.cid,
                m.callsign,
                m.flight_id,
                m.pilot_session_id,
                m.runway_heading,
                m.diversion,
                m.filed_arrival,
                m.bracket_from,
                m.bracket_to,
            )
            .where(where)
            .order_by(m.at.desc(), m.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return total, rows


def busiest(conn: Connection, start: datetime, end: datetime, limit: int) -> list[BusyAirport]:
    """Airports by departures plus arrivals in ``[start, end)``, most first (ties by code);
    movements away from any airport are not an airport's."""
    m = t.movements.c
    departures, arrivals = _kind_sum(DEPARTURE), _kind_sum(ARRIVAL)
    total = (departures + arrivals).label("total")
    rows = conn.execute(
        select(m.airport, departures, arrivals, _kind_sum(TOUCH_AND_GO), total)
        .where(m.at >= start, m.at < end, m.kind.in_(COUNTED), m.airport.is_not(None))
        .group_by(m.airport)
        .order_by(total.desc(), m.airport)
        .limit(limit)
    )
    return [BusyAirport(str(row[0]), Counts(int(row[1]), int(row[2]), int(row[3]))) for row in rows]
