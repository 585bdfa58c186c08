"""Issue 13, acceptance: movements detected against the simulator's ground truth over a
simulated day.

The simulator flies realistic flights between real airports and records every true movement at
its exact simulated time; the detector sees only what the feed shows, every 15 s. Detection is
scored per session and kind: a detected movement matches a true one of the same kind at the
same airport within one poll interval. A true movement before a session's first sample (an
aircraft already taxiing when it appeared) or in the last two minutes of the day (still being
confirmed) cannot be seen and is not counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.movements.detector import MovementDetector
from vatsim_collector.movements.model import Movement, PilotSample
from vatsim_collector.movements.rules import MovementRules
from vatsim_collector.simulator.geo import parse_feed_time
from vatsim_collector.simulator.realistic import TruthMovement
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot

START = datetime(2024, 5, 1, tzinfo=UTC)
POLL = timedelta(seconds=15)
DAY_TICKS = 24 * 3600 // 15

Key = tuple[str, int, str]  # callsign, cid, logon_time


@dataclass
class Day:
    detected: list[Movement]
    truth: list[TruthMovement]
    first_seen: dict[Key, datetime]
    end: datetime


@cache
def simulated_day(seed: int = 5) -> Day:
    network = SimulatedNetwork(
        load_seed_snapshot(), seed=seed, start=START, flights="realistic", population=120
    )
    detector = MovementDetector(AirportIndex(AirportReference.packaged()), MovementRules())
    detected: list[Movement] = []
    first_seen: dict[Key, datetime] = {}
    present: set[Key] = set()
    now = START
    for _ in range(DAY_TICKS):
        network.tick()
        doc = network.data_document()
        now = parse_feed_time(doc["general"]["update_timestamp"])
        samples = []
        for p in doc["pilots"]:
            key = (p["callsign"], p["cid"], p["logon_time"])
            first_seen.setdefault(key, now)
            plan = p["flight_plan"] or {}
            samples.append(
                PilotSample(
                    key,
                    key,
                    p["latitude"],
                    p["longitude"],
                    p["altitude"],
                    p["groundspeed"],
                    p["heading"],
                    plan.get("arrival") or None,
                )
            )
        keys = {s.key for s in samples}
        step = detector.step(now, samples, [k for k in present if k not in keys])
        detected.extend(step.movements)
        present = keys  # type: ignore[assignment]
    return Day(detected, network.truth(), first_seen, now)


@dataclass
class Score:
    matched: list[tuple[TruthMovement, Movement]]
    missed: list[TruthMovement]
    extra: list[Movement]

    @property
    def precision(self) -> float:
        return len(self.matched) / max(1, len(self.matched) + len(self.extra))

    @property
    def recall(self) -> float:
        return len(self.matched) / max(1, len(self.matched) + len(self.missed))


def score(day: Day, kind: str) -> Score:
    truth: dict[Key, list[TruthMovement]] = defaultdict(list)
    for t in day.truth:
        key = (t.callsign, t.cid, t.logon_time)
        seen = day.first_seen.get(key)
        visible = seen is not None and seen <= t.time <= day.end - timedelta(minutes=2)
        if t.kind == kind and visible:
            truth[key].append(t)
    found: dict[Key, list[Movement]] = defaultdict(list)
    for m in day.detected:
        if m.kind == kind and m.at <= day.end - timedelta(minutes=2):
            found[m.key].append(m)  # type: ignore[index]
    result = Score([], [], [])
    for key in truth.keys() | found.keys():
        candidates = sorted(found.get(key, []), key=lambda m: m.at)
        for t in sorted(truth.get(key, []), key=lambda t: t.time):
            match = next(
                (m for m in candidates if abs(m.at - t.time) <= POLL and m.airport == t.airport),
                None,
            )
            if match is None:
                result.missed.append(t)
            else:
                candidates.remove(match)
                result.matched.append((t, match))
        result.extra.extend(candidates)
    return result


@pytest.mark.parametrize(
    ("kind", "least"),
    [
        ("takeoff", 0.995),
        ("landing", 0.995),
        ("off_block", 0.995),
        ("on_block", 0.995),
        ("touch_and_go", 0.97),
        ("go_around", 0.97),
    ],
)
def test_movements_are_found_within_one_poll_interval_of_the_truth(kind: str, least: float) -> None:
    s = score(simulated_day(), kind)
    assert len(s.matched) >= 50 if kind != "go_around" else len(s.matched) >= 20
    assert s.precision >= least, s.extra[:5]
    assert s.recall >= least, s.missed[:5]


def test_diversions_are_exact() -> None:
    s = score(simulated_day(), "landing")
    diverted = [t for t, _ in s.matched if t.diversion]
    assert diverted, "the simulated day has diversions"
    assert all(m.diversion == t.diversion for t, m in s.matched)
    assert not [m for m in s.extra if m.diversion]


def test_block_and_airborne_times_are_within_one_poll_interval() -> None:
    day = simulated_day()

    def times(kind: str) -> dict[Key, tuple[datetime, datetime]]:
        return {
            t.callsign + str(t.cid) + t.logon_time: (t.time, m.at)  # type: ignore[misc]
            for t, m in score(day, kind).matched
        }

    for start, end in (("off_block", "on_block"), ("takeoff", "landing")):
        first, last = times(start), times(end)
        flights = first.keys() & last.keys()
        assert len(flights) >= 50
        for flight in flights:
            (true_start, seen_start), (true_end, seen_end) = first[flight], last[flight]
            error = abs((seen_end - seen_start) - (true_end - true_start))
            assert error <= POLL, (start, end, flight, error)
