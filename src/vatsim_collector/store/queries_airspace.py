"""Read-only queries of the airspace and summary endpoints: Core ``select()``, bound parameters.

Caller input only ever reaches SQL as bound values, so a hostile name or code is just a value
that matches nothing. Time windows are half-open, ``[start, end)``, everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    distinct,
    exists,
    func,
    or_,
    select,
)

from vatsim_collector.store import schema as t

_so, _ps, _ci, _cs = (
    t.sector_occupancy,
    t.pilot_sessions,
    t.contact_intervals,
    t.controller_sessions,
)
_pos, _snap = t.positions, t.snapshots
_fs, _csum = t.flight_summaries, t.controller_summaries


@dataclass(frozen=True)
class OccupancyRow:
    id: int
    sector: str
    flight_id: int
    pilot_session_id: int
    callsign: str
    entered_at: datetime
    entry_latitude: float
    entry_longitude: float
    entry_altitude: int
    exited_at: datetime | None
    exit_latitude: float | None
    exit_longitude: float | None
    exit_altitude: int | None


@dataclass(frozen=True)
class Span:
    flight_id: int
    entered_at: datetime
    exited_at: datetime | None


@dataclass(frozen=True)
class CoverageRow:
    key: Any  # the snapshot time, or the sector name
    samples: int
    covered: int


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[dict[str, Any]]


_OCCUPANCY_COLUMNS = (
    _so.c.id,
    _so.c.sector,
    _so.c.flight_id,
    _so.c.pilot_session_id,
    _ps.c.callsign,
    _so.c.entered_at,
    _so.c.entry_latitude,
    _so.c.entry_longitude,
    _so.c.entry_altitude,
    _so.c.exited_at,
    _so.c.exit_latitude,
    _so.c.exit_longitude,
    _so.c.exit_altitude,
)


def _occupancies(*where: ColumnElement[bool]) -> Select[Any]:
    return (
        select(*_OCCUPANCY_COLUMNS)
        .join(_ps, _ps.c.id == _so.c.pilot_session_id)
        .where(*where)
        .order_by(_so.c.entered_at, _so.c.id)
    )


def _count(table: Any, where: Sequence[ColumnElement[bool]]) -> Select[int]:
    return select(func.count()).select_from(table).where(*where)


# -- sectors -------------------------------------------------------------------------------


def open_counts(conn: Connection, names: Sequence[str]) -> dict[str, int]:
    """Pilot sessions with an open occupancy row, for each of ``names`` that has any."""
    if not names:
        return {}
    rows = conn.execute(
        select(_so.c.sector, func.count(distinct(_so.c.pilot_session_id)))
        .where(_so.c.exited_at.is_(None), _so.c.sector.in_(list(names)))
        .group_by(_so.c.sector)
    )
    return {sector: int(n) for sector, n in rows}


def current_occupancy(conn: Connection, sector: str) -> list[OccupancyRow]:
    rows = conn.execute(_occupancies(_so.c.sector == sector, _so.c.exited_at.is_(None)))
    return [OccupancyRow(*row) for row in rows]


def _overlapping(sector: str, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Visits of ``sector`` meeting ``[start, end)``; a visit's own range is closed."""
    return [
        _so.c.sector == sector,
        _so.c.entered_at < end,
        or_(_so.c.exited_at.is_(None), _so.c.exited_at >= start),
    ]


def visits(
    conn: Connection, sector: str, start: datetime, end: datetime, limit: int, offset: int
) -> tuple[int, list[OccupancyRow]]:
    where = _overlapping(sector, start, end)
    total = conn.execute(_count(_so, where)).scalar_one()
    rows = conn.execute(_occupancies(*where).limit(limit).offset(offset))
    return int(total), [OccupancyRow(*row) for row in rows]


def visit_spans(conn: Connection, sector: str, start: datetime, end: datetime) -> list[Span]:
    """Only what the hourly counts need, for every visit of the window (not one page)."""
    rows = conn.execute(
        select(_so.c.flight_id, _so.c.entered_at, _so.c.exited_at).where(
            *_overlapping(sector, start, end)
        )
    )
    return [Span(*row) for row in rows]


def flight_occupancy(conn: Connection, flight_id: int) -> list[OccupancyRow]:
    return [OccupancyRow(*row) for row in conn.execute(_occupancies(_so.c.flight_id == flight_id))]


# -- coverage ------------------------------------------------------------------------------


