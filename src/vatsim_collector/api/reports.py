"""The event traffic report from what the store counted: quarter-hour movement counts summed
into UTC hours and peaks, ATC contact, position hours and the busiest sectors, per airport.

Pure arithmetic over ``store.queries_reports`` and ``store.queries_activity`` rows; the route
reads them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from vatsim_collector.airports.reference import Airport
from vatsim_collector.airports.stations import serves_airport, station_prefixes
from vatsim_collector.api.models_reports import (
    AirportReportOut,
    AtcContactOut,
    PeakRateOut,
    PositionHoursOut,
    ReportHourOut,
    SectorCountOut,
)
from vatsim_collector.store.queries_activity import Stretch
from vatsim_collector.store.queries_reports import LANDING, TAKEOFF, ContactCount, QuarterCount

HOUR = timedelta(hours=1)
BUSIEST_SECTORS = 5


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since midnight (UTC times)."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // step) * step


def hours_of(start: datetime, end: datetime) -> list[datetime]:
    """The start of every clock hour [start, end) touches."""
    first = floor_to(start, HOUR)
    # Counted, not stepped past ``end``: one hour after a window ending in the last hour of
    # the year 9999 cannot be represented.
    count = -((first - end) // HOUR)
    return [first + i * HOUR for i in range(count)]


def all_prefixes(airports: Iterable[Airport]) -> tuple[str, ...]:
    """Callsign prefixes of every position of ``airports`` (``EGLL_``, ``LHR_``)."""
    return tuple(sorted({p + "_" for a in airports for p in station_prefixes(a)}))


def _hour_row(hour: datetime, counts: Counter[tuple[datetime, str]]) -> ReportHourOut:
    departures, arrivals = counts[(hour, TAKEOFF)], counts[(hour, LANDING)]
    return ReportHourOut(
        hour=hour, departures=departures, arrivals=arrivals, total=departures + arrivals
    )


def _peak_hour(rows: Sequence[ReportHourOut]) -> ReportHourOut | None:
    best = max(rows, key=lambda r: r.total, default=None)  # max keeps the first of equals
    return best if best is not None and best.total > 0 else None


def _peak_quarter(quarters: Sequence[QuarterCount]) -> PeakRateOut | None:
    both: Counter[datetime] = Counter()
    for q in quarters:
        both[q.start] += q.movements
    if not both:
        return None
    start, n = min(both.items(), key=lambda item: (-item[1], item[0]))
    return PeakRateOut(start=start, movements=n, per_hour=n * 4)


def _positions(
    airport: Airport, stretches: Sequence[Stretch]
) -> tuple[list[PositionHoursOut], float]:
    """The airport's positions, most hours first, and their hours together (unrounded sum)."""
    prefixes = station_prefixes(airport)
    seconds: dict[str, float] = defaultdict(float)
    sessions: dict[str, set[int]] = defaultdict(set)
    for stretch in stretches:
        if stretch.atis or not serves_airport(stretch.callsign, prefixes):
            continue
        callsign = stretch.callsign.upper()
        seconds[callsign] += stretch.seconds
        sessions[callsign].add(stretch.session_id)
    rows = [
        PositionHoursOut(callsign=c, hours=round(s / 3600, 4), sessions=len(sessions[c]))
        for c, s in seconds.items()
    ]
    return sorted(rows, key=lambda r: (-r.hours, r.callsign)), sum(seconds.values()) / 3600


def _busiest(sectors: Iterable[tuple[str, int]]) -> list[SectorCountOut]:
    ranked = sorted(sectors, key=lambda item: (-item[1], item[0]))[:BUSIEST_SECTORS]
    return [SectorCountOut(sector=name, pilot_sessions=n) for name, n in ranked]


def airport_report(
    airport: Airport,
    start: datetime,
    end: datetime,
    quarters: Sequence[QuarterCount],
    contact: ContactCount | None,
    sectors: Iterable[tuple[str, int]],
    stretches: Sequence[Stretch],
) -> AirportReportOut:
    """One airport's report from its own quarter-hour counts, contact counts (None: no
    flights) and sector counts; ``stretches`` may hold other airports' positions too."""
    counts: Counter[tuple[datetime, str]] = Counter()
    for q in quarters:
        counts[(floor_to(q.start, HOUR), q.kind)] += q.movements
    hours = [_hour_row(hour, counts) for hour in hours_of(start, end)]
    positions, position_hours = _positions(airport, stretches)
    departures = sum(q.movements for q in quarters if q.kind == TAKEOFF)
    arrivals = sum(q.movements for q in quarters if q.kind == LANDING)
    contact = contact or ContactCount(0, 0)
    return AirportReportOut(
        icao=airport.icao,
        name=airport.name,
        iata=airport.iata or None,
        departures=departures,
        arrivals=arrivals,
        total=departures + arrivals,
        peak_hour=_peak_hour(hours),
        peak_15_minutes=_peak_quarter(quarters),
        atc_contact=AtcContactOut(
            flights=contact.flights,
            in_contact=contact.in_contact,
            share=round(contact.in_contact / contact.flights, 4) if contact.flights else None,
        ),
        position_hours=round(position_hours, 4),
        positions=positions,
        busiest_sectors=_busiest(sectors),
        hours=hours,
    )
