"""The simulator's realistic flights and their ground truth (issue 13, deliverable 8).

Physical checks read the feed documents the simulator serves and compare them with
``airportsdata`` directly, never with the simulator's own geometry helpers' view of where
an airport is, so a wrong runway or elevation in the model shows up here.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import airportsdata
import httpx2
import orjson
import pytest

from test_cli import background
from test_service_e2e import free_port, wait_for
from vatsim_collector.simulator.geo import distance_nm, parse_feed_time
from vatsim_collector.simulator.realistic import JET, LIGHT, TAXI_KT
from vatsim_collector.simulator.thread import running_simulator
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot

START = datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC)
_SNAPSHOT = load_seed_snapshot()
_TICK_S = 15.0
_DAY_TICKS = 24 * 3600 // 15
_AIRPORTS = airportsdata.load("ICAO")


def _network(seed: int = 5, population: int = 120) -> SimulatedNetwork:
    return SimulatedNetwork(
        _SNAPSHOT, seed=seed, start=START, flights="realistic", population=population
    )


@dataclass(frozen=True, slots=True)
class Sample:
    time: datetime
    lat: float
    lon: float
    alt: int
    gs: int
    heading: int
    plan: tuple[str, str, str]  # departure, arrival, alternate


Session = tuple[str, int, str]  # callsign, cid, logon_time


@dataclass
class Day:
    samples: dict[Session, list[Sample]]
    truth: list[dict[str, Any]]
    last_time: datetime


@cache
def _simulated_day() -> Day:
    network = _network()
    samples: dict[Session, list[Sample]] = defaultdict(list)
    for _ in range(_DAY_TICKS):
        network.tick()
        doc = network.data_document()
        now = parse_feed_time(doc["general"]["update_timestamp"])
        for p in doc["pilots"]:
            plan = p["flight_plan"] or {}
            samples[(p["callsign"], p["cid"], p["logon_time"])].append(
                Sample(
                    now,
                    p["latitude"],
                    p["longitude"],
                    p["altitude"],
                    p["groundspeed"],
                    p["heading"],
                    (plan.get("departure", ""), plan.get("arrival", ""), plan.get("alternate", "")),
                )
            )
    return Day(dict(samples), [m.as_json() for m in network.truth()], network.now)


def _truth_by_session(day: Day) -> dict[Session, list[dict[str, Any]]]:
    out: dict[Session, list[dict[str, Any]]] = defaultdict(list)
    for m in day.truth:
        out[(m["callsign"], m["cid"], m["logon_time"])].append(m)
    return out


def _bracket(track: list[Sample], at: datetime) -> tuple[int, int]:
    """Indices of the samples just before and just after ``at``."""
    after = next(i for i, s in enumerate(track) if s.time >= at)
    return after - 1, after


def _elevation(icao: str) -> float:
    return float(_AIRPORTS[icao]["elevation"])


@cache
def _by_latitude() -> tuple[list[float], list[str]]:
    rows = sorted((float(a["lat"]), code) for code, a in _AIRPORTS.items())
    return [lat for lat, _ in rows], [code for _, code in rows]


def _nearest_airport(s: Sample) -> str:
    """The nearest of every airport in ``airportsdata`` (within 0.5° of latitude)."""
    lats, codes = _by_latitude()
    near = codes[bisect_left(lats, s.lat - 0.5) : bisect_right(lats, s.lat + 0.5)]
    return min(near, key=lambda c: _from_airport(s, c))


def _from_airport(s: Sample, icao: str) -> float:
    a = _AIRPORTS[icao]
    return distance_nm(s.lat, s.lon, a["lat"], a["lon"])


# ----- determinism ---------------------------------------------------------------------


def _history(network: SimulatedNetwork, ticks: int) -> Iterator[bytes]:
    for _ in range(ticks):
        network.tick()
        yield orjson.dumps(network.data_document())
        yield orjson.dumps(network.transceivers_document())
    yield orjson.dumps([m.as_json() for m in network.truth()])


def test_same_seed_replays_identically_and_other_seed_differs() -> None:
    first = list(_history(_network(seed=11, population=60), 400))
    again = list(_history(_network(seed=11, population=60), 400))
    other = list(_history(_network(seed=12, population=60), 400))
    assert first == again
    assert first != other
    assert orjson.loads(first[-1]), "no movement in 100 simulated minutes"


def test_default_model_is_unchanged_and_has_no_truth() -> None:
    network = SimulatedNetwork(_SNAPSHOT, seed=3, start=START)
    assert network.flights == "random"
    assert len(network.pilots) == len(_SNAPSHOT["pilots"])
    for _ in range(20):
        network.tick()
    assert network.truth() == []
    with pytest.raises(ValueError, match="flights must be"):
        SimulatedNetwork(_SNAPSHOT, flights="chaotic")  # type: ignore[arg-type]


def test_aircraft_start_parked_at_real_airports_at_their_elevation() -> None:
    doc = _network(population=80).data_document()
    parked = [p for p in doc["pilots"] if p["groundspeed"] == 0]
    assert len(parked) >= 20
    for p in parked:
        dep = p["flight_plan"]["departure"]
        a = _AIRPORTS[dep]
        assert distance_nm(p["latitude"], p["longitude"], a["lat"], a["lon"]) < 1.5
        assert abs(p["altitude"] - a["elevation"]) <= 1


# ----- a simulated day -----------------------------------------------------------------


def test_a_day_has_enough_of_every_movement_kind() -> None:
    day = _simulated_day()
    counts = Counter(m["kind"] for m in day.truth)
    diversions = sum(m["diversion"] for m in day.truth)
    print(f"movements in a simulated day (120 aircraft): {dict(counts)}, diversions {diversions}")
    for kind in ("off_block", "takeoff", "landing", "on_block"):
        assert counts[kind] >= 500, (kind, counts)
    assert counts["touch_and_go"] >= 200, counts
    assert counts["go_around"] >= 30, counts
    assert diversions >= 20
    times = [parse_feed_time(m["time"]) for m in day.truth]
    assert times == sorted(times)
    assert all(START <= t <= day.last_time for t in times)


def test_no_teleports_positions_agree_with_ground_speed() -> None:
    day = _simulated_day()
    checked = 0
    for track in day.samples.values():
        for a, b in itertools.pairwise(track):
            assert b.time - a.time == timedelta(seconds=_TICK_S)
            moved = distance_nm(a.lat, a.lon, b.lat, b.lon)
            fastest = max(a.gs, b.gs) + 1
            assert moved <= fastest * _TICK_S / 3600 * 1.05 + 0.01, (a, b)
            if abs(a.heading - b.heading) <= 1 and min(a.gs, b.gs) > 100:
                # Flying straight: the distance covered matches the speed flown (slower
                # aircraft may dip below both samples' speeds in a touch-and-go).
                assert moved >= (min(a.gs, b.gs) - 1) * _TICK_S / 3600 * 0.95, (a, b)
            # 60 ft/s is the steepest descent the model flies; climbs are gentler.
            assert abs(b.alt - a.alt) <= 60 * _TICK_S + 2, (a, b)
            checked += 1
    assert checked > 100_000


def test_slow_aircraft_are_on_the_ground_at_an_airport_of_their_plan() -> None:
    day = _simulated_day()
    slow = 0
    for track in day.samples.values():
        for s in track:
            if s.gs > TAXI_KT:
                continue
            slow += 1
            near = [c for c in s.plan if c in _AIRPORTS and _from_airport(s, c) < 2.0]
            assert near, s
            assert any(abs(s.alt - _elevation(c)) <= 1 for c in near), s
    assert slow > 50_000


def test_takeoff_and_landing_times_fall_between_the_bracketing_snapshots() -> None:
    day = _simulated_day()
    checked = Counter[str]()
    for session, movements in _truth_by_session(day).items():
        track = day.samples[session]
        for m in movements:
            at = parse_feed_time(m["time"])
            elev = _elevation(m["airport"])
            if at <= track[0].time or at > track[-1].time - timedelta(seconds=2 * _TICK_S):
                continue
            before, after = _bracket(track, at)
            b, a, a2 = track[before], track[after], track[after + 1]
            assert b.time < at <= a.time
            if m["kind"] == "takeoff":
                # Rolling on the runway before, flying at rotation speed or faster after.
                assert abs(b.alt - elev) <= 1
                assert b.gs <= max(JET.rotate_kt, LIGHT.rotate_kt)
                assert a.alt >= elev - 1
                assert a.gs >= LIGHT.rotate_kt - 1
                assert a2.alt > elev + 100, (m, a, a2)
            elif m["kind"] in ("landing", "touch_and_go"):
                assert b.alt >= elev - 1, (m, b)
                assert track[before - 1].alt > elev + 30, (m, b)
                assert abs(a.alt - elev) <= 1, (m, a)
                assert _from_airport(a, m["airport"]) < 2.0
            elif m["kind"] == "go_around":
                # The lowest point: lower than a minute before and a minute after.
                assert b.alt > elev + 50
                assert a.alt > elev + 50
                assert track[before - 4].alt > b.alt
                assert track[after + 4].alt > a.alt
            checked[m["kind"]] += 1
    assert checked["takeoff"] >= 400, checked
    assert checked["landing"] >= 400, checked
    assert checked["go_around"] >= 20, checked
    assert checked["touch_and_go"] >= 100, checked


def test_landings_end_at_the_truth_airport_and_diversions_elsewhere() -> None:
    day = _simulated_day()
    for session, movements in _truth_by_session(day).items():
        track = day.samples[session]
        landings = [m for m in movements if m["kind"] == "landing"]
        for m in landings:
            filed = track[0].plan[1]
            assert (m["airport"] != filed) is m["diversion"], m
            at = parse_feed_time(m["time"])
            after = [s for s in track if s.time >= at]
            if after:
                assert _from_airport(after[0], m["airport"]) < 2.0, m
                # Unambiguous for detection: no other airport of the data set is nearer.
                assert _nearest_airport(after[0]) == m["airport"], m
                # Taxied in and parked (or still taxiing) at the same airport.
                assert _from_airport(after[-1], m["airport"]) < 2.0, m
        kinds = [m["kind"] for m in movements]
        if "on_block" in kinds and session[0] not in _still_online(day):
            # Disconnected only after parking: its last position is at that airport.
            on_block = next(m for m in movements if m["kind"] == "on_block")
            assert _from_airport(track[-1], on_block["airport"]) < 2.0


def _still_online(day: Day) -> set[str]:
    return {s[0] for s, track in day.samples.items() if track[-1].time == day.last_time}


def test_movements_of_a_flight_come_in_order() -> None:
    for movements in _truth_by_session(_simulated_day()).values():
        kinds = [m["kind"] for m in movements]
        if "takeoff" in kinds and "off_block" in kinds:
            assert kinds.index("off_block") < kinds.index("takeoff")
        if "on_block" in kinds:
            assert kinds[-1] == "on_block"
            assert "landing" in kinds
            assert kinds.index("landing") < kinds.index("on_block")
        assert kinds.count("landing") <= 1


# ----- over real HTTP ------------------------------------------------------------------


def test_truth_endpoint_over_http_matches_the_network() -> None:
    network = _network(seed=2, population=40)
    with running_simulator(network=network) as base, httpx2.Client(base_url=base) as client:
        for _ in range(120):
            assert client.post("/_sim/tick").status_code == 200
        body = client.get("/_sim/truth").json()
    assert body["flights"] == "realistic"
    assert body["tick"] == 120
    assert body["movements"] == [m.as_json() for m in network.truth()]
    assert {m["kind"] for m in body["movements"]} >= {"off_block", "takeoff"}


def test_simulate_realistic_flights_flag(tmp_path: Path) -> None:
    port = free_port()
    args = ("simulate", "--port", str(port), "--seed", "4", "--realistic-flights")
    with background(*args, cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        truth = wait_for(lambda: httpx2.get(f"{base}/_sim/truth").json(), what="simulator")
        assert truth["flights"] == "realistic"
        data = httpx2.get(f"{base}/v3/vatsim-data.json").json()
        assert all(p["flight_plan"]["departure"] in _AIRPORTS for p in data["pilots"])
