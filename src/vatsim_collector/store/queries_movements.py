"""Reads of movements for the API: a flight's movements summed up (departure and arrival as
flown, block and airborne times, diversion), for a page of flights at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from vatsim_collector.store import schema as t
from vatsim_collector.store.recompute_rows import chunks

__all__ = ["FlightMovements", "flight_movements"]

_mv = t.movements


@dataclass(frozen=True, slots=True)
class FlightMovements:
    """First off-block and takeoff, last landing and on-block of one flight; the airports of
    that takeoff and landing, and whether that landing was a diversion."""

    departure_flown: str | None = None
    arrival_flown: str | None = None
    off_block_at: datetime | None = None
    takeoff_at: datetime | None = None
    landing_at: datetime | None = None
    on_block_at: datetime | None = None
    diverted: bool = False


def _times(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[datetime | None, ...]]:
    def first(kind: str) -> ColumnElement[Any]:
        return func.min(case((_mv.c.kind == kind, _mv.c.at)))

    def last(kind: str) -> ColumnElement[Any]:
        return func.max(case((_mv.c.kind == kind, _mv.c.at)))

    rows = conn.execute(
        select(
            _mv.c.flight_id,
            first("off_block").label("off_block_at"),
            first("takeoff").label("takeoff_at"),
            last("landing").label("landing_at"),
            last("on_block").label("on_block_at"),
        )
        .where(_mv.c.flight_id.in_(ids))
        .group_by(_mv.c.flight_id)
    )
    return {r.flight_id: (r.off_block_at, r.takeoff_at, r.landing_at, r.on_block_at) for r in rows}


def _ends(conn: Connection, ids: Sequence[int]) -> dict[tuple[int, str], tuple[str | None, bool]]:
    """(flight, "takeoff") -> its first takeoff's airport; (flight, "landing") -> its last
    landing's airport and diversion flag. Ties in time go to the row stored first/last."""
    ranked = (
        select(
            _mv.c.flight_id,
            _mv.c.kind,
            _mv.c.airport,
            _mv.c.diversion,
            func.row_number()
            .over(partition_by=(_mv.c.flight_id, _mv.c.kind), order_by=(_mv.c.at, _mv.c.id))
            .label("first"),
            func.row_number()
            .over(
                partition_by=(_mv.c.flight_id, _mv.c.kind),
                order_by=(_mv.c.at.desc(), _mv.c.id.desc()),
            )
            .label("last"),
        )
        .where(_mv.c.flight_id.in_(ids), _mv.c.kind.in_(("takeoff", "landing")))
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.flight_id, ranked.c.kind, ranked.c.airport, ranked.c.diversion).where(
            or_(
                and_(ranked.c.kind == "takeoff", ranked.c.first == 1),
                and_(ranked.c.kind == "landing", ranked.c.last == 1),
            )
        )
    )
    return {(r.flight_id, r.kind): (r.airport, bool(r.diversion)) for r in rows}


def flight_movements(conn: Connection, flight_ids: Sequence[int]) -> dict[int, FlightMovements]:
    """The movements of these flights summed up; a flight without any is left out."""
    out: dict[int, FlightMovements] = {}
    for chunk in chunks(sorted(set(flight_ids))):
        times = _times(conn, chunk)
        ends = _ends(conn, chunk)
        for flight_id, (off_block, takeoff, landing, on_block) in times.items():
            departure = ends.get((flight_id, "takeoff"))
            arrival = ends.get((flight_id, "landing"))
            out[flight_id] = FlightMovements(
                departure_flown=departure[0] if departure else None,
                arrival_flown=arrival[0] if arrival else None,
                off_block_at=off_block,
                takeoff_at=takeoff,
                landing_at=landing,
                on_block_at=on_block,
                diverted=arrival[1] if arrival else False,
            )
    return out
