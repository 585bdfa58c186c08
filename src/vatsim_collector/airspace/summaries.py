"""Flight and controller summaries, computed from plain inputs with no database.

The storage layer loads positions, contact intervals and sector visits, calls these functions and
stores what they return. Keeping the arithmetic free of I/O puts every counting rule in one place
where tests can pin it down exactly.

Definitions (the counting rules the stored numbers depend on):

- A flight has one or more pilot sessions. Each session has one position per snapshot it was in.
  Time is counted on consecutive position pairs *within* a session. A pair ``(p_i, p_i+1)``
  contributes ``dt = t_i+1 - t_i``, so the gap between two sessions is never online time and
  never distance flown.
- **Online time** is the sum of ``dt`` over all pairs, which equals the sum over sessions of
  (last position time - first position time).
- **Airborne time** is the sum of ``dt`` over pairs whose *first* position has a groundspeed
  strictly above 50 kt. At exactly 50 kt the pair is not airborne.
- **Distance flown** is the sum of great-circle distances (nm) between consecutive positions of a
  session, over its *plausible track* (below).
- **Max altitude** is the highest altitude of the plausible track within
  ``PLAUSIBLE_ALTITUDE_FT``, or ``None`` if there is none.
- The **plausible track** of a session leaves out positions no aircraft could have reached: a
  position more than ``MAX_GROUNDSPEED_KT`` (plus ``POSITION_SLACK_NM``) from the previous kept
  one, for the time between them, is a *spike* when a position within the next
  ``MAX_SPIKE_SAMPLES`` is reachable again from that kept one; the spike is dropped and the
  distance is counted straight across it. When none is, the aircraft really moved (a relocation
  in the simulator): the track starts a new *segment* there and the jump is not counted as
  distance. Segments shorter than ``MIN_SEGMENT_SAMPLES`` are dropped when a longer one exists
  (a bad first or last position, or a few positions after a relocation just before
  disconnecting); when every segment is that short, those of the greatest length are kept.
  Positions with non-finite coordinates, or outside ±90°/±180°, are never part of the track.
  A genuine reconnect far away is a new session, which is never compared with the previous one;
  a jump inside one session after missed snapshots is allowed the whole time between them.
  Time (online, airborne, coverage) is counted on *every* position: the pilot was connected.
- **Contact intervals** are closed ranges at snapshot times. An interval of one snapshot has
  ``started_at == ended_at``.
- **Coverage**: a pair is covered when one interval spans the whole pair
  (``started_at <= t_i`` and ``ended_at >= t_i+1``). Coverage is covered ``dt`` divided by online
  time, and is ``None`` when online time is zero. **Airborne coverage** is the same ratio
  restricted to airborne pairs. Because a pair is either covered or not, two controllers at once
  count once.
- **Controllers worked** and **sectors** give the summed interval or visit durations per
  controller session or per sector name.
- A controller session's **peak concurrent aircraft** is the largest number of distinct flights
  whose closed intervals all contain one instant. Intervals that only touch at ``t`` are
  concurrent at ``t``. Two overlapping intervals of the same flight count once.
- The **UTC hourly breakdown** has one row per UTC hour ``[h, h+1)`` that meets the closed range
  ``[first_seen, last_seen]``. When ``last_seen`` falls exactly on the hour, that hour gets a row
  with zero online minutes, so an aircraft in contact at that instant still has an hour to count
  in. A flight counts as an aircraft of an hour when one of its intervals meets the hour, even at a
  single instant. Contact outside ``[first_seen, last_seen]`` belongs to no hour. It still counts
  towards the per-aircraft minutes.

All datetimes must be timezone-aware. Naive ones raise ``ValueError``, because silently treating
local times as UTC would shift every hourly bucket. Minutes are unrounded floats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from math import fsum
from typing import Any

from vatsim_collector.tracking.geodesy import great_circle_nm

AIRBORNE_ABOVE_KT = 50
"""A pair is airborne only when its first groundspeed is strictly above this. Taxiing aircraft
on VATSIM rarely exceed it, and aircraft on the takeoff roll soon do."""

MAX_GROUNDSPEED_KT = 2000.0
"""Fastest plausible groundspeed: about Mach 3 at cruise altitude (Mach 3 is ~1,720 kt true
airspeed in the stratosphere) plus a strong jet-stream tailwind. The fastest aircraft flown on
the network (Concorde ~1,200 kt, SR-71 ~1,900 kt) stay below it; a pair of positions implying
more is a bad value or a relocation, not flight."""

POSITION_SLACK_NM = 1.0
"""Added to the reach between two positions: the feed rounds coordinates, and two positions at
the same instant must not be impossible for a rounding step."""

MAX_SPIKE_SAMPLES = 5
"""How many positions (75 s at the 15 s cadence) a run of bad values may last and still be a
spike to step over. A bad value is usually one snapshot; longer, and the aircraft has moved."""

MIN_SEGMENT_SAMPLES = 3
"""A segment shorter than this is dropped when a longer segment exists: one or two positions
on their own, far from the rest of the session, are far more often a bad value at the start or
end of a session than flight."""

PLAUSIBLE_ALTITUDE_FT = (-2_000, 100_000)
"""Altitudes counted towards ``max_altitude``. The lowest airfield is about 1,300 ft below sea
level (near the Dead Sea) and a pressure altitude under a very high QNH reads some hundreds of
feet lower again; no aircraft flown on the network climbs anywhere near 100,000 ft (the SR-71
cruised at ~85,000 ft). Anything outside is a bad value."""

_ZERO = timedelta(0)
_HOUR = timedelta(hours=1)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class PositionSample:
    session_id: int
    at: datetime
    latitude: float
    longitude: float
    altitude: int
    groundspeed: int


@dataclass(frozen=True, slots=True)
class ContactSpan:
    controller_session_id: int
    callsign: str
    frequency: str
    started_at: datetime
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class SectorVisit:
    sector: str
    entered_at: datetime
    exited_at: datetime


@dataclass(frozen=True)
class FlightSummary:
    online_minutes: float
    airborne_minutes: float
    distance_nm: float
    max_altitude: int | None
    coverage: float | None
    airborne_coverage: float | None
    controllers: list[dict[str, Any]]  # [{"controller_session_id", "callsign", "minutes"}]
    sectors: list[dict[str, Any]]  # [{"sector", "minutes"}]


@dataclass(frozen=True, slots=True)
class HandledSpan:
    flight_id: int
    callsign: str
    started_at: datetime
    ended_at: datetime


@dataclass(frozen=True)
class ControllerSummary:
    duration_minutes: float
    frequencies: list[str]
    aircraft_handled: int
    peak_concurrent: int
    hourly: list[dict[str, Any]]  # [{"hour", "online_minutes", "contact_minutes", "aircraft"}]
    per_aircraft: list[dict[str, Any]]  # [{"flight_id", "callsign", "minutes"}]


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware UTC datetime, got naive {value!r}")


def _ordered(start: datetime, end: datetime, what: str) -> None:
    _aware(start, f"{what} start")
    _aware(end, f"{what} end")
    if end < start:
        raise ValueError(f"{what} ends ({end.isoformat()}) before it starts ({start.isoformat()})")


def _minutes(span: timedelta) -> float:
    return span.total_seconds() / 60


def flight_summary(
    positions: Sequence[PositionSample],
    contacts: Sequence[ContactSpan],
    visits: Sequence[SectorVisit],
) -> FlightSummary:
    """Summarise a finished flight. ``positions`` may mix sessions in any order. They are grouped
    by session so that nothing is counted across the gap between two sessions."""
    for position in positions:
        _aware(position.at, "position time")
    for contact in contacts:
        _ordered(contact.started_at, contact.ended_at, "contact interval")
    for visit in visits:
        _ordered(visit.entered_at, visit.exited_at, "sector visit")

    by_session: dict[int, list[PositionSample]] = defaultdict(list)
    for position in positions:
        by_session[position.session_id].append(position)
    pairs: list[tuple[datetime, datetime, bool]] = []
    # Summed with fsum, so the total does not depend on the order the sessions come in (the
    # database returns a flight's rows in no particular order).
    legs: list[float] = []
    highest: int | None = None
    low, high = PLAUSIBLE_ALTITUDE_FT
    for samples in by_session.values():
        samples.sort(key=lambda sample: sample.at)
        for a, b in pairwise(samples):
            pairs.append((a.at, b.at, a.groundspeed > AIRBORNE_ABOVE_KT))
        for segment in plausible_track(samples):
            legs.extend(segment.legs_nm)
            for sample in segment.samples:
                altitude = sample.altitude
                if low <= altitude <= high and (highest is None or altitude > highest):
                    highest = altitude

    online = sum((end - start for start, end, _ in pairs), _ZERO)
    airborne = sum((end - start for start, end, up in pairs if up), _ZERO)
    covered, covered_airborne = _covered(pairs, [(c.started_at, c.ended_at) for c in contacts])
    return FlightSummary(
        online_minutes=_minutes(online),
        airborne_minutes=_minutes(airborne),
        distance_nm=fsum(legs),
        max_altitude=highest,
        coverage=covered / online if online > _ZERO else None,
        airborne_coverage=covered_airborne / airborne if airborne > _ZERO else None,
        controllers=_controllers_worked(contacts),
        sectors=_sector_minutes(visits),
    )


@dataclass
class TrackSegment:
    """Positions of one session that follow each other at possible speeds; ``legs_nm`` are
    the distances between them in order (one fewer than the samples)."""

    samples: list[PositionSample] = field(default_factory=list)
    legs_nm: list[float] = field(default_factory=list)


def _on_earth(sample: PositionSample) -> bool:
    # NaN and infinities fail these comparisons, so non-finite coordinates are off it too.
    return abs(sample.latitude) <= 90.0 and abs(sample.longitude) <= 180.0


def _reachable_nm(a: PositionSample, b: PositionSample) -> float | None:
    """The distance from ``a`` to the later ``b``, or None when no aircraft could cover it in
    the time between them."""
    nm = great_circle_nm(a.latitude, a.longitude, b.latitude, b.longitude)
    hours = (b.at - a.at).total_seconds() / 3600
    reach = MAX_GROUNDSPEED_KT * hours + POSITION_SLACK_NM
    return nm if nm <= reach else None  # a NaN distance is never reachable


def plausible_track(samples: Sequence[PositionSample]) -> list[TrackSegment]:
    """The plausible track of one session's positions, sorted by time (module docstring)."""
    usable = [s for s in samples if _on_earth(s)]
    segments: list[TrackSegment] = []
    i = 0
    while i < len(usable):
        sample = usable[i]
        current = segments[-1] if segments else None
        if current is None:
            segments.append(TrackSegment([sample]))
            i += 1
            continue
        last = current.samples[-1]
        leg = _reachable_nm(last, sample)
        if leg is None:
            # Impossible from the last kept position: step over a spike if the track resumes
            # within reach; otherwise the aircraft moved, and a new segment starts here.
            for j in range(i + 1, min(i + 1 + MAX_SPIKE_SAMPLES, len(usable))):
                leg = _reachable_nm(last, usable[j])
                if leg is not None:
                    i, sample = j, usable[j]
                    break
        if leg is None:
            segments.append(TrackSegment([sample]))
        else:
            current.samples.append(sample)
            current.legs_nm.append(leg)
        i += 1
    longest = max((len(segment.samples) for segment in segments), default=0)
    keep = min(MIN_SEGMENT_SAMPLES, longest)
    return [segment for segment in segments if len(segment.samples) >= keep]


