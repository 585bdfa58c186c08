"""Deterministic model of the VATSIM network that evolves in 15 s ticks.

It is seeded from a real v3 snapshot so field shapes and the population mix match what
the collector meets in production. All randomness flows through one ``random.Random``
so that a (snapshot, seed, start) triple always replays exactly the same history.
This module owns the clock and renders the feed documents; who is online and how they
move lives in ``sim_traffic`` and ``sim_flight``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from vatsim_collector.simulator.flights import AIRBORNE_GS_KT, Json, Pilot
from vatsim_collector.simulator.geo import (
    FACILITY_RANGE_NM,
    GUARD_HZ,
    TICK,
    UNICOM_HZ,
    distance_nm,
    format_feed_time,
    frequency_hz,
    parse_feed_time,
    sub_microsecond_digit,
    wrap_longitude,
)
from vatsim_collector.simulator.realistic import TruthMovement
from vatsim_collector.simulator.schedule import RealisticTraffic
from vatsim_collector.simulator.traffic import SimRates, Station, Traffic

# The time helpers are re-exported because benchmarks import them from here.
__all__ = [
    "DEFAULT_SEED_PATH",
    "FlightMode",
    "SimRates",
    "SimulatedNetwork",
    "format_feed_time",
    "load_seed_snapshot",
    "parse_feed_time",
    "wrap_longitude",
]

DEFAULT_SEED_PATH = Path(__file__).parent / "seed" / "seed-snapshot.json"

# "random": the seed's pilots drift off in random directions and never land (the default,
# which existing replays depend on); "realistic": flights between real airports with
# takeoffs, landings and the rest, and a ground truth of every movement (``truth``).
FlightMode = Literal["random", "realistic"]


def load_seed_snapshot(path: Path | None = None) -> Json:
    data = orjson.loads((path or DEFAULT_SEED_PATH).read_bytes())
    if not isinstance(data, dict) or "general" not in data:
        raise ValueError("seed snapshot is not a v3 vatsim-data document")
    return data


class SimulatedNetwork:
    def __init__(
        self,
        snapshot: Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        start: datetime | None = None,
        rates: SimRates | None = None,
        flights: FlightMode = "random",
        population: int | None = None,
    ) -> None:
        """``population`` (realistic flights only) is the number of aircraft the network
        keeps connected; by default the seed snapshot's pilot count."""
        snap: Mapping[str, Any] = snapshot if snapshot is not None else load_seed_snapshot()
        snap_time = parse_feed_time(str(snap["general"]["update_timestamp"]))
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = (start or snap_time).astimezone(UTC)
        self.seed = seed
        self.tick_count = 0
        self._shift = self.start - snap_time
        self._static = {
            k: snap[k] for k in ("servers", "facilities", "ratings", "pilot_ratings") if k in snap
        }
        derived = {"version", "reload", "update", "update_timestamp"}
        derived |= {"connected_clients", "unique_users"}
        self._extra_general = {k: v for k, v in snap["general"].items() if k not in derived}
        if flights not in ("random", "realistic"):
            raise ValueError(f"flights must be 'random' or 'realistic', not {flights!r}")
        self.flights: FlightMode = flights
        common: dict[str, Any] = {
            "prefiles": [self._shifted(p) for p in snap.get("prefiles", [])],
            "controllers": [self._shifted(c) for c in snap.get("controllers", [])],
            "atis": [self._shifted(a) for a in snap.get("atis", [])],
            "servers": [str(s["ident"]) for s in snap.get("servers", [])] or ["SIM-1"],
            "pilot_ratings": [int(r["id"]) for r in snap.get("pilot_ratings", [])] or [0],
        }
        self._traffic: Traffic
        if flights == "realistic":
            plans = [r["flight_plan"] for r in snap.get("pilots", []) if r.get("flight_plan")]
            size = len(snap.get("pilots", [])) if population is None else population
            if size < 0:
                raise ValueError("population must be >= 0")
            self._traffic = RealisticTraffic(
                random.Random(seed),
                rates or SimRates(),
                self.start,
                population=size,
                seed_airports=[str(p.get(k)) for p in plans for k in ("departure", "arrival")],
                **common,
            )
        else:
            self._traffic = Traffic(
                random.Random(seed),
                rates or SimRates(),
                self.start,
                pilots=[self._shifted(p) for p in snap.get("pilots", [])],
                **common,
            )
        self._transceivers_cache: tuple[int, list[Json]] | None = None

    @property
    def rates(self) -> SimRates:
        return self._traffic.rates

    @rates.setter
    def rates(self, value: SimRates) -> None:
        self._traffic.rates = value

    @property
    def pilots(self) -> dict[str, Pilot]:
        return self._traffic.pilots

    @property
    def controllers(self) -> dict[str, Station]:
        return self._traffic.controllers

    @property
    def atis(self) -> dict[str, Station]:
        return self._traffic.atis

    @property
    def prefiles(self) -> list[Json]:
        return self._traffic.prefiles

    def truth(self) -> list[TruthMovement]:
        """Every true movement so far, in the order it happened (realistic flights only;
        the random model has none)."""
        if isinstance(self._traffic, RealisticTraffic):
            return sorted(self._traffic.truth, key=lambda m: m.time)
        return []

    # ----- time -------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.start + TICK * self.tick_count

    @property
    def update_timestamp(self) -> str:
        return format_feed_time(self.now)

    def _shifted(self, record: Mapping[str, Any]) -> Json:
        out = dict(record)
        for key in ("logon_time", "last_updated"):
            if isinstance(out.get(key), str):
                shifted = parse_feed_time(out[key]) + self._shift
                out[key] = format_feed_time(shifted, sub_microsecond_digit(out[key]))
        if isinstance(out.get("flight_plan"), dict):
            out["flight_plan"] = dict(out["flight_plan"])
        return out

    def tick(self) -> None:
        """Advance simulated time by exactly one 15 s feed interval."""
        self.tick_count += 1
        self._traffic.step(self.now)

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

    def _pilot_out(self, p: Pilot) -> Json:
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
