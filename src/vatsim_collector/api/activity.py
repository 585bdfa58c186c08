"""Activity arithmetic. Controllers: the stretches on position grouped, summed, split by UTC
day. Pilots: time online and in the air per member, from each session's span and its
take-offs and landings.

Pure arithmetic over ``store.queries_activity.Stretch`` and ``PilotSpan``; the routes read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from vatsim_collector.store.queries_activity import PilotSpan, Stretch

FACILITY_NAMES = {0: "OBS", 1: "FSS", 2: "DEL", 3: "GND", 4: "TWR", 5: "APP", 6: "CTR"}


class GroupBy(StrEnum):
    CID = "cid"
    POSITION = "position"
    FACILITY = "facility"
    DAY = "day"


@dataclass
class Group:
    key: str
    cid: int | None = None
    callsign: str | None = None
    facility: int | None = None
    day: date | None = None
    seconds: float = 0.0
    sessions: set[tuple[bool, int]] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None
    # Distinct flights handled, counted by the store for the group's key.
    aircraft: int = 0

    def add(self, stretch: Stretch) -> None:
        self.seconds += stretch.seconds
        self.sessions.add((stretch.atis, stretch.session_id))
        self.first = stretch.start if self.first is None else min(self.first, stretch.start)
        self.last = stretch.end if self.last is None else max(self.last, stretch.end)


def by_day(stretch: Stretch) -> Iterator[Stretch]:
    """The stretch cut at each UTC midnight it spans."""
    start = stretch.start
    while start < stretch.end:
        midnight = datetime.combine(start.date() + timedelta(days=1), time(), UTC)
        end = min(stretch.end, midnight)
        yield replace(stretch, start=start, end=end)
        start = end


def key_of(stretch: Stretch, group_by: GroupBy) -> str:
    """The key of the group ``stretch`` falls in."""
    if group_by is GroupBy.CID:
        return str(stretch.cid)
    if group_by is GroupBy.POSITION:
        return stretch.callsign.upper()
    if group_by is GroupBy.FACILITY:
        return FACILITY_NAMES.get(stretch.facility, str(stretch.facility))
    return stretch.start.astimezone(UTC).date().isoformat()


def _group_of(stretch: Stretch, group_by: GroupBy, key: str) -> Group:
    """A fresh group with ``key`` and what it stands for."""
    if group_by is GroupBy.CID:
        return Group(key, cid=stretch.cid)
    if group_by is GroupBy.POSITION:
        return Group(key, callsign=key)
    if group_by is GroupBy.FACILITY:
        return Group(key, facility=stretch.facility)
    return Group(key, day=stretch.start.astimezone(UTC).date())


def group(pieces: Sequence[Stretch], aircraft: Mapping[str, int], group_by: GroupBy) -> list[Group]:
    """Groups by ``group_by``, most hours first (then by key); ``aircraft`` is the count of
    distinct flights handled per group key. With ``day`` the caller cuts pieces at midnight."""
    groups: dict[str, Group] = {}
    for stretch in pieces:
        key = key_of(stretch, group_by)
        found = groups.get(key)
        if found is None:
            found = groups[key] = _group_of(stretch, group_by, key)
        found.add(stretch)
    for key, found in groups.items():
        found.aircraft = aircraft.get(key, 0)
    return sorted(groups.values(), key=lambda g: (-g.seconds, g.key))


# -- pilots ----------------------------------------------------------------------------------


def _overlap(start: datetime, end: datetime, low: datetime, high: datetime) -> float:
    return max(0.0, (min(end, high) - max(start, low)).total_seconds())


def airborne_intervals(span: PilotSpan) -> list[tuple[datetime, datetime]]:
    """A session's time in the air, unclipped: from each take-off to the session's next
    landing. A touch-and-go (or a go-around) does not end it: the aircraft is flying again at
    once. A session whose first such movement is not a take-off connected in the air, so it
    is airborne from its first sighting; one that never lands again is airborne to its last."""
    intervals: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for index, (at, kind, _airport) in enumerate(span.movements):
        if since is None and (kind == "takeoff" or index == 0):
            since = at if kind == "takeoff" else span.first_seen
        if kind == "landing" and since is not None:
            intervals.append((since, at))
            since = None
    if since is not None:
        intervals.append((since, span.last_seen))
    return intervals


@dataclass
class PilotGroup:
    """One member's pilot activity within a window."""

    cid: int
    online_seconds: float = 0.0
    airborne_seconds: float = 0.0
    sessions: set[int] = field(default_factory=set)
    flights: set[int] = field(default_factory=set)
    # Airport codes as flown, in time order: take-offs and landings within the window.
    departures: list[tuple[datetime, str]] = field(default_factory=list)
    arrivals: list[tuple[datetime, str]] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None


def pilot_groups(spans: Sequence[PilotSpan], start: datetime, end: datetime) -> list[PilotGroup]:
    """Per member, the sessions' overlap with ``[start, end)``, most hours online first (then
    by CID)."""
    groups: dict[int, PilotGroup] = {}
    for span in spans:
        online = _overlap(span.first_seen, span.last_seen, start, end)
        if online <= 0:
            continue
        g = groups.setdefault(span.cid, PilotGroup(span.cid))
        g.online_seconds += online
        g.airborne_seconds += sum(_overlap(a, b, start, end) for a, b in airborne_intervals(span))
        g.sessions.add(span.session_id)
        g.flights.add(span.flight_id)
        low, high = max(span.first_seen, start), min(span.last_seen, end)
        g.first = low if g.first is None else min(g.first, low)
        g.last = high if g.last is None else max(g.last, high)
        for at, kind, airport in span.movements:
            if airport is None or not start <= at < end:
                continue
            if kind == "takeoff":
                g.departures.append((at, airport))
            elif kind == "landing":
                g.arrivals.append((at, airport))
    for g in groups.values():
        g.departures.sort()
        g.arrivals.sort()
    return sorted(groups.values(), key=lambda g: (-g.online_seconds, g.cid))
