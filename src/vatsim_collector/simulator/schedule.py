"""The realistic-flights population: who departs from where, and who leaves after parking.

Controllers and ATIS churn exactly as in ``traffic``; pilots are replaced by flights
between real airports (``aerodromes``) flown by ``realistic.FlightModel``. Every random
draw still goes through the one ``random.Random`` of ``Traffic``, in a fixed order, so a
seed replays the same history.
"""

from __future__ import annotations

import random
from datetime import datetime

from vatsim_collector.simulator.aerodromes import RUNWAY_NM, Aerodrome, load_aerodromes
from vatsim_collector.simulator.flights import Json, Pilot
from vatsim_collector.simulator.geo import TICK, destination, distance_nm, initial_bearing
from vatsim_collector.simulator.realistic import (
    JET,
    LIGHT,
    TAXI_KT,
    Flight,
    FlightModel,
    Performance,
    Phase,
    TruthMovement,
    approach,
    circuit,
)
from vatsim_collector.simulator.traffic import SimRates, Traffic

_ROUTE_NM = (120.0, 900.0)
_DIVERSION_NM = (25.0, 120.0)
# Deficit below the target population made up per tick, so joins track departures.
_REFILL_PER_TICK = 0.02


class RealisticTraffic(Traffic):
    def __init__(
        self,
        rng: random.Random,
        rates: SimRates,
        now: datetime,
        *,
        population: int,
        prefiles: list[Json],
        controllers: list[Json],
        atis: list[Json],
        servers: list[str],
        pilot_ratings: list[int],
        seed_airports: list[str],
    ) -> None:
        super().__init__(
            rng,
            rates,
            now,
            pilots=[],
            prefiles=prefiles,
            controllers=controllers,
            atis=atis,
            servers=servers,
            pilot_ratings=pilot_ratings,
        )
        self._index = load_aerodromes()
        known = sorted({code for code in seed_airports if code in self._index.by_icao})
        # Where the seed snapshot's traffic really flew from and to, if enough of it is usable.
        self._pool = known if len(known) >= 20 else list(self._index.codes)
        for code in self._pool:
            a = self._index.by_icao[code]
            self._airports.setdefault(code, (a.lat, a.lon, a.elevation_ft))
        self._routes: dict[str, list[str]] = {}
        self._alternates: dict[str, list[str]] = {}
        self.population = population
        self.model = FlightModel(rng)
        self.flights: dict[str, Flight] = {}
        for _ in range(population):
            self._start_flight(initial=True)

    @property
    def truth(self) -> list[TruthMovement]:
        return self.model.truth

    # ----- Traffic hooks ------------------------------------------------------------------

    def _move_pilots(self) -> None:
        start = self._now - TICK
        for callsign in list(self.flights):
            f = self.flights[callsign]
            self.model.advance(f, start, TICK.total_seconds())
            if f.phase is Phase.GONE:
                del self.flights[callsign]
                del self.pilots[callsign]
            else:
                f.pilot.record["last_updated"] = self._stamp(14.9)

    def _join_pilots(self) -> None:
        deficit = max(0, self.population - len(self.flights))
        for _ in range(self._count(deficit * _REFILL_PER_TICK)):
            self._start_flight(initial=False)

    # ----- spawning -----------------------------------------------------------------------

    def _within(
        self, cache: dict[str, list[str]], a: Aerodrome, span: tuple[float, float]
    ) -> list[str]:
        if a.icao not in cache:
            codes = self._pool if cache is self._routes else self._index.codes
            cache[a.icao] = [
                c
                for c in codes
                if span[0]
                <= distance_nm(a.lat, a.lon, self._index.by_icao[c].lat, self._index.by_icao[c].lon)
                <= span[1]
            ]
        return cache[a.icao]

    def _start_flight(self, *, initial: bool) -> None:
        rng, r = self._rng, self.rates
        origin = self._index.by_icao[rng.choice(self._pool)]
        routes = self._within(self._routes, origin, _ROUTE_NM)
        light = not routes or rng.random() < r.circuit_share
        perf: Performance = LIGHT if light else JET
        dest = origin if light else self._index.by_icao[rng.choice(routes)]
        divert_to: Aerodrome | None = None
        if not light and rng.random() < r.diversion_share:
            alternates = [c for c in self._within(self._alternates, dest, _DIVERSION_NM)]
            if alternates:
                divert_to = self._index.by_icao[rng.choice(alternates)]
        go_around_ft = rng.uniform(150, 600) if rng.random() < r.go_around_share else None
        route_nm = distance_nm(origin.lat, origin.lon, dest.lat, dest.lon)
        cruise_ft = (
            origin.elevation_ft + 1000
            if light
            # Longer routes fly higher, and always well above both ends (La Paz is 13,000 ft).
            else float(
                max(
                    min(37_000, max(9_000, round(route_nm * 60, -3))),
                    round(max(origin.elevation_ft, dest.elevation_ft) + 6_000, -3),
                )
            )
        )
        side = rng.choice((-1.0, 1.0))
        gate = origin.along(rng.uniform(-0.5, 0.5), side * rng.uniform(0.3, 0.6))
        stand = (rng.uniform(-0.5, 0.5), side * rng.uniform(0.3, 0.6))
        pilot = self._new_pilot(origin, dest, divert_to, perf, cruise_ft)
        f = Flight(
            pilot=pilot,
            perf=perf,
            origin=origin,
            destination=dest,
            cruise_ft=cruise_ft,
            phase=Phase.PARKED,
            wait_s=rng.uniform(0, 1800) if initial else rng.uniform(60, 900),
            circuits_left=rng.randint(1, 4) if light else 0,
            divert_to=divert_to,
            stand=stand,
            taxi=[origin.along(-RUNWAY_NM / 2, side * 0.25), origin.threshold],
        )
        f.route = (
            circuit(origin, perf) if light else approach(dest, perf, go_around_ft=go_around_ft)
        )
        # Some of the starting population is already en route, far from its descent.
        if initial and not light and route_nm > 320 and rng.random() < r.airborne_start_share:
            flown = rng.uniform(0.1, (route_nm - 160) / route_nm) * route_nm
            course = initial_bearing(origin.lat, origin.lon, dest.lat, dest.lon)
            pilot.lat, pilot.lon, pilot.heading = destination(origin.lat, origin.lon, course, flown)
            pilot.altitude, pilot.groundspeed = cruise_ft, perf.cruise_kt
            f.phase, f.taxi, f.wait_s = Phase.AIRBORNE, [], 0.0
        else:
            pilot.lat, pilot.lon = gate
        self.flights[pilot.record["callsign"]] = f
        self.pilots[pilot.record["callsign"]] = pilot

    def _new_pilot(
        self,
        origin: Aerodrome,
        dest: Aerodrome,
        divert_to: Aerodrome | None,
        perf: Performance,
        cruise_ft: float,
    ) -> Pilot:
        rng = self._rng
        plan = self._new_plan(origin.icao)
        plan["arrival"] = dest.icao
        plan["alternate"] = divert_to.icao if divert_to else ""
        plan["flight_rules"] = "V" if perf is LIGHT else "I"
        plan["altitude"] = str(int(cruise_ft - origin.elevation_ft if perf is LIGHT else cruise_ft))
        plan["cruise_tas"] = str(int(perf.cruise_kt))
        if perf is LIGHT:
            plan.update(aircraft="C172/G", aircraft_faa="C172/G", aircraft_short="C172")
            plan["route"] = "CIRCUITS"
        qnh = round(rng.uniform(29.5, 30.5), 2)
        now = self._stamp()
        record: Json = {
            "cid": self._fresh_cid(),
            "name": self._name(),
            "callsign": self._new_callsign(),
            "server": rng.choice(self._servers),
            "pilot_rating": rng.choice(self._pilot_ratings),
            "latitude": origin.lat,
            "longitude": origin.lon,
            "altitude": origin.elevation_ft,
            "groundspeed": 0.0,
            "transponder": "".join(str(rng.randrange(8)) for _ in range(4)),
            "heading": origin.runway_heading,
            "qnh_i_hg": qnh,
            "qnh_mb": round(qnh * 33.8639),
            "flight_plan": plan,
            "logon_time": now,
            "last_updated": now,
        }
        return Pilot(
            record=record,
            lat=origin.lat,
            lon=origin.lon,
            heading=origin.runway_heading,
            altitude=origin.elevation_ft,
            groundspeed=0.0,
            target_altitude=origin.elevation_ft,
            target_groundspeed=0.0,
            off_channel_hz=0,
            dual_com=rng.random() < 0.3,
        )


__all__ = ["TAXI_KT", "RealisticTraffic"]
