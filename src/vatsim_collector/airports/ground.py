"""Which aircraft are on the ground, and at which airport.

An aircraft is on the ground when it moves no faster than a fast taxi (``max_ground_speed_kt``)
and is no higher than ``max_height_ft`` above the elevation of the nearest airport within the
radius. The height is the feed's altitude minus the field elevation (both feet MSL); simulators
report a parked aircraft some tens of feet off the reference elevation (the elevation is that
of the highest point of the landing area, and often approximate), so the bound has room above
and none below. An aircraft with no airport within the radius is not placed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vatsim_collector.airports.nearest import AirportIndex

__all__ = ["DEFAULT_RULE", "GroundRule", "Placement", "place_on_ground"]


@dataclass(frozen=True, slots=True)
class GroundRule:
    # Taxiing stays below about 30 kt; a take-off roll passes 40 kt within seconds.
    max_ground_speed_kt: float = 40.0
    # Parked aircraft on the real snapshots sit within about 130 ft of the field's elevation
    # (99th percentile); an aircraft in a circuit flies 800 ft or more above it.
    max_height_ft: float = 200.0


DEFAULT_RULE = GroundRule()


@dataclass(frozen=True, slots=True)
class Placement:
    """Per aircraft: the nearest airport within the radius (-1: none) and the distance to it,
    the height above that airport (NaN: none), and whether the aircraft is on the ground
    there."""

    index: npt.NDArray[np.int64]
    distance_nm: npt.NDArray[np.float64]
    height_ft: npt.NDArray[np.float64]
    on_ground: npt.NDArray[np.bool_]


def place_on_ground(
    airports: AirportIndex,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    altitude_ft: npt.ArrayLike,
    ground_speed_kt: npt.ArrayLike,
    *,
    radius_nm: float,
    rule: GroundRule = DEFAULT_RULE,
) -> Placement:
    near = airports.nearest(lat, lon, radius_nm=radius_nm)
    found = near.index >= 0
    elevation = airports.reference.elevation_ft[np.where(found, near.index, 0)]
    height = np.where(found, np.asarray(altitude_ft, dtype=float).ravel() - elevation, np.nan)
    slow = np.asarray(ground_speed_kt, dtype=float).ravel() <= rule.max_ground_speed_kt
    on_ground = found & slow & (height <= rule.max_height_ft)
    return Placement(near.index, near.distance_nm, height, on_ground)
