"""One simulated aircraft and how it flies from one feed tick to the next."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vatsim_collector.simulator.geo import TICK_HOURS, destination

Json = dict[str, Any]

CLIMB_FT_PER_TICK = 500.0
ACCEL_KT_PER_TICK = 10.0
AIRBORNE_GS_KT = 40.0


@dataclass(slots=True)
class Pilot:
    record: Json  # every feed field; kinematic ones are overwritten on output
    lat: float
    lon: float
    heading: float
    altitude: float
    groundspeed: float
    target_altitude: float
    target_groundspeed: float
    off_channel_hz: int
    dual_com: bool


def plan_altitude_ft(plan: Mapping[str, Any] | None, default: float = 10_000.0) -> float:
    digits = re.sub(r"\D", "", str((plan or {}).get("altitude", "")))
    if not digits:
        return default
    value = float(digits)
    # Filed as a flight level ("FL350" or "350") rather than feet.
    return value * 100 if value < 1000 else value


def fly(
    p: Pilot,
    rng: random.Random,
    *,
    departure_chance: float,
    heading_jitter_deg: float,
    altitude_jitter_ft: float,
) -> None:
    """Advance one tick: cruise along the great circle, or maybe push back if parked."""
    if p.groundspeed > 0:
        p.lat, p.lon, p.heading = destination(p.lat, p.lon, p.heading, p.groundspeed * TICK_HOURS)
    elif p.record.get("flight_plan") and rng.random() < departure_chance:
        p.heading = rng.uniform(0, 360)
        p.groundspeed = 140.0
        p.target_groundspeed = float(
            re.sub(r"\D", "", str(p.record["flight_plan"].get("cruise_tas", ""))) or 250
        )
        p.target_altitude = plan_altitude_ft(p.record["flight_plan"])
    dgs = p.target_groundspeed - p.groundspeed
    p.groundspeed += math.copysign(min(abs(dgs), ACCEL_KT_PER_TICK), dgs)
    airborne = p.groundspeed >= AIRBORNE_GS_KT
    dalt = p.target_altitude - p.altitude
    if abs(dalt) > 100:
        p.altitude += math.copysign(min(abs(dalt), CLIMB_FT_PER_TICK), dalt)
    elif airborne and altitude_jitter_ft:
        p.altitude = max(0.0, p.altitude + rng.uniform(-altitude_jitter_ft, altitude_jitter_ft))
    if airborne and heading_jitter_deg:
        p.heading = (p.heading + rng.uniform(-heading_jitter_deg, heading_jitter_deg)) % 360
