"""The nearest airport to many positions at once, within a radius, without a loop per position.

A KD-tree (scipy's ``cKDTree``) holds every airport as a point on the unit sphere in three
dimensions; the straight-line (chord) distance between two such points grows with the
great-circle distance, so the nearest by chord is the nearest along the surface, and the poles
and the antimeridian need no special case. One query for all positions returns the few nearest
airports within the chord of the radius; the exact great-circle distance (haversine) is then
computed for those candidates only, and the nearest per position is picked with a sort (ties to
the airport first in the reference's order).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vatsim_collector.airports.reference import AirportReference

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from scipy.spatial import cKDTree

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]

__all__ = ["EARTH_RADIUS_NM", "AirportIndex", "Nearest", "haversine_nm"]

# The mean Earth radius (IUGG, 6,371.0088 km) in nautical miles of 1,852 m.
EARTH_RADIUS_NM = 6_371_008.8 / 1852.0
# The chord bound is widened by this much so that rounding never loses an airport on the edge
# (the exact haversine decides afterwards).
_SLACK_CHORD = 1e-9
# Nearest airports asked of the tree per position: the nearest, and any near-ties.
_CANDIDATES = 4


def haversine_nm(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance in nautical miles, element-wise over broadcast arrays."""
    import numpy as np  # on use: a command that never looks up an airport never loads numpy

    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


@dataclass(frozen=True, slots=True)
class Nearest:
    """Per position: the airport's index in the reference (-1: none within the radius) and the
    distance to it in nautical miles (NaN: none)."""

    index: IntArray
    distance_nm: FloatArray


class AirportIndex:
    def __init__(self, reference: AirportReference) -> None:
        self._load: Callable[[], AirportReference] | None = None
        self._lock = threading.Lock()
        self._build(reference)

    @classmethod
    def deferred(cls, load: Callable[[], AirportReference]) -> AirportIndex:
        """An index whose reference is loaded, and tree built, on first use: a command that
        never looks up an airport (a replay of files without pilots) does not pay for it."""
        index = cls.__new__(cls)
        index._load = load
        index._lock = threading.Lock()
        return index

    def _build(self, reference: AirportReference) -> None:
        # scipy.spatial takes a quarter of a second to import: only an index being built needs it.
        from scipy.spatial import cKDTree

        self._reference = reference
        self._count = len(reference)
        self._tree: cKDTree = cKDTree(_unit_vectors(reference.lat, reference.lon))

    def _ready(self) -> None:
        if self._load is not None:
            with self._lock:
                if self._load is not None:
                    self._build(self._load())
                    self._load = None

    @property
    def reference(self) -> AirportReference:
        self._ready()
        return self._reference

    def nearest(self, lat: npt.ArrayLike, lon: npt.ArrayLike, *, radius_nm: float) -> Nearest:
        """The nearest airport within ``radius_nm`` of each (lat, lon); ties go to the airport
        first in the reference's order (by ICAO code)."""
        if not radius_nm > 0:
            raise ValueError("radius_nm must be positive")
        import numpy as np  # on use: a command that never looks up an airport never loads numpy

        self._ready()
        lat_a = np.asarray(lat, dtype=float).ravel()
        lon_a = np.asarray(lon, dtype=float).ravel()
        if lat_a.shape != lon_a.shape:
            raise ValueError("lat and lon must have the same length")
        size = lat_a.size
        index = np.full(size, -1, dtype=np.int64)
        distance = np.full(size, np.nan)
        if size == 0 or self._count == 0:
            return Nearest(index, distance)
        angle = min(math.pi, radius_nm / EARTH_RADIUS_NM)
        chord = 2.0 * math.sin(angle / 2.0) + _SLACK_CHORD
        k = min(_CANDIDATES, self._count)
        _, found = self._tree.query(_unit_vectors(lat_a, lon_a), k=k, distance_upper_bound=chord)
        found = np.asarray(found).reshape(size, k)
        pos, slot = np.nonzero(found < self._count)  # a miss is reported as the count
        if pos.size == 0:
            return Nearest(index, distance)
        airport = found[pos, slot].astype(np.int64)
        ref = self.reference
        dist = haversine_nm(lat_a[pos], lon_a[pos], ref.lat[airport], ref.lon[airport])
        keep = dist <= radius_nm
        pos, airport, dist = pos[keep], airport[keep], dist[keep]
        if pos.size == 0:
            return Nearest(index, distance)
        order = np.lexsort((airport, dist, pos))
        pos, airport, dist = pos[order], airport[order], dist[order]
        first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
        index[pos[first]] = airport[first]
        distance[pos[first]] = dist[first]
        return Nearest(index, distance)


def _unit_vectors(lat: npt.ArrayLike, lon: npt.ArrayLike) -> FloatArray:
    """Points on the unit sphere, one row (x, y, z) per (lat, lon) in degrees."""
    import numpy as np

    phi, lam = np.radians(lat), np.radians(lon)
    cos_phi = np.cos(phi)
    return np.column_stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)])
