"""Deterministic model of the VATSIM network that evolves in 15 s ticks.

It is seeded from a real v3 snapshot so field shapes and the population mix match what
the collector meets in production. All randomness flows through one ``random.Random``
so that a (snapshot, seed, start) triple always replays exactly the same history.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

Json = dict[str, Any]

TICK = timedelta(seconds=15)
_TICK_HOURS = TICK.total_seconds() / 3600.0
EARTH_RADIUS_NM = 3440.065
_KM_PER_DEG = 111.32
UNICOM_HZ = 122_800_000
GUARD_HZ = 121_500_000
OBSERVER_FREQUENCY = "199.998"
# Nominal coverage by facility id (1 FSS, 2 DEL, 3 GND, 4 TWR, 5 APP/DEP, 6 CTR).
FACILITY_RANGE_NM: dict[int, float] = {1: 1000.0, 2: 15.0, 3: 15.0, 4: 15.0, 5: 60.0, 6: 400.0}
_FACILITY_SUFFIX = {0: "OBS", 1: "FSS", 2: "DEL", 3: "GND", 4: "TWR", 5: "APP", 6: "CTR"}
_VISUAL_RANGE = {0: 150, 1: 1500, 2: 20, 3: 20, 4: 50, 5: 150, 6: 600}
# Weighted like a busy real evening: towers and approaches dominate.
_NEW_FACILITIES = (0, 0, 0, 1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6)
_FIRST = ("Alex", "Sam", "Chris", "Jo", "Kim", "Lee", "Max", "Noa", "Ola", "Pat", "Ria", "Tom")
_LAST = ("Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Ito", "Khan", "Novak", "Silva")
_AIRLINES = ("AAL", "BAW", "DLH", "AFR", "KLM", "UAL", "DAL", "QFA", "SIA", "EZY", "RYR", "THY")
CLIMB_FT_PER_TICK = 500.0
ACCEL_KT_PER_TICK = 10.0
AIRBORNE_GS_KT = 40.0
DEFAULT_SEED_PATH = Path(__file__).parent / "seed" / "seed-snapshot.json"

_TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z?$")


def parse_feed_time(value: str) -> datetime:
    """Parse a feed timestamp; the feed uses up to 7 fractional digits, datetime keeps 6."""
    m = _TS_RE.match(value)
    if m is None:
        raise ValueError(f"not a feed timestamp: {value!r}")
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    return datetime(y, mo, d, h, mi, s, micros, tzinfo=UTC)


def _seventh_digit(value: str) -> int:
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


def _offset(lat: float, lon: float, north_km: float, east_km: float) -> tuple[float, float]:
    cos_lat = max(0.01, math.cos(math.radians(lat)))
    new_lat = max(-90.0, min(90.0, lat + north_km / _KM_PER_DEG))
    return new_lat, wrap_longitude(lon + east_km / (_KM_PER_DEG * cos_lat))


def plan_altitude_ft(plan: Mapping[str, Any] | None, default: float = 10_000.0) -> float:
    digits = re.sub(r"\D", "", str((plan or {}).get("altitude", "")))
    if not digits:
        return default
    value = float(digits)
    # Filed as a flight level ("FL350" or "350") rather than feet.
    return value * 100 if value < 1000 else value


def load_seed_snapshot(path: Path | None = None) -> Json:
    data = orjson.loads((path or DEFAULT_SEED_PATH).read_bytes())
    if not isinstance(data, dict) or "general" not in data:
        raise ValueError("seed snapshot is not a v3 vatsim-data document")
    return data


@dataclass(frozen=True, slots=True)
class SimRates:
    """Per-tick probabilities; joins are relative to the seed population so it stays stable."""

    pilot_leave: float = 0.003
    pilot_join: float = 0.003
    controller_leave: float = 0.0015
    controller_join: float = 0.0015
    atis_leave: float = 0.001
    atis_join: float = 0.001
    reconnect_share: float = 0.15
    prefile_share: float = 0.1
    no_flight_plan_share: float = 0.25
    airborne_spawn_share: float = 0.2
    amendment: float = 0.0005
    departure: float = 0.002
    atis_code_change: float = 0.008
    controller_refresh: float = 0.3
    off_channel_share: float = 0.2
    heading_jitter_deg: float = 1.5
    altitude_jitter_ft: float = 20.0


@dataclass(slots=True)
class _Pilot:
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


@dataclass(frozen=True, slots=True)
class _Spawn:
    lat: float
    lon: float
    altitude: float
    groundspeed: float
    heading: float
    departure: str | None


@dataclass(slots=True)
class _Station:
    record: Json
    lat: float
    lon: float
    antennas: list[tuple[float, float, float, float]]  # lat, lon, msl m, agl m


class SimulatedNetwork:
    def __init__(
        self,
        snapshot: Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        start: datetime | None = None,
        rates: SimRates | None = None,
    ) -> None:
        snap: Mapping[str, Any] = snapshot if snapshot is not None else load_seed_snapshot()
        snap_time = parse_feed_time(str(snap["general"]["update_timestamp"]))
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = (start or snap_time).astimezone(UTC)
        self.seed = seed
        self.rates = rates or SimRates()
        self.tick_count = 0
        self._rng = random.Random(seed)
        self._shift = self.start - snap_time
        self._static = {
            k: snap[k] for k in ("servers", "facilities", "ratings", "pilot_ratings") if k in snap
        }
        derived = {"version", "reload", "update", "update_timestamp"}
        derived |= {"connected_clients", "unique_users"}
        self._extra_general = {k: v for k, v in snap["general"].items() if k not in derived}
        self._servers = [str(s["ident"]) for s in snap.get("servers", [])] or ["SIM-1"]
        self._pilot_ratings = [int(r["id"]) for r in snap.get("pilot_ratings", [])] or [0]
        pilots = [self._shifted(p) for p in snap.get("pilots", [])]
        self.pilots: dict[str, _Pilot] = {p["callsign"]: self._pilot_from_record(p) for p in pilots}
        self.prefiles: list[Json] = [self._shifted(p) for p in snap.get("prefiles", [])]
        self._plans: list[Json] = [
            dict(r["flight_plan"]) for r in (*pilots, *self.prefiles) if r.get("flight_plan")
        ] or [{"departure": "ZZZZ", "arrival": "ZZZZ", "altitude": "10000", "revision_id": 0}]
        self._airports: dict[str, tuple[float, float, float]] = {}
        # Frozen copies of seed positions: live pilots move and leave, spawn points must not.
        self._spawn: list[_Spawn] = []
        for p in self.pilots.values():
            dep = (p.record.get("flight_plan") or {}).get("departure")
            if p.groundspeed < 5 and dep:
                self._airports.setdefault(str(dep), (p.lat, p.lon, p.altitude))
            self._spawn.append(
                _Spawn(
                    p.lat, p.lon, p.altitude, p.groundspeed, p.heading, str(dep) if dep else None
                )
            )
        self._air_spawn = [s for s in self._spawn if s.groundspeed >= AIRBORNE_GS_KT]
        # Parked aircraft with a filed departure mark where airports are.
        self._gate_spawn = [s for s in self._spawn if s.groundspeed < 5 and s.departure]
        self.controllers: dict[str, _Station] = {
            c["callsign"]: self._station(self._shifted(c)) for c in snap.get("controllers", [])
        }
        self.atis: dict[str, _Station] = {
            a["callsign"]: self._station(self._shifted(a)) for a in snap.get("atis", [])
        }
        self._base = (max(len(self.pilots), 1), max(len(self.controllers), 1), len(self.atis))
        all_cids = [int(r["cid"]) for r in (*pilots, *self.prefiles)]
        all_cids += [
            int(s.record["cid"]) for s in (*self.controllers.values(), *self.atis.values())
        ]
        self._next_cid = max(all_cids, default=1_400_000) + 1
        self._departed: list[_Pilot] = []
        self._transceivers_cache: tuple[int, list[Json]] | None = None

    # ----- time -------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.start + TICK * self.tick_count

    @property
    def update_timestamp(self) -> str:
        return format_feed_time(self.now)

    def _stamp(self, max_age_s: float = 0.0) -> str:
        if not max_age_s:
            # A random 7th digit here could put a client after the document's own timestamp.
            return format_feed_time(self.now)
        age = timedelta(seconds=self._rng.uniform(0.0, max_age_s))
        return format_feed_time(self.now - age, self._rng.randrange(10))

    def _shifted(self, record: Mapping[str, Any]) -> Json:
        out = dict(record)
        for key in ("logon_time", "last_updated"):
            if isinstance(out.get(key), str):
                shifted = parse_feed_time(out[key]) + self._shift
                out[key] = format_feed_time(shifted, _seventh_digit(out[key]))
        if isinstance(out.get("flight_plan"), dict):
            out["flight_plan"] = dict(out["flight_plan"])
        return out

    # ----- construction helpers ---------------------------------------------------------

    def _pilot_from_record(self, rec: Json) -> _Pilot:
        alt, gs = float(rec.get("altitude", 0)), float(rec.get("groundspeed", 0))
        return _Pilot(
            record=rec,
            lat=float(rec.get("latitude", 0.0)),
            lon=float(rec.get("longitude", 0.0)),
            heading=float(rec.get("heading", 0)),
            altitude=alt,
            groundspeed=gs,
            target_altitude=alt,
            target_groundspeed=gs,
            off_channel_hz=self._off_channel(),
            dual_com=self._rng.random() < 0.3,
        )

    def _off_channel(self) -> int:
        if self._rng.random() >= self.rates.off_channel_share:
            return 0
        return self._rng.choice((-1, 1)) * self._rng.randint(1, 15)

    def _station_location(self, callsign: str) -> tuple[float, float]:
        prefix = callsign.split("_")[0].split("-")[0].upper()
        for code in (prefix, "K" + prefix):
            if code in self._airports:
                lat, lon, _ = self._airports[code]
                return _offset(lat, lon, self._rng.uniform(-2, 2), self._rng.uniform(-2, 2))
        if self._spawn:
            anchor = self._rng.choice(self._spawn)
            return _offset(
                anchor.lat, anchor.lon, self._rng.uniform(-20, 20), self._rng.uniform(-20, 20)
            )
        return self._rng.uniform(-60, 70), self._rng.uniform(-180, 180)

    def _station(self, rec: Json) -> _Station:
        lat, lon = self._station_location(str(rec["callsign"]))
        ground_m = self._rng.uniform(0, 300)
        count = 1 if "atis_code" in rec else self._rng.randint(1, 4)
        antennas = []
        for i in range(count):
            spread = 0.0 if i == 0 else 4.0
            a_lat, a_lon = _offset(
                lat, lon, self._rng.uniform(-spread, spread), self._rng.uniform(-spread, spread)
            )
            agl = self._rng.uniform(5, 40)
            antennas.append((a_lat, a_lon, round(ground_m + agl, 6), round(agl, 6)))
        return _Station(record=rec, lat=lat, lon=lon, antennas=antennas)

    def _fresh_cid(self) -> int:
        cid = self._next_cid
        self._next_cid += self._rng.randint(1, 40)
        return cid

    def _name(self) -> str:
        return f"{self._rng.choice(_FIRST)} {self._rng.choice(_LAST)}"

    def _unique(self, taken: Mapping[str, Any], make: Callable[[], str]) -> str:
        for _ in range(100):
            callsign = make()
            if callsign not in taken:
                return callsign
        return f"SIM{self._fresh_cid()}"

    def _new_plan(self, departure: str | None) -> Json:
        plan = dict(self._rng.choice(self._plans))
        if departure:
            plan["departure"] = departure
        plan["revision_id"] = 0
        return plan

    # ----- tick -------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance simulated time by exactly one 15 s feed interval."""
        self.tick_count += 1
        r = self.rates
        for p in self.pilots.values():
            self._move(p)
        self._leave(self.pilots, r.pilot_leave, self._departed)
        self._leave(self.controllers, r.controller_leave, None)
        self._leave(self.atis, r.atis_leave, None)
        for _ in range(self._count(r.pilot_join * self._base[0])):
            self._join_pilot()
        for _ in range(self._count(r.controller_join * self._base[1])):
            self._join_station(atis=False)
        for _ in range(self._count(r.atis_join * self._base[2])):
            self._join_station(atis=True)
        for station in (*self.controllers.values(), *self.atis.values()):
            if self._rng.random() < r.controller_refresh:
                station.record["last_updated"] = self._stamp(14.9)
        for station in self.atis.values():
            if self._rng.random() < r.atis_code_change:
                code = str(station.record.get("atis_code") or "A")[:1]
                station.record["atis_code"] = chr((ord(code) - ord("A") + 1) % 26 + ord("A"))

    def _count(self, expected: float) -> int:
        whole = int(expected)
        return whole + (1 if self._rng.random() < expected - whole else 0)

    def _leave(self, clients: dict[str, Any], rate: float, pool: list[_Pilot] | None) -> None:
        for callsign in [c for c in clients if self._rng.random() < rate]:
            gone = clients.pop(callsign)
            if pool is not None and gone.record.get("flight_plan"):
                pool.append(gone)
                del pool[:-200]

    def _move(self, p: _Pilot) -> None:
        r, rng = self.rates, self._rng
        if p.groundspeed > 0:
            p.lat, p.lon, p.heading = destination(
                p.lat, p.lon, p.heading, p.groundspeed * _TICK_HOURS
            )
        elif p.record.get("flight_plan") and rng.random() < r.departure:
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
        elif airborne and r.altitude_jitter_ft:
            p.altitude = max(
                0.0, p.altitude + rng.uniform(-r.altitude_jitter_ft, r.altitude_jitter_ft)
            )
        if airborne and r.heading_jitter_deg:
            p.heading = (p.heading + rng.uniform(-r.heading_jitter_deg, r.heading_jitter_deg)) % 360
        plan = p.record.get("flight_plan")
        if plan and rng.random() < r.amendment:
            plan = dict(plan)
            plan["revision_id"] = int(plan.get("revision_id") or 0) + 1
            step = rng.choice((-2000, -1000, 1000, 2000))
            plan["altitude"] = str(int(max(1000.0, plan_altitude_ft(plan) + step)))
            p.record["flight_plan"] = plan
        p.record["last_updated"] = self._stamp(14.9)

    def _join_pilot(self) -> None:
        r, rng = self.rates, self._rng
        roll = rng.random()
        # One person flies one aircraft at a time, so never reuse a connected cid or callsign.
        cids = {p.record["cid"] for p in self.pilots.values()}

        def free(rec: Json) -> bool:
            return rec["callsign"] not in self.pilots and rec["cid"] not in cids

        if roll < r.reconnect_share:
            candidates = [p for p in self._departed if free(p.record)]
            if candidates:
                back = rng.choice(candidates)
                self._departed.remove(back)
                back.record["logon_time"] = self._stamp()
                back.record["last_updated"] = back.record["logon_time"]
                self.pilots[back.record["callsign"]] = back
                return
        ready = [i for i, pre in enumerate(self.prefiles) if free(pre)]
        if roll < r.reconnect_share + r.prefile_share and ready:
            pre = self.prefiles.pop(rng.choice(ready))
            self._add_pilot(pre, airborne=False)
            self.prefiles.append(self._new_prefile())
            return
        self._add_pilot(None, airborne=rng.random() < r.airborne_spawn_share)

    def _new_callsign(self) -> str:
        return self._unique(
            {**self.pilots, **{p["callsign"]: p for p in self.prefiles}},
            lambda: f"{self._rng.choice(_AIRLINES)}{self._rng.randint(1, 9999)}",
        )

    def _new_prefile(self) -> Json:
        return {
            "cid": self._fresh_cid(),
            "name": self._name(),
            "callsign": self._new_callsign(),
            "flight_plan": self._new_plan(None),
            "last_updated": self._stamp(),
        }

    def _add_pilot(self, identity: Json | None, *, airborne: bool) -> None:
        rng = self._rng
        if self._spawn:
            anchor = rng.choice((self._air_spawn if airborne else self._gate_spawn) or self._spawn)
            lat, lon = _offset(anchor.lat, anchor.lon, rng.uniform(-1, 1), rng.uniform(-1, 1))
            alt, gs, hdg, dep = (
                anchor.altitude,
                anchor.groundspeed,
                anchor.heading,
                anchor.departure,
            )
        else:
            lat, lon, alt, gs, hdg = rng.uniform(-60, 70), rng.uniform(-180, 180), 0.0, 0.0, 0.0
            dep = None
        if not airborne:
            gs = 0.0
        hdg = (hdg + rng.uniform(-20, 20)) % 360 if airborne else rng.uniform(0, 360)
        if identity is not None:
            plan: Json | None = dict(identity["flight_plan"])
        elif rng.random() < self.rates.no_flight_plan_share:
            plan = None
        else:
            plan = self._new_plan(None if airborne else dep)
        qnh = round(rng.uniform(29.5, 30.5), 2)
        now = self._stamp()
        record: Json = {
            "cid": identity["cid"] if identity else self._fresh_cid(),
            "name": identity["name"] if identity else self._name(),
            "callsign": identity["callsign"] if identity else self._new_callsign(),
            "server": rng.choice(self._servers),
            "pilot_rating": rng.choice(self._pilot_ratings),
            "latitude": lat,
            "longitude": lon,
            "altitude": alt,
            "groundspeed": gs,
            "transponder": "".join(str(rng.randrange(8)) for _ in range(4)),
            "heading": hdg,
            "qnh_i_hg": qnh,
            "qnh_mb": round(qnh * 33.8639),
            "flight_plan": plan,
            "logon_time": now,
            "last_updated": now,
        }
        self.pilots[record["callsign"]] = self._pilot_from_record(record)

    def _join_station(self, *, atis: bool) -> None:
        rng = self._rng
        airports = list(self._airports) or ["ZZZZ"]
        facility = 4 if atis else rng.choice(_NEW_FACILITIES)
        suffix = "ATIS" if atis else _FACILITY_SUFFIX[facility]
        taken = self.atis if atis else self.controllers
        callsign = self._unique(
            taken,
            lambda: "_".join(
                [rng.choice(airports)]
                + ([str(rng.randint(1, 3))] if rng.random() < 0.3 else [])
                + [suffix]
            ),
        )
        khz = rng.randrange(118_000, 136_976, 25)
        now = self._stamp()
        record: Json = {
            "cid": self._fresh_cid(),
            "name": self._name(),
            "callsign": callsign,
            "frequency": OBSERVER_FREQUENCY if facility == 0 else f"{khz // 1000}.{khz % 1000:03d}",
            "facility": facility,
            "rating": 1 if facility == 0 else rng.randint(2, 10),
            "server": rng.choice(self._servers),
            "visual_range": 0 if atis else _VISUAL_RANGE[facility],
        }
        if atis:
            record["atis_code"] = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        record["text_atis"] = None if facility == 0 else [f"{callsign.split('_')[0]} {suffix}"]
        record["last_updated"] = now
        record["logon_time"] = now
        taken[callsign] = self._station(record)

    # ----- documents --------------------------------------------------------------------

    def data_document(self) -> Json:
        pilots = [self._pilot_out(p) for p in self.pilots.values()]
        controllers = [self._record_out(s.record) for s in self.controllers.values()]
        atis = [self._record_out(s.record) for s in self.atis.values()]
        cids = {r["cid"] for r in (*pilots, *controllers, *atis)}
        general: Json = {
            "version": 3,
            "reload": 1,
            "update": f"{self.now:%Y%m%d%H%M%S}",
            "update_timestamp": self.update_timestamp,
            "connected_clients": len(pilots) + len(controllers) + len(atis),
            "unique_users": len(cids),
            **self._extra_general,
        }
        doc: Json = {"general": general, "pilots": pilots, "controllers": controllers, "atis": atis}
        doc["servers"] = self._static.get("servers", [])
        doc["prefiles"] = [self._record_out(p) for p in self.prefiles]
        for key in ("facilities", "ratings", "pilot_ratings"):
            if key in self._static:
                doc[key] = self._static[key]
        return doc

    @staticmethod
    def _record_out(record: Json) -> Json:
        out = dict(record)
        for key in ("flight_plan", "text_atis"):
            value = out.get(key)
            if isinstance(value, dict | list):
                out[key] = value.copy()
        return out

    def _pilot_out(self, p: _Pilot) -> Json:
        out = self._record_out(p.record)
        out["latitude"] = round(p.lat, 5)
        out["longitude"] = round(p.lon, 5)
        out["altitude"] = round(p.altitude)
        out["groundspeed"] = round(p.groundspeed)
        out["heading"] = round(p.heading) % 360
        return out

    def transceivers_document(self) -> list[Json]:
        if self._transceivers_cache and self._transceivers_cache[0] == self.tick_count:
            return [dict(e) for e in self._transceivers_cache[1]]
        stations = [
            (s.lat, s.lon, FACILITY_RANGE_NM[int(s.record["facility"])], s.record["frequency"])
            for s in self.controllers.values()
            if int(s.record.get("facility", 0)) in FACILITY_RANGE_NM
        ]
        # Most local coverage first so a pilot under a tower talks to it, not the centre.
        stations.sort(key=lambda s: s[2])
        doc: list[Json] = []
        for p in self.pilots.values():
            hz = UNICOM_HZ
            for lat, lon, rng_nm, freq in stations:
                if (
                    abs(lat - p.lat) * 60 <= rng_nm
                    and distance_nm(p.lat, p.lon, lat, lon) <= rng_nm
                ):
                    hz = frequency_hz(str(freq))
                    break
            msl = round(p.altitude * 0.3048, 6)
            agl = msl if p.groundspeed >= AIRBORNE_GS_KT else 0.0
            radios = [(hz + p.off_channel_hz)] + (
                [GUARD_HZ if hz != GUARD_HZ else UNICOM_HZ] if p.dual_com else []
            )
            doc.append(
                {
                    "callsign": p.record["callsign"],
                    "transceivers": [
                        {
                            "id": i,
                            "frequency": f,
                            "latDeg": p.lat,
                            "lonDeg": p.lon,
                            "heightMslM": msl,
                            "heightAglM": agl,
                        }
                        for i, f in enumerate(radios)
                    ],
                }
            )
        for s in (*self.controllers.values(), *self.atis.values()):
            # Observers hold no voice transceivers, so their list is empty like on the real feed.
            observer = int(s.record.get("facility", 0)) == 0
            hz = frequency_hz(str(s.record["frequency"]))
            doc.append(
                {
                    "callsign": s.record["callsign"],
                    "transceivers": []
                    if observer
                    else [
                        {
                            "id": i,
                            "frequency": hz,
                            "latDeg": a[0],
                            "lonDeg": a[1],
                            "heightMslM": a[2],
                            "heightAglM": a[3],
                        }
                        for i, a in enumerate(s.antennas)
                    ],
                }
            )
        self._transceivers_cache = (self.tick_count, doc)
        return [dict(e) for e in doc]
