"""Who is connected to the simulated network, and how that changes between ticks.

Pilots, controllers and ATIS stations join, leave, reconnect and amend plans here. Every
random draw goes through the one ``random.Random`` handed in, in a fixed order, because
the replay guarantee of the simulator depends on that order never changing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vatsim_collector.simulator.flights import AIRBORNE_GS_KT, Json, Pilot, fly, plan_altitude_ft
from vatsim_collector.simulator.geo import OBSERVER_FREQUENCY, format_feed_time, offset_km

_FACILITY_SUFFIX = {0: "OBS", 1: "FSS", 2: "DEL", 3: "GND", 4: "TWR", 5: "APP", 6: "CTR"}
_VISUAL_RANGE = {0: 150, 1: 1500, 2: 20, 3: 20, 4: 50, 5: 150, 6: 600}
# Weighted like a busy real evening: towers and approaches dominate.
_NEW_FACILITIES = (0, 0, 0, 1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6)
_FIRST = ("Alex", "Sam", "Chris", "Jo", "Kim", "Lee", "Max", "Noa", "Ola", "Pat", "Ria", "Tom")
_LAST = ("Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Ito", "Khan", "Novak", "Silva")
_AIRLINES = ("AAL", "BAW", "DLH", "AFR", "KLM", "UAL", "DAL", "QFA", "SIA", "EZY", "RYR", "THY")


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
    # Realistic flights only (``SimulatedNetwork(flights="realistic")``): shares of new flights.
    circuit_share: float = 0.15
    go_around_share: float = 0.08
    diversion_share: float = 0.06
    airborne_start_share: float = 0.4


@dataclass(frozen=True, slots=True)
class _Spawn:
    lat: float
    lon: float
    altitude: float
    groundspeed: float
    heading: float
    departure: str | None


@dataclass(slots=True)
class Station:
    record: Json
    lat: float
    lon: float
    antennas: list[tuple[float, float, float, float]]  # lat, lon, msl m, agl m


class Traffic:
    """The connected population, seeded from (time-shifted) snapshot records."""

    def __init__(
        self,
        rng: random.Random,
        rates: SimRates,
        now: datetime,
        *,
        pilots: list[Json],
        prefiles: list[Json],
        controllers: list[Json],
        atis: list[Json],
        servers: list[str],
        pilot_ratings: list[int],
    ) -> None:
        self._rng = rng
        self.rates = rates
        self._now = now
        self._servers = servers
        self._pilot_ratings = pilot_ratings
        self.pilots: dict[str, Pilot] = {p["callsign"]: self._pilot_from_record(p) for p in pilots}
        self.prefiles = prefiles
        self._plans: list[Json] = [
            dict(r["flight_plan"]) for r in (*pilots, *prefiles) if r.get("flight_plan")
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
        self.controllers: dict[str, Station] = {
            c["callsign"]: self._station(c) for c in controllers
        }
        self.atis: dict[str, Station] = {a["callsign"]: self._station(a) for a in atis}
        self._base = (max(len(self.pilots), 1), max(len(self.controllers), 1), len(self.atis))
        all_cids = [int(r["cid"]) for r in (*pilots, *prefiles)]
        all_cids += [
            int(s.record["cid"]) for s in (*self.controllers.values(), *self.atis.values())
        ]
        self._next_cid = max(all_cids, default=1_400_000) + 1
        self._departed: list[Pilot] = []

    def _stamp(self, max_age_s: float = 0.0) -> str:
        if not max_age_s:
            # A random 7th digit here could put a client after the document's own timestamp.
            return format_feed_time(self._now)
        age = timedelta(seconds=self._rng.uniform(0.0, max_age_s))
        return format_feed_time(self._now - age, self._rng.randrange(10))

    # ----- construction helpers ---------------------------------------------------------

    def _pilot_from_record(self, rec: Json) -> Pilot:
        alt, gs = float(rec.get("altitude", 0)), float(rec.get("groundspeed", 0))
        return Pilot(
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
                return offset_km(lat, lon, self._rng.uniform(-2, 2), self._rng.uniform(-2, 2))
        if self._spawn:
            anchor = self._rng.choice(self._spawn)
            return offset_km(
                anchor.lat, anchor.lon, self._rng.uniform(-20, 20), self._rng.uniform(-20, 20)
            )
        return self._rng.uniform(-60, 70), self._rng.uniform(-180, 180)

    def _station(self, rec: Json) -> Station:
        lat, lon = self._station_location(str(rec["callsign"]))
        ground_m = self._rng.uniform(0, 300)
        count = 1 if "atis_code" in rec else self._rng.randint(1, 4)
        antennas = []
        for i in range(count):
            spread = 0.0 if i == 0 else 4.0
            a_lat, a_lon = offset_km(
                lat, lon, self._rng.uniform(-spread, spread), self._rng.uniform(-spread, spread)
            )
            agl = self._rng.uniform(5, 40)
            antennas.append((a_lat, a_lon, round(ground_m + agl, 6), round(agl, 6)))
        return Station(record=rec, lat=lat, lon=lon, antennas=antennas)

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

    def step(self, now: datetime) -> None:
        """Apply one tick of movement and churn; ``now`` is the tick's feed time."""
        self._now = now
        r = self.rates
        self._move_pilots()
        self._leave(self.controllers, r.controller_leave, None)
        self._leave(self.atis, r.atis_leave, None)
        self._join_pilots()
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

    def _move_pilots(self) -> None:
        """Fly every pilot one tick, then let some disconnect (the draw order is fixed)."""
        r = self.rates
        for p in self.pilots.values():
            fly(
                p,
                self._rng,
                departure_chance=r.departure,
                heading_jitter_deg=r.heading_jitter_deg,
                altitude_jitter_ft=r.altitude_jitter_ft,
            )
            self._maybe_amend(p)
            p.record["last_updated"] = self._stamp(14.9)
        self._leave(self.pilots, r.pilot_leave, self._departed)

    def _join_pilots(self) -> None:
        for _ in range(self._count(self.rates.pilot_join * self._base[0])):
            self._join_pilot()

    def _count(self, expected: float) -> int:
        whole = int(expected)
        return whole + (1 if self._rng.random() < expected - whole else 0)

    def _leave(self, clients: dict[str, Any], rate: float, pool: list[Pilot] | None) -> None:
        for callsign in [c for c in clients if self._rng.random() < rate]:
            gone = clients.pop(callsign)
            if pool is not None and gone.record.get("flight_plan"):
                pool.append(gone)
                del pool[:-200]

    def _maybe_amend(self, p: Pilot) -> None:
        plan = p.record.get("flight_plan")
        if plan and self._rng.random() < self.rates.amendment:
            plan = dict(plan)
            plan["revision_id"] = int(plan.get("revision_id") or 0) + 1
            step = self._rng.choice((-2000, -1000, 1000, 2000))
            plan["altitude"] = str(int(max(1000.0, plan_altitude_ft(plan) + step)))
            p.record["flight_plan"] = plan

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
            lat, lon = offset_km(anchor.lat, anchor.lon, rng.uniform(-1, 1), rng.uniform(-1, 1))
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
