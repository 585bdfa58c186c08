"""Every pilot of a snapshot classified at once: stopped, taxiing, rolling or in the air.

One vectorised nearest-airport lookup for the whole snapshot gives each aircraft its airport
(within the radius) and its height above that airport's elevation. Then:

- near an airport, no higher than ``ground_height_ft`` and no faster than ``taxi_max_kt``: on
  the ground, stopped (``stopped_max_kt`` or slower) or taxiing;
- near an airport, no higher than ``roll_height_ft`` and faster: a take-off or landing roll
  (the tighter height keeps an aircraft on short final in the air);
- with no airport within the radius, no faster than a taxi: on the ground somewhere the
  reference does not know (a field, a heliport), stopped or taxiing, at no airport;
- anything else is in the air.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.movements.model import PilotSample
from vatsim_collector.movements.rules import MovementRules
from vatsim_collector.movements.state import AIR, ROLL, STOPPED, TAXI, Obs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "NOT_QUIET",
    "QUIET_HIGH",
    "QUIET_LOW",
    "QUIET_MOVING",
    "QUIET_ROLL",
    "QUIET_STOPPED",
    "Columns",
    "classify",
]

# What each sample is, coarsely, for the detector's fast path: stopped or moving on the ground,
# in the air above the go-around height (or away from airports), in the air below it.
QUIET_STOPPED = 0
QUIET_MOVING = 1
QUIET_HIGH = 2
QUIET_LOW = 3
QUIET_ROLL = 4  # never quiet: a roll is a takeoff or a landing under way
NOT_QUIET = -1


@dataclass(frozen=True, slots=True)
class Columns:
    """One snapshot's samples, classified; ``obs(i)`` is the i-th as the detector sees it."""

    at: datetime
    samples: Sequence[PilotSample]
    classes: list[int]
    airport_index: list[int]
    height: list[float]
    codes: tuple[str, ...]
    kinds: list[int]  # QUIET_*

    def obs(self, i: int) -> Obs:
        s, a = self.samples[i], self.airport_index[i]
        # As floats whatever the caller passed (the feed's altitude, speed and heading are
        # whole numbers): a state saved live and one recomputed must encode alike.
        return Obs(
            self.at,
            float(s[2]),
            float(s[3]),
            float(s[4]),
            float(s[5]),
            float(s[6]),
            self.classes[i],
            self.codes[a] if a >= 0 else None,
            self.height[i] if a >= 0 else None,
        )


def _ceiling(elevation_ft: npt.NDArray[np.float64], rules: MovementRules) -> float:
    highest = float(elevation_ft.max()) if elevation_ft.size else 0.0
    return highest + max(
        rules.ground_height_ft,
        rules.roll_height_ft,
        rules.go_around_height_ft,
        rules.touch_and_go_height_ft,
    )


def classify(
    airports: AirportIndex, rules: MovementRules, at: datetime, samples: Sequence[PilotSample]
) -> Columns:
    """Every sample's class, airport, height above it and coarse kind (``QUIET_*``)."""
    import numpy as np  # on use: a command with no pilot to classify never loads numpy

    codes = airports.reference.codes
    n = len(samples)
    if n == 0:
        return Columns(at, samples, [], [], [], codes, [])
    # Columns 2-5 of each sample: latitude, longitude, altitude, ground speed.
    table = np.array([s[2:6] for s in samples], dtype=float).reshape(n, 4)
    lat, lon, alt, gs = table[:, 0], table[:, 1], table[:, 2], table[:, 3]
    reference = airports.reference
    # Above the highest airport by more than any height the rules look at, an aircraft is in
    # the air and high whatever airport is near: only the others are looked up (at cruise,
    # most of the network).
    low = alt <= _ceiling(reference.elevation_ft, rules)
    nearest = np.full(n, -1, dtype=np.int64)
    if low.any():
        nearest[low] = airports.nearest(lat[low], lon[low], radius_nm=rules.airport_radius_nm).index
    found = nearest >= 0
    height = np.where(found, alt - reference.elevation_ft[np.where(found, nearest, 0)], np.nan)
    slow = gs <= rules.taxi_max_kt
    ground_slow = slow & np.where(found, height <= rules.ground_height_ft, True)
    rolling = found & ~slow & (height <= rules.roll_height_ft)
    cls = np.full(n, AIR, dtype=np.int64)
    cls[ground_slow] = np.where(gs[ground_slow] <= rules.stopped_max_kt, STOPPED, TAXI)
    cls[rolling] = ROLL
    high = ~found | (height > rules.go_around_height_ft)
    kinds = np.select(
        [cls == STOPPED, cls == TAXI, cls == ROLL, high],
        [QUIET_STOPPED, QUIET_MOVING, QUIET_ROLL, QUIET_HIGH],
        QUIET_LOW,
    )
    return Columns(
        at,
        samples,
        cls.tolist(),
        nearest.tolist(),
        height.tolist(),
        codes,
        kinds.tolist(),
    )