def _covered(
    pairs: Sequence[tuple[datetime, datetime, bool]], intervals: Sequence[Interval]
) -> tuple[timedelta, timedelta]:
    """Covered time, overall and airborne. Some interval contains the pair ``[t_i, t_i+1]``
    exactly when the latest end among intervals starting at or before ``t_i`` reaches ``t_i+1``.
    One sorted sweep therefore answers every pair without comparing each pair with each
    interval."""
    by_start = sorted(intervals)
    covered = covered_airborne = _ZERO
    reach: datetime | None = None
    k = 0
    for start, end, airborne in sorted(pairs, key=lambda pair: pair[0]):
        while k < len(by_start) and by_start[k][0] <= start:
            if reach is None or by_start[k][1] > reach:
                reach = by_start[k][1]
            k += 1
        if reach is not None and reach >= end:
            covered += end - start
            if airborne:
                covered_airborne += end - start
    return covered, covered_airborne


def _controllers_worked(contacts: Sequence[ContactSpan]) -> list[dict[str, Any]]:
    """Minutes per controller session. If one session's intervals carry different callsigns, the
    earliest one names it. Ties sort by session id so the stored order is stable."""
    callsign: dict[int, str] = {}
    total: dict[int, timedelta] = {}
    for contact in sorted(contacts, key=lambda c: (c.started_at, c.ended_at)):
        key = contact.controller_session_id
        callsign.setdefault(key, contact.callsign)
        total[key] = total.get(key, _ZERO) + (contact.ended_at - contact.started_at)
    ranked = sorted(total, key=lambda key: (-total[key], callsign[key], key))
    return [
        {"controller_session_id": key, "callsign": callsign[key], "minutes": _minutes(total[key])}
        for key in ranked
    ]


