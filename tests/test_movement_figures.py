"""Issue 13, acceptance: the airport, report and pilot figures against the stored positions.

A realistic simulated network is ingested by the real ``Ingestor`` with its movement detector.
Then the airport endpoints, the event report and pilot activity are checked three ways:
against direct SQL on ``movements``, and against an independent reading of the stored positions
that shares no code with the detector: each session's positions become runs of "on the ground
at an airport" (within 60 ft of its elevation, within 5 nm) and "in the air" (more than 300 ft
above the field or away from airports), in between ignored; a ground run between air runs is a
touch-and-go when the aircraft never stopped in it and left within 90 s, else a landing then a
takeoff. The simulator's elevations are exact and its aircraft never hover, so on its data the
two readings must agree exactly in counts, and in times within one poll interval per flight.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.api import create_app
from vatsim_collector.config import load_settings
from vatsim_collector.movements.setup import build_detector
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t

START = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
TICKS = 720  # three hours
POLL = timedelta(seconds=15)
NM_PER_RAD = 6_371_008.8 / 1852.0


@dataclass
class Reading:
    """What the independent reading found, per airport and per session."""

    departures: Counter[str]
    arrivals: Counter[str]
    touch_and_goes: Counter[str]
    # per pilot session id: (takeoff time, landing time or None) of each airborne stretch
    airborne: dict[int, list[tuple[datetime, datetime | None]]]


def _distance_nm(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * NM_PER_RAD * math.asin(min(1.0, math.sqrt(h)))


def _airport_at(lat: float, lon: float, alt: float, nearby: list[Any]) -> str | None:
    """The airport an aircraft sits on: within 5 nm and 60 ft of its elevation."""
    for a in nearby:
        if _distance_nm(lat, lon, a.lat, a.lon) <= 5 and abs(alt - a.elevation_ft) <= 60:
            return str(a.icao)
    return None


def read_positions(engine: Engine, airports: list[Any]) -> Reading:
    p, s = t.positions, t.snapshots
    tracks: dict[int, list[Any]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(
            select(
                p.c.pilot_session_id,
                s.c.update_timestamp,
                p.c.latitude,
                p.c.longitude,
                p.c.altitude,
                p.c.groundspeed,
            )
            .join(s, s.c.id == p.c.snapshot_id)
            .order_by(p.c.pilot_session_id, s.c.update_timestamp)
        ):
            tracks[row.pilot_session_id].append(row)
    # Every airport of the reference, by whole degree, for the ones near each position.
    grid: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for a in airports:
        grid[(math.floor(a.lat), math.floor(a.lon))].append(a)

    def near(lat: float, lon: float) -> list[Any]:
        cell = (math.floor(lat), math.floor(lon))
        return [
            a
            for dl in (-1, 0, 1)
            for dn in (-1, 0, 1)
            for a in grid.get((cell[0] + dl, cell[1] + dn), ())
        ]

    reading = Reading(Counter(), Counter(), Counter(), {})
    for session, samples in tracks.items():
        # Runs: ("G", airport, first time, last time, stopped?) or ("A", first time, last time).
        runs: list[list[Any]] = []
        for r in samples:
            nearby = near(r.latitude, r.longitude)
            ground = _airport_at(r.latitude, r.longitude, r.altitude, nearby)
            high = all(
                r.altitude - a.elevation_ft > 300
                or _distance_nm(r.latitude, r.longitude, a.lat, a.lon) > 5
                for a in nearby
            )
            kind = "G" if ground is not None else ("A" if high else None)
            if kind is None:
                continue
            if runs and runs[-1][0] == kind:
                runs[-1][3] = r.update_timestamp
                runs[-1][4] = runs[-1][4] or (kind == "G" and r.groundspeed <= 1)
            else:
                runs.append(
                    [kind, ground, r.update_timestamp, r.update_timestamp, r.groundspeed <= 1]
                )
        stretches: list[tuple[datetime, datetime | None]] = []
        for i, run in enumerate(runs):
            if run[0] != "G":
                continue
            came_by_air = i > 0
            leaves_by_air = i + 1 < len(runs)
            brief = (
                came_by_air
                and leaves_by_air
                and not run[4]
                and (runs[i + 1][2] - runs[i - 1][3]) <= timedelta(seconds=90) + 2 * POLL
            )
            if brief:
                reading.touch_and_goes[run[1]] += 1
                continue
            if came_by_air:
                reading.arrivals[run[1]] += 1
                takeoff = stretches.pop()[0] if stretches else runs[i - 1][2]
                stretches.append((takeoff, run[2]))
            if leaves_by_air:
                reading.departures[run[1]] += 1
                stretches.append((run[3], None))
        if runs and all(run[0] == "A" for run in runs):
            stretches.append((runs[0][2], None))  # seen in the air only
        reading.airborne[session] = stretches
    return reading


@pytest.fixture(scope="module")
def documents() -> list[bytes]:
    network = SimulatedNetwork(seed=4, start=START, flights="realistic", population=60)
    out = []
    for _ in range(TICKS):
        network.tick()
        out.append(orjson.dumps(network.data_document()))
    return out


@pytest.fixture
def ingested(engine: Engine, documents: list[bytes]) -> tuple[Ingestor, datetime]:
    detector = build_detector(load_settings())
    assert detector is not None
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1), movements=detector)
    ingestor.restore()
    for raw in documents:
        assert ingestor.ingest(raw).outcome is Outcome.INGESTED
    end = ingestor.live.snapshot_at
    assert end is not None
    return ingestor, end


def test_airport_figures_agree_with_sql_and_with_the_positions(
    engine: Engine, ingested: tuple[Ingestor, datetime]
) -> None:
    ingestor, end = ingested
    client = TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: end))
    window = {"from": START.isoformat(), "to": (end + timedelta(minutes=1)).isoformat()}
    reference = AirportReference.packaged()
    busiest = client.get("/api/airports/busiest", params={**window, "limit": 100})
    assert busiest.status_code == 200, busiest.text
    listed = {a["icao"]: a for a in busiest.json()["airports"]}
    assert len(listed) >= 5, "the run has traffic at several airports"
    reading = read_positions(engine, list(reference.airports))
    m = t.movements.c
    with engine.connect() as conn:
        by_sql = Counter(
            {
                (airport, kind): n
                for airport, kind, n in conn.execute(
                    select(m.airport, m.kind, func.count()).group_by(m.airport, m.kind)
                )
            }
        )
    for icao, row in listed.items():
        traffic = client.get(
            f"/api/airports/{icao}/traffic", params={**window, "bucket_minutes": 60}
        ).json()
        for counts in (row, traffic["totals"]):
            assert counts["departures"] == by_sql[(icao, "takeoff")] == reading.departures[icao]
            assert counts["arrivals"] == by_sql[(icao, "landing")] == reading.arrivals[icao]
            assert (
                counts["touch_and_goes"]
                == by_sql[(icao, "touch_and_go")]
                == reading.touch_and_goes[icao]
            ), icao
        assert sum(b["total"] for b in traffic["buckets"]) == traffic["totals"]["total"]
    # The event report over the five busiest airports counts the same takeoffs and landings.
    top = sorted(listed, key=lambda code: (-listed[code]["total"], code))[:5]
    answer = client.get("/api/reports/traffic", params={**window, "airports": ",".join(top)})
    assert answer.status_code == 200, answer.text
    for report in answer.json()["airports"]:
        icao = report["icao"]
        assert report["departures"] == reading.departures[icao], icao
        assert report["arrivals"] == reading.arrivals[icao], icao
        assert sum(h["total"] for h in report["hours"]) == report["total"]


def test_pilot_airborne_hours_agree_with_the_positions(
    engine: Engine, ingested: tuple[Ingestor, datetime]
) -> None:
    ingestor, end = ingested
    client = TestClient(create_app(ingestor, stale_after=1e9, clock=lambda: end))
    window = {"from": START.isoformat(), "to": (end + timedelta(minutes=1)).isoformat()}
    body = client.get("/api/activity/pilots", params={**window, "limit": 500}).json()
    rows = {r["cid"]: r for r in body["rows"]}
    reading = read_positions(engine, list(AirportReference.packaged().airports))
    with engine.connect() as conn:
        session_cid = dict(
            conn.execute(select(t.pilot_sessions.c.id, t.pilot_sessions.c.cid)).all()
        )
        last_seen = dict(
            conn.execute(select(t.pilot_sessions.c.id, t.pilot_sessions.c.last_seen_at)).all()
        )
    seconds: Counter[int] = Counter()
    flights: Counter[int] = Counter()
    for session, stretches in reading.airborne.items():
        for takeoff, landing in stretches:
            seconds[session_cid[session]] += (
                (landing or last_seen[session]) - takeoff
            ).total_seconds()
            flights[session_cid[session]] += 1
    compared = 0
    for cid, row in rows.items():
        if not flights[cid]:
            continue
        # Each airborne stretch's ends are estimates within a poll interval of the samples.
        allowed = flights[cid] * 2 * POLL.total_seconds() / 3600
        assert row["hours_airborne"] == pytest.approx(seconds[cid] / 3600, abs=allowed), (
            cid,
            row,
            [(s, reading.airborne[s]) for s, c in session_cid.items() if c == cid],
        )
        compared += 1
    assert compared >= 10