def _samples_in(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Positions of snapshots in ``[start, end)``. The snapshot-id bounds are a superset of the
    exact time test; they let PostgreSQL prune day partitions and SQLite range-scan the key."""
    return [
        _snap.c.update_timestamp >= start,
        _snap.c.update_timestamp < end,
        _pos.c.snapshot_id >= t.snapshot_id_for(start),
        _pos.c.snapshot_id <= t.snapshot_id_for(end),
    ]


def _contact_at() -> ColumnElement[int]:
    """1 when a contact interval of the position's session contains its snapshot time."""
    at = _snap.c.update_timestamp
    in_contact = exists().where(
        _ci.c.pilot_session_id == _pos.c.pilot_session_id,
        _ci.c.started_at <= at,
        or_(_ci.c.ended_at.is_(None), _ci.c.ended_at >= at),
    )
    return case((in_contact, 1), else_=0)


def _inside(sector_name: ColumnElement[str] | str | None = None) -> ColumnElement[bool]:
    at = _snap.c.update_timestamp
    conditions: list[ColumnElement[bool]] = [
        _so.c.pilot_session_id == _pos.c.pilot_session_id,
        _so.c.entered_at <= at,
        or_(_so.c.exited_at.is_(None), _so.c.exited_at >= at),
    ]
    if sector_name is not None:
        conditions.append(_so.c.sector == sector_name)
    return and_(*conditions)


_SAMPLES = _pos.join(_snap, _snap.c.id == _pos.c.snapshot_id)


def coverage_by_snapshot(
    conn: Connection, start: datetime, end: datetime, sector: str | None
) -> list[CoverageRow]:
    """Samples and covered samples per snapshot: one row per snapshot, never per position."""
    where = _samples_in(start, end)
    if sector is not None:
        where.append(exists().where(_inside(sector)))
    query = (
        select(_snap.c.update_timestamp, func.count(), func.sum(_contact_at()))
        .select_from(_SAMPLES)
        .where(*where)
        .group_by(_snap.c.id, _snap.c.update_timestamp)
        .order_by(_snap.c.id)
    )
    return [CoverageRow(at, int(n), int(c or 0)) for at, n, c in conn.execute(query)]


def coverage_by_sector(conn: Connection, start: datetime, end: datetime) -> list[CoverageRow]:
    """Samples per sector they were in; a sample inside two sectors at once counts in both."""
    query = (
        select(_so.c.sector, func.count(), func.sum(_contact_at()))
        .select_from(_SAMPLES.join(_so, _inside()))
        .where(*_samples_in(start, end))
        .group_by(_so.c.sector)
        .order_by(_so.c.sector)
    )
    return [CoverageRow(sector, int(n), int(c or 0)) for sector, n, c in conn.execute(query)]


# -- summaries -----------------------------------------------------------------------------


def _ended_in(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    where = []
    if start is not None:
        where.append(column >= start)
    if end is not None:
        where.append(column < end)
    return where


def _page(
    conn: Connection, table: Any, where: list[Any], order: Sequence[Any], limit: int, offset: int
) -> Page:
    total = conn.execute(_count(table, where)).scalar_one()
    rows = conn.execute(select(table).where(*where).order_by(*order).limit(limit).offset(offset))
    return Page(int(total), [dict(row) for row in rows.mappings()])


def flight_summaries(
    conn: Connection,
    *,
    departure: str | None,
    arrival: str | None,
    aircraft: str | None,
    callsign: str | None,
    cid: int | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> Page:
    """Newest ended first. Codes arrive upper-cased; the tracker stores airports and callsigns
    that way, but the aircraft is the pilot's own text, so only it is compared upper-cased."""
    where = _ended_in(_fs.c.ended_at, start, end)
    for column, value in (
        (_fs.c.departure, departure),
        (_fs.c.arrival, arrival),
        (_fs.c.callsign, callsign),
        (_fs.c.cid, cid),
    ):
        if value is not None:
            where.append(column == value)
    if aircraft is not None:
        where.append(func.upper(_fs.c.aircraft) == aircraft)
    order = (_fs.c.ended_at.desc(), _fs.c.flight_id.desc())
    return _page(conn, _fs, where, order, limit, offset)


def controller_summaries(
    conn: Connection,
    *,
    callsign: str | None,
    cid: int | None,
    facility: int | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> Page:
    where = _ended_in(_csum.c.ended_at, start, end)
    for column, value in (
        (_csum.c.callsign, callsign),
        (_csum.c.cid, cid),
        (_csum.c.facility, facility),
    ):
        if value is not None:
            where.append(column == value)
    order = (_csum.c.ended_at.desc(), _csum.c.controller_session_id.desc())
    return _page(conn, _csum, where, order, limit, offset)


# -- one flight ----------------------------------------------------------------------------


def flight(conn: Connection, flight_id: int) -> dict[str, Any] | None:
    fl = t.flights
    row = conn.execute(select(fl).where(fl.c.id == flight_id)).mappings().first()
    return None if row is None else dict(row)


def flight_sessions(conn: Connection, flight_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(_ps.c.id, _ps.c.logon_time, _ps.c.first_seen_at, _ps.c.last_seen_at, _ps.c.ended_at)
        .where(_ps.c.flight_id == flight_id)
        .order_by(_ps.c.first_seen_at, _ps.c.id)
    )
    return [dict(row) for row in rows.mappings()]


def flight_summary(conn: Connection, flight_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(_fs).where(_fs.c.flight_id == flight_id)).mappings().first()
    return None if row is None else dict(row)


def flight_contacts(conn: Connection, flight_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            _ci.c.id,
            _ci.c.pilot_session_id,
            _ci.c.controller_session_id,
            _cs.c.callsign,
            _ci.c.frequency_hz,
            _ci.c.started_at,
            _ci.c.ended_at,
        )
        .join(_cs, _cs.c.id == _ci.c.controller_session_id)
        .where(_ci.c.flight_id == flight_id)
        .order_by(_ci.c.started_at, _ci.c.id)
    )
    return [dict(row) for row in rows.mappings()]


def pilots_inside_now(conn: Connection) -> list[tuple[str, int]]:
    """Per sector name, the pilot sessions inside it now (open occupancy rows)."""
    so = t.sector_occupancy
    rows = conn.execute(
        select(so.c.sector, func.count(distinct(so.c.pilot_session_id)))
        .where(so.c.exited_at.is_(None))
        .group_by(so.c.sector)
    ).all()
    return [(str(name), int(n)) for name, n in rows]