def _sector_minutes(visits: Sequence[SectorVisit]) -> list[dict[str, Any]]:
    total: dict[str, timedelta] = {}
    for visit in visits:
        total[visit.sector] = total.get(visit.sector, _ZERO) + (visit.exited_at - visit.entered_at)
    ranked = sorted(total, key=lambda name: (-total[name], name))
    return [{"sector": name, "minutes": _minutes(total[name])} for name in ranked]


def controller_summary(
    first_seen: datetime,
    last_seen: datetime,
    frequencies: Sequence[str],
    spans: Sequence[HandledSpan],
) -> ControllerSummary:
    """Summarise a finished controller session. The frequencies are de-duplicated and keep the
    order in which they were first seen."""
    _ordered(first_seen, last_seen, "controller session")
    for span in spans:
        _ordered(span.started_at, span.ended_at, "handled interval")

    by_flight: dict[int, list[Interval]] = defaultdict(list)
    for span in spans:
        by_flight[span.flight_id].append((span.started_at, span.ended_at))
    merged = {flight: _merged(intervals) for flight, intervals in by_flight.items()}
    return ControllerSummary(
        duration_minutes=_minutes(last_seen - first_seen),
        frequencies=list(dict.fromkeys(frequencies)),
        aircraft_handled=len(by_flight),
        peak_concurrent=_peak_concurrent(merged.values()),
        hourly=_hourly(first_seen, last_seen, spans, merged.values()),
        per_aircraft=_per_aircraft(spans),
    )


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    """Join one flight's intervals that overlap or touch into disjoint ones. Closed intervals that
    share an instant are one continuous contact, so the flight is never counted twice at once."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _peak_concurrent(merged_per_flight: Iterable[list[Interval]]) -> int:
    """Sweep over start and end events. At equal times starts sort before ends, so intervals that
    only touch are concurrent at that instant, as closed intervals should be."""
    events: list[tuple[datetime, int]] = []
    for intervals in merged_per_flight:
        for start, end in intervals:
            events.append((start, 0))
            events.append((end, 1))
    events.sort()
    current = peak = 0
    for _, is_end in events:
        if is_end:
            current -= 1
        else:
            current += 1
            peak = max(peak, current)
    return peak


def _hourly(
    first_seen: datetime,
    last_seen: datetime,
    spans: Sequence[HandledSpan],
    merged_per_flight: Iterable[list[Interval]],
) -> list[dict[str, Any]]:
    """Hourly rows built with difference arrays. The cost is linear in spans plus hours, not their
    product, because one long interval adds a whole run of hours in constant time."""
    first, last = first_seen.astimezone(UTC), last_seen.astimezone(UTC)
    base = first.replace(minute=0, second=0, microsecond=0)
    count = (last - base) // _HOUR + 1

    def clip(start: datetime, end: datetime) -> Interval | None:
        low, high = max(start, first), min(end, last)
        return (low, high) if low <= high else None

    online = _spread([(first, last)], base, count)
    clipped = (clip(span.started_at, span.ended_at) for span in spans)
    contact = _spread([c for c in clipped if c is not None], base, count)

    aircraft = [0] * (count + 1)
    for intervals in merged_per_flight:
        counted_through = -1  # a flight meeting one hour twice still counts once there
        for start, end in intervals:
            kept = clip(start, end)
            if kept is None:
                continue
            i = max((kept[0] - base) // _HOUR, counted_through + 1)
            j = (kept[1] - base) // _HOUR
            if i <= j:
                aircraft[i] += 1
                aircraft[j + 1] -= 1
                counted_through = j

    rows: list[dict[str, Any]] = []
    running = 0
    for k in range(count):
        running += aircraft[k]
        rows.append(
            {
                "hour": base + k * _HOUR,
                "online_minutes": _minutes(online[k]),
                "contact_minutes": _minutes(contact[k]),
                "aircraft": running,
            }
        )
    return rows


def _spread(intervals: Iterable[Interval], base: datetime, count: int) -> list[timedelta]:
    """How much of the intervals falls in each hour from ``base``. Partial first and last hours
    are added directly. Whole hours in between go through a difference array. Sums stay exact
    timedeltas, so the hours add up to the total without float drift."""
    partial = [_ZERO] * count
    whole = [0] * (count + 1)
    for start, end in intervals:
        i, j = (start - base) // _HOUR, (end - base) // _HOUR
        if i == j:
            partial[i] += end - start
            continue
        partial[i] += base + (i + 1) * _HOUR - start
        partial[j] += end - (base + j * _HOUR)
        whole[i + 1] += 1
        whole[j] -= 1
    out: list[timedelta] = []
    running = 0
    for k in range(count):
        running += whole[k]
        out.append(partial[k] + running * _HOUR)
    return out


def _per_aircraft(spans: Sequence[HandledSpan]) -> list[dict[str, Any]]:
    """Minutes per flight, summed over raw intervals, so the total equals the sum of span
    durations. The earliest interval names the flight. Ties sort by callsign, then flight id."""
    callsign: dict[int, str] = {}
    total: dict[int, timedelta] = {}
    for span in sorted(spans, key=lambda s: (s.started_at, s.ended_at)):
        callsign.setdefault(span.flight_id, span.callsign)
        total[span.flight_id] = total.get(span.flight_id, _ZERO) + (span.ended_at - span.started_at)
    ranked = sorted(total, key=lambda flight: (-total[flight], callsign[flight], flight))
    return [
        {"flight_id": flight, "callsign": callsign[flight], "minutes": _minutes(total[flight])}
        for flight in ranked
    ]
