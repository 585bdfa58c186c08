"""Controller activity from the stretches on position: grouped, summed, split by UTC day.

Pure arithmetic over ``store.queries_activity.Stretch``; the route reads the stretches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from vatsim_collector.store.queries_activity import Stretch

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


def _group_of(stretch: Stretch, group_by: GroupBy) -> Group:
    if group_by is GroupBy.CID:
        return Group(str(stretch.cid), cid=stretch.cid)
    if group_by is GroupBy.POSITION:
        callsign = stretch.callsign.upper()
        return Group(callsign, callsign=callsign)
    if group_by is GroupBy.FACILITY:
        name = FACILITY_NAMES.get(stretch.facility, str(stretch.facility))
        return Group(name, facility=stretch.facility)
    day = stretch.start.astimezone(UTC).date()
    return Group(day.isoformat(), day=day)


def key_of(stretch: Stretch, group_by: GroupBy) -> str:
    return _group_of(stretch, group_by).key


def group(pieces: Sequence[Stretch], aircraft: Mapping[str, int], group_by: GroupBy) -> list[Group]:
    """Groups by ``group_by``, most hours first (then by key); ``aircraft`` is the count of
    distinct flights handled per group key. With ``day`` the caller cuts pieces at midnight."""
    groups: dict[str, Group] = {}
    for stretch in pieces:
        fresh = _group_of(stretch, group_by)
        groups.setdefault(fresh.key, fresh).add(stretch)
    for key, found in groups.items():
        found.aircraft = aircraft.get(key, 0)
    return sorted(groups.values(), key=lambda g: (-g.seconds, g.key))
