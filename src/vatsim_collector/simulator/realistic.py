"""Realistic flights: park, taxi, take off, fly the great circle, land, taxi in, disconnect.

Each aircraft follows a list of legs (ground or air waypoints) with bounded acceleration
and vertical speed. A tick is integrated in sub-steps that end exactly where something
happens (a waypoint reached, rotation speed reached, touchdown), so every movement is
stamped with its exact simulated time in the ground truth (``TruthMovement``) rather
than with the tick it falls in. Altitudes are true altitudes (feet MSL); on the ground an
aircraft sits exactly at its airport's elevation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from vatsim_collector.simulator.aerodromes import RUNWAY_NM, Aerodrome
from vatsim_collector.simulator.flights import Pilot
from vatsim_collector.simulator.geo import destination, distance_nm, format_feed_time
from vatsim_collector.simulator.geo import initial_bearing as bearing

MovementKind = Literal["off_block", "takeoff", "landing", "touch_and_go", "go_around", "on_block"]

TAXI_KT = 15.0
FINAL_FIX_NM = 8.0
FINAL_FIX_AGL_FT = 2500.0
_GLIDE_FT_PER_NM = 318.0  # a 3-degree path
_DESCENT_START_FPS = 25.0  # start down when the next fix needs 1500 ft/min or more
_MAX_DESCENT_FPS = 60.0
_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class Performance:
    rotate_kt: float
    touchdown_kt: float
    approach_kt: float
    climb_kt: float
    cruise_kt: float
    roll_accel_kts: float  # kt per second on the runway
    air_accel_kts: float
    climb_fps: float


JET = Performance(145.0, 135.0, 160.0, 250.0, 450.0, 3.0, 1.0, 35.0)
LIGHT = Performance(60.0, 58.0, 70.0, 85.0, 95.0, 2.5, 1.0, 12.0)


@dataclass(frozen=True, slots=True)
class TruthMovement:
    """One true movement, exactly when it happened in simulated time."""

    kind: MovementKind
    time: datetime
    callsign: str
    cid: int
    logon_time: str
    airport: str
    diversion: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "time": format_feed_time(self.time),
            "callsign": self.callsign,
            "cid": self.cid,
            "logon_time": self.logon_time,
            "airport": self.airport,
            "diversion": self.diversion,
        }


class Phase(Enum):
    PARKED = "parked"
    TAXI = "taxi"
    TAKEOFF_ROLL = "takeoff_roll"
    AIRBORNE = "airborne"
    LANDING_ROLL = "landing_roll"
    PARKED_IN = "parked_in"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Fix:
    lat: float
    lon: float
    alt_ft: float
    kt: float
    # "cruise": climb to the flight's cruise level on the way and descend only when needed.
    # "touchdown": the runway threshold; "go_around": where the missed approach begins.
    role: Literal["", "cruise", "touchdown", "go_around"] = ""


@dataclass(slots=True)
class Flight:
    pilot: Pilot
    perf: Performance
    origin: Aerodrome
    destination: Aerodrome
    cruise_ft: float
    phase: Phase
    wait_s: float  # seconds left parked (before off-block, or before disconnecting)
    route: list[Fix] = field(default_factory=list)
    circuits_left: int = 0  # touch-and-goes still to fly
    go_around_planned: bool = False
    divert_to: Aerodrome | None = None
    diverted: bool = False
    ground_target: float = 0.0  # touch-and-go: speed to slow to before accelerating again
    # Where to park after landing: (along, left of) the runway of wherever it lands, in nm.
    stand: tuple[float, float] = (0.0, 0.5)
    taxi: list[tuple[float, float]] = field(default_factory=list)
    inbound: bool = False


def approach(a: Aerodrome, perf: Performance, *, go_around_ft: float | None) -> list[Fix]:
    """Final fix on the extended centre line, (a missed-approach point,) the threshold."""
    faf = a.along(-RUNWAY_NM / 2 - FINAL_FIX_NM)
    fixes = [Fix(*faf, a.elevation_ft + FINAL_FIX_AGL_FT, perf.approach_kt + 20, "cruise")]
    if go_around_ft is not None:
        ga = a.along(-RUNWAY_NM / 2 - go_around_ft / _GLIDE_FT_PER_NM)
        fixes.append(Fix(*ga, a.elevation_ft + go_around_ft, perf.approach_kt, "go_around"))
    fixes.append(Fix(*a.threshold, a.elevation_ft, perf.touchdown_kt, "touchdown"))
    return fixes


def missed_approach(a: Aerodrome, perf: Performance) -> list[Fix]:
    """Climb out ahead, fly a wide left pattern back to the final fix, land."""
    e = a.elevation_ft
    return [
        Fix(*a.along(5.0), e + 2000, perf.approach_kt + 30),
        Fix(*a.along(5.0, 5.0), e + 3000, perf.approach_kt + 40),
        Fix(*a.along(-RUNWAY_NM / 2 - FINAL_FIX_NM - 3, 5.0), e + 3000, perf.approach_kt + 30),
        *approach(a, perf, go_around_ft=None),
    ]


def circuit(a: Aerodrome, perf: Performance) -> list[Fix]:
    """A left-hand traffic pattern at 1000 ft above the field, ending on the threshold."""
    e, half = a.elevation_ft, RUNWAY_NM / 2
    return [
        Fix(*a.along(half + 1.2), e + 700, perf.climb_kt),
        Fix(*a.along(half + 1.2, 1.5), e + 1000, perf.cruise_kt),
        Fix(*a.along(-half - 1.5, 1.5), e + 1000, perf.cruise_kt),
        Fix(*a.along(-half - 1.5), e + 500, perf.approach_kt),
        Fix(*a.threshold, e, perf.touchdown_kt, "touchdown"),
    ]


def _toward(value: float, target: float, step: float) -> float:
    return target if abs(target - value) <= step else value + math.copysign(step, target - value)


class FlightModel:
    """Advances flights and records what truly happened; owns no randomness of its own
    except through the ``rng`` it is given (the go-around height, dwell times)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.truth: list[TruthMovement] = []

    def _record(self, f: Flight, kind: MovementKind, at: datetime, airport: str) -> None:
        rec = f.pilot.record
        diversion = kind == "landing" and f.diverted
        self.truth.append(
            TruthMovement(
                kind, at, rec["callsign"], int(rec["cid"]), rec["logon_time"], airport, diversion
            )
        )

    def advance(self, f: Flight, start: datetime, seconds: float) -> None:
        """Integrate ``f`` from ``start`` over ``seconds`` of simulated time."""
        done = 0.0
        # Bounded: every sub-step either consumes time or changes phase/route.
        for _ in range(200):
            left = seconds - done
            if left <= _EPS_S or f.phase is Phase.GONE:
                return
            done += self._substep(f, start + timedelta(seconds=done), left)
        raise RuntimeError("flight model did not converge")  # pragma: no cover

    def _substep(self, f: Flight, at: datetime, left: float) -> float:
        p = f.pilot
        if f.phase in (Phase.PARKED, Phase.PARKED_IN):
            used = min(left, f.wait_s)
            f.wait_s -= used
            if f.wait_s <= _EPS_S:
                if f.phase is Phase.PARKED_IN:
                    f.phase = Phase.GONE
                else:
                    self._record(f, "off_block", at + timedelta(seconds=used), f.origin.icao)
                    f.phase = Phase.TAXI
                    p.groundspeed = TAXI_KT
            return used
        if f.phase is Phase.TAXI:
            return self._taxi(f, at, left)
        if f.phase is Phase.TAKEOFF_ROLL:
            return self._takeoff_roll(f, at, left)
        if f.phase is Phase.LANDING_ROLL:
            return self._landing_roll(f, at, left)
        return self._fly(f, at, left)

    # ----- ground ------------------------------------------------------------------------

    def _move_to(self, p: Pilot, lat: float, lon: float, kt: float, left: float) -> float:
        dist = distance_nm(p.lat, p.lon, lat, lon)
        need = dist / kt * 3600.0 if kt > 0 else math.inf
        if need <= left:
            if dist > 0:
                p.heading = bearing(p.lat, p.lon, lat, lon)
            p.lat, p.lon = lat, lon
            return need
        p.heading = bearing(p.lat, p.lon, lat, lon)
        p.lat, p.lon, _ = destination(p.lat, p.lon, p.heading, kt * left / 3600.0)
        return left

    def _taxi(self, f: Flight, at: datetime, left: float) -> float:
        p = f.pilot
        target = f.taxi[0]
        used = self._move_to(p, *target, TAXI_KT, left)
        if (p.lat, p.lon) != target:
            return used
        f.taxi.pop(0)
        if f.taxi:
            return used
        if f.inbound:
            p.groundspeed = 0.0
            self._record(f, "on_block", at + timedelta(seconds=used), f.destination.icao)
            f.phase = Phase.PARKED_IN
            f.wait_s = self._rng.uniform(120, 900)
        else:
            f.phase = Phase.TAKEOFF_ROLL
            p.heading = f.origin.runway_heading
        return used

    def _roll(self, p: Pilot, accel: float, target_kt: float, left: float) -> float:
        """Accelerate (or brake) along the heading towards ``target_kt``; seconds used."""
        need = abs(target_kt - p.groundspeed) / accel
        used = min(left, need)
        end_kt = _toward(p.groundspeed, target_kt, accel * used)
        dist = (p.groundspeed + end_kt) / 2 * used / 3600.0
        p.lat, p.lon, _ = destination(p.lat, p.lon, p.heading, dist)
        p.groundspeed = end_kt
        return used

    def _takeoff_roll(self, f: Flight, at: datetime, left: float) -> float:
        p = f.pilot
        used = self._roll(p, f.perf.roll_accel_kts, f.perf.rotate_kt, left)
        if p.groundspeed >= f.perf.rotate_kt:
            # A touch-and-go was recorded at its touchdown; only a first takeoff is new.
            if not f.ground_target:
                self._record(f, "takeoff", at + timedelta(seconds=used), f.origin.icao)
            f.ground_target = 0.0
            f.phase = Phase.AIRBORNE
        return used

    def _landing_roll(self, f: Flight, at: datetime, left: float) -> float:
        p = f.pilot
        if f.ground_target:
            # Touch-and-go: brief slow-down on the runway, then full power again.
            used = self._roll(p, f.perf.roll_accel_kts, f.ground_target, left)
            if p.groundspeed <= f.ground_target:
                f.phase = Phase.TAKEOFF_ROLL
            return used
        used = self._roll(p, f.perf.roll_accel_kts, TAXI_KT, left)
        if p.groundspeed <= TAXI_KT:
            f.phase = Phase.TAXI
            f.inbound = True
            f.taxi = [f.destination.along(*f.stand)]
        return used

    # ----- air ---------------------------------------------------------------------------

    def _fly(self, f: Flight, at: datetime, left: float) -> float:
        p, fix = f.pilot, f.route[0]
        alternate = None if f.diverted or fix.role != "cruise" else f.divert_to
        if alternate and distance_nm(p.lat, p.lon, f.destination.lat, f.destination.lon) < 150:
            f.destination, f.diverted = alternate, True
            f.route = approach(f.destination, f.perf, go_around_ft=None)
            fix = f.route[0]
        dist = distance_nm(p.lat, p.lon, fix.lat, fix.lon)
        kt = max(p.groundspeed, 1.0)
        to_fix = dist / kt * 3600.0
        # Vertical: climb towards the level this leg allows; descend only when the fix
        # below needs it, so cruise is level and the descent a steady path.
        ceiling = max(fix.alt_ft, f.cruise_ft) if fix.role == "cruise" else fix.alt_ft
        drop = p.altitude - fix.alt_ft
        needed = drop / to_fix if to_fix > _EPS_S else math.inf
        step = min(left, to_fix)
        on_path = fix.role in ("touchdown", "go_around")
        if on_path or (drop > 0 and needed >= _DESCENT_START_FPS):
            vs = -needed if on_path else -min(needed, _MAX_DESCENT_FPS)
        elif p.altitude < ceiling - 1:
            vs = min(f.perf.climb_fps, (ceiling - p.altitude) / step)
        else:
            vs = 0.0
            if drop > 0 and to_fix > _EPS_S:
                # Stay level until the descent becomes necessary, and start it exactly then.
                start_in = to_fix - drop / _DESCENT_START_FPS
                step = min(step, max(start_in, 0.5))
        target_kt = fix.kt
        if fix.role == "cruise" and vs >= 0 and dist > 30:
            high = p.altitude > f.origin.elevation_ft + 10_000
            target_kt = f.perf.cruise_kt if high else f.perf.climb_kt
        end_kt = _toward(p.groundspeed, target_kt, f.perf.air_accel_kts * step)
        covered = (p.groundspeed + end_kt) / 2 * step / 3600.0
        reached = covered >= dist - 1e-9
        if reached and dist > 0:
            step = step * dist / covered if covered > 0 else step
        p.altitude += vs * step
        p.groundspeed = end_kt
        if reached:
            if dist > 0:
                p.heading = bearing(p.lat, p.lon, fix.lat, fix.lon)
            p.lat, p.lon = fix.lat, fix.lon
            self._fix_reached(f, fix, at + timedelta(seconds=step))
        else:
            p.heading = bearing(p.lat, p.lon, fix.lat, fix.lon)
            p.lat, p.lon, _ = destination(p.lat, p.lon, p.heading, covered)
        return step

    def _fix_reached(self, f: Flight, fix: Fix, at: datetime) -> None:
        p = f.pilot
        f.route.pop(0)
        if fix.role == "cruise" and p.altitude > fix.alt_ft + 300:
            # Too high for the final fix (a late diversion): fly a descending loop first.
            f.route = missed_approach(f.destination, f.perf)
        elif fix.role == "go_around":
            self._record(f, "go_around", at, f.destination.icao)
            f.route = missed_approach(f.destination, f.perf)
        elif fix.role == "touchdown":
            p.altitude = f.destination.elevation_ft
            p.heading = f.destination.runway_heading
            f.phase = Phase.LANDING_ROLL
            if f.circuits_left > 0:
                f.circuits_left -= 1
                self._record(f, "touch_and_go", at, f.destination.icao)
                # Slowing to 60 % before full power again keeps the wheels down for longer
                # than one 15 s poll (about 19 s for a light aircraft), like a real one.
                f.ground_target = f.perf.touchdown_kt * 0.6
                f.route = circuit(f.destination, f.perf)
            else:
                self._record(f, "landing", at, f.destination.icao)
