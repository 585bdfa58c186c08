"""The nearest airport to many positions at once, within a radius, without a loop per position.

An STRtree over the airports' points answers one bounding-box query per position; the exact
great-circle distance (haversine) is computed for the candidate pairs only, and the nearest per
position is picked with a sort. The boxes are exact bounds of the spherical cap of the radius:
half a latitude span of ``delta`` (the radius as an angle) and a longitude half-width of
``asin(sin(delta) / cos(lat))``, the widest the cap gets (a cap that reaches a pole spans every
longitude). The tree holds every airport three times, at its longitude and shifted by ±360°,
so a box that crosses the antimeridian finds the airports on the other side without splitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from vatsim_collector.airports.reference import AirportReference

__all__ = ["EARTH_RADIUS_NM", "AirportIndex", "Nearest", "haversine_nm"]

# The mean Earth radius (IUGG, 6,371.0088 km) in nautical miles of 1,852 m.
EARTH_RADIUS_NM = 6_371_008.8 / 1852.0
# Boxes are widened by this many degrees so that rounding never loses a pair on the edge.
_SLACK_DEG = 1e-9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def haversine_nm(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance in nautical miles, element-wise over broadcast arrays."""
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
        self.reference = reference
        n = len(reference)
        lon = np.concatenate([reference.lon, reference.lon - 360.0, reference.lon + 360.0])
        lat = np.tile(reference.lat, 3)
        points: npt.NDArray[np.object_] = np.asarray(shapely.points(lon, lat))
        self._tree = shapely.STRtree(points)
        self._count = n

    def nearest(self, lat: npt.ArrayLike, lon: npt.ArrayLike, *, radius_nm: float) -> Nearest:
        """The nearest airport within ``radius_nm`` of each (lat, lon); ties go to the airport
        first in the reference's order (by ICAO code)."""
        if not radius_nm > 0:
            raise ValueError("radius_nm must be positive")
        lat_a = np.asarray(lat, dtype=float).ravel()
        lon_a = np.asarray(lon, dtype=float).ravel()
        if lat_a.shape != lon_a.shape:
            raise ValueError("lat and lon must have the same length")
        size = lat_a.size
        index = np.full(size, -1, dtype=np.int64)
        distance = np.full(size, np.nan)
        if size == 0 or self._count == 0:
            return Nearest(index, distance)
        delta = radius_nm / EARTH_RADIUS_NM  # radians
        delta_deg = np.degrees(delta)
        cos_lat = np.cos(np.radians(lat_a))
        ratio = np.sin(delta) / np.maximum(cos_lat, 1e-300)
        polar = (np.abs(lat_a) + delta_deg >= 90.0) | (ratio >= 1.0)
        half = np.where(polar, 180.0, np.degrees(np.arcsin(np.minimum(ratio, 1.0))))
        half = half + _SLACK_DEG
        lat_lo = np.maximum(lat_a - delta_deg - _SLACK_DEG, -90.0)
        lat_hi = np.minimum(lat_a + delta_deg + _SLACK_DEG, 90.0)
        boxes = shapely.box(lon_a - half, lat_lo, lon_a + half, lat_hi)
        pos, hit = self._tree.query(boxes)
        if pos.size == 0:
            return Nearest(index, distance)
        airport = (hit % self._count).astype(np.int64)
        ref = self.reference
        dist = haversine_nm(lat_a[pos], lon_a[pos], ref.lat[airport], ref.lon[airport])
        keep = dist <= radius_nm
        pos, airport, dist = pos[keep], airport[keep], dist[keep]
        if pos.size == 0:
            return Nearest(index, distance)
        # A polar box spans 360° of a tree that holds every airport three times: drop copies.
        order = np.lexsort((airport, dist, pos))
        pos, airport, dist = pos[order], airport[order], dist[order]
        first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
        index[pos[first]] = airport[first]
        distance[pos[first]] = dist[first]
        return Nearest(index, distance)
