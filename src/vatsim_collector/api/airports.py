"""Airport arithmetic: traffic buckets and the peak hour from movements counted per minute,
and the live picture of one airport (aircraft on the ground, inbound flights, ATC) from the
live view.

Pure: the routes read the movements and hand over the live view and the airport index.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate

import numpy as np

from vatsim_collector.airports.ground import place_on_ground
from vatsim_collector.airports.nearest import AirportIndex, haversine_nm
from vatsim_collector.airports.reference import Airport
from vatsim_collector.airports.stations import serves_airport, station_prefixes
from vatsim_collector.store.queries_airports import ARRIVAL, DEPARTURE, TOUCH_AND_GO, Counts
from vatsim_collector.tracking.live import LiveView
from vatsim_collector.tracking.state import ControllerSession, PilotSession

HOUR = timedelta(hours=1)
# Inbound flights due within this long are listed.
INBOUND_HORIZON = HOUR


@dataclass(frozen=True)
class Bucket:
    start: datetime
    counts: Counts


@dataclass(frozen=True)
class PeakHour:
    start: datetime
    end: datetime
    counts: Counts


Moves = Sequence[tuple[datetime, str, int]]


def totals(moves: Moves) -> Counts:
    """Counts of ``(time, kind, count)`` rows."""
    return Counts(
        departures=sum(n for _, k, n in moves if k == DEPARTURE),
        arrivals=sum(n for _, k, n in moves if k == ARRIVAL),
        touch_and_goes=sum(n for _, k, n in moves if k == TOUCH_AND_GO),
    )


def _aligned(at: datetime, step: timedelta) -> datetime:
    """The latest UTC multiple of ``step`` (which divides a day) at or before ``at``."""
    midnight = datetime.combine(at.astimezone(UTC).date(), time(), UTC)
    return midnight + ((at - midnight) // step) * step


def buckets(moves: Moves, start: datetime, end: datetime, minutes: int) -> list[Bucket]:
    """Every bucket of ``minutes`` meeting ``[start, end)``, aligned to UTC multiples of
    ``minutes``, with the movements (``(time, kind, count)``, all within the window) falling
    in each."""
    size = timedelta(minutes=minutes)
    first = _aligned(start, size)
    # Counted, not stepped to: a step past 9999-12-31 cannot be represented.
    count = -((first - end) // size)
    found: list[list[tuple[datetime, str, int]]] = [[] for _ in range(count)]
    for move in moves:
        # A minute never lies before the first bucket: buckets start on whole minutes.
        found[(move[0] - first) // size].append(move)
    return [Bucket(first + k * size, totals(rows)) for k, rows in enumerate(found)]


def _plus_hour(at: datetime) -> datetime:
    try:
        return at + HOUR
    except OverflowError:  # the last hour of 9999-12-31
        return datetime.max.replace(tzinfo=UTC)


def peak_hour(moves: Moves, start: datetime, end: datetime, minutes: int) -> PeakHour | None:
    """The 60 minutes ``[s, s + 60 min)`` with the most departures plus arrivals. ``s`` runs
    over the UTC multiples of ``min(minutes, 60)`` minutes from the first bucket's start to
    before ``end``: with 5-minute buckets the hour slides in 5-minute steps, with hourly or
    longer buckets it is a clock hour. Only movements within the window count (an hour at
    either end of it may be partly outside). Ties go to the earliest; None without any
    departure or arrival. ``moves`` are ``(time, kind, count)`` in time order; hours start on
    whole minutes, so times truncated to the minute count the same."""
    step = timedelta(minutes=min(minutes, 60))
    times = [at for at, _, _ in moves]
    dep = [0, *accumulate(n if k == DEPARTURE else 0 for _, k, n in moves)]
    arr = [0, *accumulate(n if k == ARRIVAL else 0 for _, k, n in moves)]
    tng = [0, *accumulate(n if k == TOUCH_AND_GO else 0 for _, k, n in moves)]
    best: tuple[int, datetime, int, int] | None = None
    s = _aligned(start, step)
    while True:
        low = bisect_left(times, s)
        # Compared, not added: an hour after the window's last may not be representable.
        high = len(times) if end - s <= HOUR else bisect_left(times, s + HOUR)
        total = dep[high] - dep[low] + arr[high] - arr[low]
        if total > 0 and (best is None or total > best[0]):
            best = (total, s, low, high)
        if end - s <= step:
            break
        s += step
    if best is None:
        return None
    _, found, low, high = best
    counts = Counts(dep[high] - dep[low], arr[high] - arr[low], tng[high] - tng[low])
    return PeakHour(found, _plus_hour(found), counts)


# -- the live picture ------------------------------------------------------------------------


def _placement_on_ground(
    index: AirportIndex, pilots: Sequence[PilotSession], radius_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per pilot, the index of the airport it is on the ground at (-1: none) and whether it
    is on the ground anywhere."""
    if not pilots:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
    placed = place_on_ground(
        index,
        [p.latest.latitude for p in pilots],
        [p.latest.longitude for p in pilots],
        [p.latest.altitude for p in pilots],
        [p.latest.groundspeed for p in pilots],
        radius_nm=radius_nm,
    )
    return np.where(placed.on_ground, placed.index, -1), placed.on_ground


