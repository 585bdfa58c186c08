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
from datetime import datetime

import numpy as np

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.movements.model import PilotSample
from vatsim_collector.movements.rules import MovementRules
from vatsim_collector.movements.state import AIR, ROLL, STOPPED, TAXI, Obs

__all__ = ["classify"]


def classify(
    airports: AirportIndex, rules: MovementRules, at: datetime, samples: Sequence[PilotSample]
) -> list[Obs]:
    n = len(samples)
    if n == 0:
        return []
    lat = np.fromiter((s.latitude for s in samples), dtype=float, count=n)
    lon = np.fromiter((s.longitude for s in samples), dtype=float, count=n)
    alt = np.fromiter((s.altitude_ft for s in samples), dtype=float, count=n)
    gs = np.fromiter((s.groundspeed_kt for s in samples), dtype=float, count=n)
    near = airports.nearest(lat, lon, radius_nm=rules.airport_radius_nm)
    found = near.index >= 0
    reference = airports.reference
    height = np.where(found, alt - reference.elevation_ft[np.where(found, near.index, 0)], np.nan)
    slow = gs <= rules.taxi_max_kt
    ground_slow = slow & np.where(found, height <= rules.ground_height_ft, True)
    rolling = found & ~slow & (height <= rules.roll_height_ft)
    cls = np.full(n, AIR, dtype=np.int64)
    cls[ground_slow] = np.where(gs[ground_slow] <= rules.stopped_max_kt, STOPPED, TAXI)
    cls[rolling] = ROLL
    codes = reference.icao
    return [
        Obs(
            at=at,
            lat=s.latitude,
            lon=s.longitude,
            alt=s.altitude_ft,
            gs=s.groundspeed_kt,
            hdg=s.heading_deg,
            cls=c,
            airport=str(codes[i]) if i >= 0 else None,
            height=h if i >= 0 else None,
        )
        for s, c, i, h in zip(
            samples, cls.tolist(), near.index.tolist(), height.tolist(), strict=True
        )
    ]
