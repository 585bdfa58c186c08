"""A flight's movement fields from its summed-up movements (store/queries_movements.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vatsim_collector.api.models_movements import FlightMovementsOut
from vatsim_collector.store.queries_movements import FlightMovements

__all__ = ["movement_fields", "movements_out"]


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    # A landing before the takeoff (a flight seen only from its landing, then departing again)
    # says nothing about how long it flew.
    if start is None or end is None or end < start:
        return None
    return round((end - start).total_seconds() / 60, 2)


def movements_out(m: FlightMovements | None) -> FlightMovementsOut:
    if m is None:
        return FlightMovementsOut()
    return FlightMovementsOut(
        departure_flown=m.departure_flown,
        arrival_flown=m.arrival_flown,
        off_block_at=m.off_block_at,
        takeoff_at=m.takeoff_at,
        landing_at=m.landing_at,
        on_block_at=m.on_block_at,
        block_minutes=_minutes(m.off_block_at, m.on_block_at),
        airborne_minutes=_minutes(m.takeoff_at, m.landing_at),
        diverted=m.diverted,
    )


def movement_fields(m: FlightMovements | None) -> dict[str, Any]:
    """The fields to merge into a flight's own."""
    return movements_out(m).model_dump()