def _distance_nm(airport: Airport, pilots: Sequence[PilotSession]) -> np.ndarray:
    return haversine_nm(
        np.array([p.latest.latitude for p in pilots], dtype=float),
        np.array([p.latest.longitude for p in pilots], dtype=float),
        airport.lat,
        airport.lon,
    )


def on_ground(
    index: AirportIndex, airport: Airport, view: LiveView, radius_nm: float
) -> list[PilotSession]:
    """The pilots on the ground at ``airport``: within the radius of it, and placed there (it
    is the nearest airport, and they are slow and low enough), by callsign."""
    position = index.reference.index_of(airport.icao)
    pilots = list(view.pilots)
    if position is None or not pilots:
        return []
    near = [p for p, d in zip(pilots, _distance_nm(airport, pilots), strict=True) if d <= radius_nm]
    at, _ = _placement_on_ground(index, near, radius_nm)
    return sorted(
        (p for p, where in zip(near, at, strict=True) if where == position),
        key=lambda p: (p.callsign, p.cid),
    )


@dataclass(frozen=True)
class Inbound:
    pilot: PilotSession
    distance_nm: float
    eta: datetime


def inbound(
    index: AirportIndex, airport: Airport, view: LiveView, at: datetime, radius_nm: float
) -> list[Inbound]:
    """Airborne pilots (on the ground nowhere) whose plan's arrival is ``airport``, due within
    the hour at their present ground speed along the great circle, soonest first."""
    filed = [
        p
        for p in view.pilots
        if p.plan is not None
        and p.plan.arrival.strip().upper() == airport.icao
        and p.latest.groundspeed > 0
    ]
    if not filed:
        return []
    _, grounded = _placement_on_ground(index, filed, radius_nm)
    found = []
    for pilot, distance, down in zip(filed, _distance_nm(airport, filed), grounded, strict=True):
        hours = float(distance) / pilot.latest.groundspeed
        if down or hours > INBOUND_HORIZON / HOUR:
            continue
        found.append(Inbound(pilot, float(distance), at + timedelta(hours=hours)))
    return sorted(found, key=lambda i: (i.eta, i.pilot.callsign, i.pilot.cid))


def atc(airport: Airport, view: LiveView) -> list[ControllerSession]:
    """Controllers online now on the airport's positions (delivery to approach), by callsign."""
    prefixes = station_prefixes(airport)
    return sorted(
        (c for c in view.controllers if serves_airport(c.callsign, prefixes)),
        key=lambda c: (c.callsign, c.cid),
    )
