"""How well the placement of aircraft on the ground agrees with their flight plans.

For every pilot on the ground (``ground.place_on_ground``): when its filed departure or arrival
is an airport of the reference within the radius, the airport it is placed at should be one of
those. The report lists the pilots checked, those that agree, and each disagreement; also the
pilots the check cannot judge (a filed code the reference does not know), and the slow pilots
placed nowhere, so each can be looked at (docs/airports.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vatsim_collector.airports.ground import DEFAULT_RULE, GroundRule, place_on_ground
from vatsim_collector.airports.nearest import AirportIndex, haversine_nm
from vatsim_collector.feed.models import Pilot

__all__ = ["NEAR_MISS_NM", "Agreement", "Disagreement", "agreement"]

# A filed airport this close, though beyond the radius, is listed for a look.
NEAR_MISS_NM = 30.0


@dataclass(frozen=True, slots=True)
class Disagreement:
    callsign: str
    placed: str
    placed_nm: float
    filed_within: tuple[str, ...]


@dataclass(slots=True)
class Agreement:
    pilots: int = 0
    on_ground: int = 0
    checked: int = 0
    agreeing: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    # (callsign, filed code, placed code): the filed code is not in the reference.
    unknown_filed: list[tuple[str, str, str]] = field(default_factory=list)
    # (callsign, filed code, its distance in nm, placed code): a filed airport beyond the radius
    # but within ``NEAR_MISS_NM`` (a neighbouring field, or the reference misplaces it).
    near_miss: list[tuple[str, str, float, str]] = field(default_factory=list)
    # Slow pilots (ground speed within the rule) with no airport within the radius.
    slow_unplaced: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.agreeing / self.checked if self.checked else 1.0


def agreement(
    airports: AirportIndex,
    pilots: Sequence[Pilot],
    *,
    radius_nm: float,
    rule: GroundRule = DEFAULT_RULE,
) -> Agreement:
    ref = airports.reference
    lat = np.array([p.latitude for p in pilots], dtype=float)
    lon = np.array([p.longitude for p in pilots], dtype=float)
    alt = np.array([p.altitude for p in pilots], dtype=float)
    speed = np.array([p.groundspeed for p in pilots], dtype=float)
    place = place_on_ground(airports, lat, lon, alt, speed, radius_nm=radius_nm, rule=rule)
    out = Agreement(pilots=len(pilots), on_ground=int(place.on_ground.sum()))
    for i in np.flatnonzero((speed <= rule.max_ground_speed_kt) & (place.index < 0)).tolist():
        out.slow_unplaced.append(pilots[i].callsign)
    # A few hundred pilots at most: a loop over the report's rows, not in the lookup.
    for i in np.flatnonzero(place.on_ground).tolist():
        pilot = pilots[i]
        placed = ref.airports[place.index[i]].icao
        plan = pilot.flight_plan
        filed = [c.upper() for c in (plan.departure, plan.arrival) if c] if plan else []
        within: list[str] = []
        for code in dict.fromkeys(filed):
            known = ref.get(code)
            if known is None:
                out.unknown_filed.append((pilot.callsign, code, placed))
                continue
            distance = float(haversine_nm(lat[i], lon[i], known.lat, known.lon))
            if distance <= radius_nm:
                within.append(code)
            elif distance <= NEAR_MISS_NM:
                out.near_miss.append((pilot.callsign, code, distance, placed))
        if not within:
            continue
        out.checked += 1
        if placed in within:
            out.agreeing += 1
        else:
            out.disagreements.append(
                Disagreement(pilot.callsign, placed, float(place.distance_nm[i]), tuple(within))
            )
    return out
