"""Feed timestamps, great-circle geometry and radio frequencies for the simulator.

Pure functions and constants only, so the network model and benchmarks can share them
without touching the random stream that makes a simulated history reproducible.

The Earth radius, observer frequency and facility ranges repeat the collector's own
(``tracking.geodesy``, ``airspace.contacts``) on purpose: the simulator is the independent
oracle that tests check the collector against, so it must not borrow the collector's code.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

TICK = timedelta(seconds=15)
TICK_HOURS = TICK.total_seconds() / 3600.0
EARTH_RADIUS_NM = 3440.065
_KM_PER_DEG = 111.32
UNICOM_HZ = 122_800_000
GUARD_HZ = 121_500_000
OBSERVER_FREQUENCY = "199.998"
# Nominal coverage by facility id (1 FSS, 2 DEL, 3 GND, 4 TWR, 5 APP/DEP, 6 CTR).
FACILITY_RANGE_NM: dict[int, float] = {1: 1000.0, 2: 15.0, 3: 15.0, 4: 15.0, 5: 60.0, 6: 400.0}

_TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?$")


def parse_feed_time(value: str) -> datetime:
    """Parse a feed timestamp; the feed uses up to 7 fractional digits, datetime keeps 6."""
    m = _TS_RE.match(value)
    if m is None:
        raise ValueError(f"not a feed timestamp: {value!r}")
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    return datetime(y, mo, d, h, mi, s, micros, tzinfo=UTC)


def sub_microsecond_digit(value: str) -> int:
    """The sub-microsecond digit ``parse_feed_time`` drops, so a re-format can restore it."""
    m = _TS_RE.match(value)
    frac = (m.group(7) if m else None) or ""
    return int(frac[6]) if len(frac) > 6 else 0


def format_feed_time(moment: datetime, seventh_digit: int = 0) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{seventh_digit}Z"


def frequency_hz(mhz: str) -> int:
    whole, _, frac = mhz.partition(".")
    return int(whole) * 1_000_000 + int(frac.ljust(3, "0")[:3]) * 1000


def distance_nm(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_NM * math.asin(min(1.0, math.sqrt(a)))


def initial_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def wrap_longitude(lon: float) -> float:
    return lon if -180.0 <= lon <= 180.0 else (lon + 180.0) % 360.0 - 180.0


def destination(
    lat: float, lon: float, bearing: float, dist_nm: float
) -> tuple[float, float, float]:
    """Great-circle end point and the bearing an aircraft holds on arrival there."""
    p1, l1, th = math.radians(lat), math.radians(lon), math.radians(bearing)
    delta = dist_nm / EARTH_RADIUS_NM
    sin_p2 = math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * math.cos(th)
    p2 = math.asin(max(-1.0, min(1.0, sin_p2)))
    y = math.sin(th) * math.sin(delta) * math.cos(p1)
    x = math.cos(delta) - math.sin(p1) * sin_p2
    lat2 = max(-90.0, min(90.0, math.degrees(p2)))
    lon2 = wrap_longitude(math.degrees(l1 + math.atan2(y, x)))
    final = (initial_bearing(lat2, lon2, lat, lon) + 180.0) % 360.0
    return lat2, lon2, final


def offset_km(lat: float, lon: float, north_km: float, east_km: float) -> tuple[float, float]:
    """Flat-earth nudge for scattering points a few km apart; clamped so poles stay finite."""
    cos_lat = max(0.01, math.cos(math.radians(lat)))
    new_lat = max(-90.0, min(90.0, lat + north_km / _KM_PER_DEG))
    return new_lat, wrap_longitude(lon + east_km / (_KM_PER_DEG * cos_lat))
