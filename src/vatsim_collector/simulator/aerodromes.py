"""Real airports for the simulator's realistic flights, straight from ``airportsdata``.

The simulator reads the package itself instead of the collector's airport code: it is the
independent oracle that movement detection is scored against, so it must not share the
code under test. Only airports with no other airport of the data set within
``ISOLATION_NM`` are used, so that "the airport a movement happened at" is unambiguous for
any nearest-airport lookup; the runway is a straight line through the reference point with
a heading fixed per airport (a CRC of the code, never Python's per-process ``hash``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cache

import airportsdata

from vatsim_collector.simulator.geo import destination, distance_nm

ISOLATION_NM = 6.0
RUNWAY_NM = 1.6
_CELL_DEG = 0.5


@dataclass(frozen=True, slots=True)
class Aerodrome:
    icao: str
    lat: float
    lon: float
    elevation_ft: float
    runway_heading: float

    def along(self, x_nm: float, y_nm: float = 0.0) -> tuple[float, float]:
        """A point ``x_nm`` along the runway heading from the reference point and ``y_nm``
        to its left (circuits are left-handed)."""
        lat, lon = self.lat, self.lon
        if x_nm:
            lat, lon, _ = destination(lat, lon, self.runway_heading, abs(x_nm))
            if x_nm < 0:
                lat, lon, _ = destination(
                    self.lat, self.lon, (self.runway_heading + 180.0) % 360.0, -x_nm
                )
        if y_nm:
            lat, lon, _ = destination(lat, lon, (self.runway_heading - 90.0) % 360.0, y_nm)
        return lat, lon

    @property
    def threshold(self) -> tuple[float, float]:
        return self.along(-RUNWAY_NM / 2)


@dataclass(frozen=True, slots=True)
class AerodromeIndex:
    by_icao: dict[str, Aerodrome]
    # Sorted, so that choosing from it is reproducible.
    codes: tuple[str, ...]

    def within(self, lat: float, lon: float, low_nm: float, high_nm: float) -> list[str]:
        return [
            code
            for code in self.codes
            if low_nm
            <= distance_nm(lat, lon, self.by_icao[code].lat, self.by_icao[code].lon)
            <= high_nm
        ]


def _runway_heading(icao: str) -> float:
    return float(zlib.crc32(icao.encode()) % 36 * 10)


@cache
def load_aerodromes() -> AerodromeIndex:
    """Isolated real airports with a 4-letter ICAO code (loaded once per process)."""
    data = airportsdata.load("ICAO")
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for a in data.values():
        key = (math.floor(a["lat"] / _CELL_DEG), math.floor(a["lon"] / _CELL_DEG))
        grid.setdefault(key, []).append((a["lat"], a["lon"]))
    chosen: dict[str, Aerodrome] = {}
    for code, a in data.items():
        if len(code) != 4 or not code.isalpha() or not code.isupper() or abs(a["lat"]) > 70:
            continue
        ci, cj = math.floor(a["lat"] / _CELL_DEG), math.floor(a["lon"] / _CELL_DEG)
        crowded = any(
            0.0 < distance_nm(a["lat"], a["lon"], lat, lon) < ISOLATION_NM
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            for lat, lon in grid.get((ci + di, cj + dj), [])
        )
        duplicates = sum(
            1 for lat, lon in grid.get((ci, cj), []) if (lat, lon) == (a["lat"], a["lon"])
        )
        if crowded or duplicates > 1:
            continue
        chosen[code] = Aerodrome(
            code, float(a["lat"]), float(a["lon"]), float(a["elevation"]), _runway_heading(code)
        )
    return AerodromeIndex(chosen, tuple(sorted(chosen)))
