"""Great-circle distances in nautical miles on a spherical Earth, and the centre of a station.

A sphere is within ~0.5 % of the ellipsoid, far finer than the ranges it is compared with
(controller ranges of 15-1000 nm, sector margins). The haversine form is used because it stays
accurate for the short distances that matter most (an aircraft next to a tower), and works on
longitude differences through sines, so crossing the antimeridian needs no special case.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from vatsim_collector.feed.models import StationTransceivers

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_NM = 3440.065


def great_circle_nm(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in nautical miles between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2.0
    half_dlambda = math.radians(lon2 - lon1) / 2.0
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2.0 * EARTH_RADIUS_NM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def great_circle_nm_array(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """``great_circle_nm`` element-wise over broadcastable arrays (degrees in, nm out)."""
    import numpy as np  # imported on use: a command with no pilot to place never pays for numpy

    phi1 = np.radians(np.asarray(lat1, dtype=np.float64))
    phi2 = np.radians(np.asarray(lat2, dtype=np.float64))
    half_dphi = (phi2 - phi1) / 2.0
    half_dlambda = (
        np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64)) / 2.0
    )
    h = np.sin(half_dphi) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(half_dlambda) ** 2
    distance: NDArray[np.float64] = 2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return distance


def transceiver_centroid(station: StationTransceivers) -> tuple[float, float] | None:
    """Mean position on the unit sphere, so stations either side of 180° average correctly."""
    x = y = z = 0.0
    n = 0
    for t in station.transceivers:
        if t.latDeg is None or t.lonDeg is None:
            continue
        lat, lon = math.radians(t.latDeg), math.radians(t.lonDeg)
        x += math.cos(lat) * math.cos(lon)
        y += math.cos(lat) * math.sin(lon)
        z += math.sin(lat)
        n += 1
    if n == 0:
        return None
    lon = math.degrees(math.atan2(y, x))
    lat = math.degrees(math.atan2(z, math.hypot(x, y)))
    return (round(lat, 6), round(lon, 6))
