"""The event traffic report on a simulated day: ``/api/reports/traffic`` latency.

    .venv/bin/python bench/reports_bench.py [--database-url URL] [--flights 25000]
                                            [--calls 50] [--reuse]

Builds (unless ``--reuse``) a day of rows written straight into the database, since the
movement detector is not wired into ingest yet: ``--flights`` flights between 300 real airports
(a few hubs far busier than the rest, EGLL and EHAM running an event: about 1,400 and 1,100
movements), each with its session, off-block, takeoff, landing and on-block movements, one to
three ATC contacts and three to six sector occupancies; and about 3,000 controller sessions, a
third of them on the airports' own positions. Seeded, so every run builds the same day.

Then times the endpoint through the ASGI app for the whole day: one airport, the event's two,
twenty airports, the two as CSV, and a 7-day window ending with the day: the first call and
p50/p99 of ``--calls`` more. The issue's target is p99 < 100 ms. Results go to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, insert, select

from dbsetup import machine
from endpoints_bench import RESULTS, timings
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

START = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
EVENT = ("EGLL", "EHAM")
HUBS = (
    "EGLL", "EHAM", "EDDF", "LFPG", "KJFK", "KLAX", "KATL", "EGKK", "LEMD", "LIRF",
    "EKCH", "ESSA", "LOWW", "LSZH", "EDDM", "EIDW", "KORD", "KSFO", "CYYZ", "OMDB",
)  # fmt: skip
SUFFIXES = ("DEL", "GND", "TWR", "APP")
SECTORS = [f"SECT{i:03d}" for i in range(400)]
BATCH = 5000


def _airports(rng: random.Random) -> list[str]:
    reference = AirportReference.packaged()
    large = [a.icao for a in reference.airports if len(a.icao) == 4 and a.iata]
    others = rng.sample(sorted(set(large) - set(HUBS)), 300 - len(HUBS))
    return [*HUBS, *others]


def _weights(airports: Sequence[str]) -> list[float]:
    # The event's two airports, then the hubs, then the rest.
    return [12.0 if a in EVENT else 4.0 if a in HUBS else 1.0 for a in airports]


def _flush(conn: Connection, table: t.Table, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        conn.execute(insert(table), rows[i : i + BATCH])
    rows.clear()


def build_day(conn: Connection, flights: int, seed: int = 17) -> dict[str, int]:
    rng = random.Random(seed)
    airports = _airports(rng)
    weights = _weights(airports)
    sec = timedelta(seconds=1)
    controllers: list[dict[str, Any]] = []
    for n in range(3000):
        first = START + rng.randrange(86_400) * sec
        if n % 3 == 0:
            airport = rng.choices(airports, weights)[0]
            callsign, facility = f"{airport}_{rng.choice(SUFFIXES)}", rng.choice([2, 3, 4, 5])
        else:
            callsign, facility = f"SECT{n:04d}_CTR", 6
        controllers.append(
            {
                "id": n + 1,
                "cid": 1_500_000 + n,
                "callsign": callsign,
                "logon_time": first,
                "first_seen_at": first,
                "last_seen_at": first + rng.randrange(1800, 4 * 3600) * sec,
                "ended_at": None,
                "frequency": "118.500",
                "facility": facility,
                "rating": 5,
                "visual_range": 50,
                "is_observer": False,
                "is_supervisor": False,
            }
        )
    count = {"controller_sessions": len(controllers)}
    _flush(conn, t.controller_sessions, controllers)
    flight_rows: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    occupancy: list[dict[str, Any]] = []
    totals = {"flights": 0, "movements": 0, "contacts": 0, "occupancies": 0}
    for n in range(1, flights + 1):
        departure, arrival = rng.choices(airports, weights, k=2)
        off = START + rng.randrange(86_400 - 1800) * sec
        takeoff = off + rng.randrange(300, 1500) * sec
        landing = takeoff + rng.randrange(1800, 6 * 3600) * sec
        on = landing + rng.randrange(120, 900) * sec
        common = {"cid": 1_000_000 + n, "callsign": f"SIM{n}"}
        flight_rows.append({"id": n, **common, "departure": departure, "arrival": arrival,
                            "started_at": off - 300 * sec, "ended_at": on})  # fmt: skip
        sessions.append({"id": n, **common, "logon_time": off - 300 * sec,
                         "first_seen_at": off - 300 * sec, "last_seen_at": on,
                         "ended_at": on, "flight_id": n})  # fmt: skip
        for kind, airport, at in (
            ("off_block", departure, off),
            ("takeoff", departure, takeoff),
            ("landing", arrival, landing),
            ("on_block", arrival, on),
        ):
            moves.append({"pilot_session_id": n, "flight_id": n, **common,
                          "snapshot_id": int(at.timestamp() * 1000), "kind": kind,
                          "airport": airport, "at": at, "bracket_from": at - 15 * sec,
                          "bracket_to": at, "runway_heading": rng.randrange(360),
                          "diversion": False, "filed_arrival": arrival})  # fmt: skip
        for _ in range(rng.randrange(1, 4)):
            begin = off + rng.randrange(int((on - off).total_seconds())) * sec
            contacts.append({"pilot_session_id": n, "flight_id": n,
                             "controller_session_id": rng.randrange(1, 3001),
                             "frequency_hz": 118_500_000, "started_at": begin,
                             "ended_at": begin + rng.randrange(120, 3600) * sec})  # fmt: skip
        entered = takeoff
        for sector in rng.sample(SECTORS, rng.randrange(3, 7)):
            exited = entered + rng.randrange(600, 3600) * sec
            occupancy.append({"pilot_session_id": n, "flight_id": n, "sector": sector,
                              "entered_at": entered, "entry_latitude": 0.0,
                              "entry_longitude": 0.0, "entry_altitude": 30_000,
                              "exited_at": exited})  # fmt: skip
            entered = exited
        if len(moves) >= 4 * BATCH or n == flights:
            totals["flights"] += len(flight_rows)
            totals["movements"] += len(moves)
            totals["contacts"] += len(contacts)
            totals["occupancies"] += len(occupancy)
            _flush(conn, t.flights, flight_rows)
            _flush(conn, t.pilot_sessions, sessions)
            _flush(conn, t.movements, moves)
            _flush(conn, t.contact_intervals, contacts)
            _flush(conn, t.sector_occupancy, occupancy)
    return count | totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=f"sqlite:///{RESULTS / 'reports-day.db'}")
    parser.add_argument("--flights", type=int, default=25_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="use the database as it is")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    db = DatabaseService.for_engine(create_db_engine(args.database_url))
    upgrade(db.engine)
    built = None
    build_s = None
    if not args.reuse:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            built = build_day(conn, args.flights)
        build_s = round(time.perf_counter() - started, 1)
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    end = START + DAY
    app = create_app(ingestor, stale_after=1e9, clock=lambda: end)
    day = {"from": START.isoformat(), "to": end.isoformat()}
    with db.engine.connect() as conn:
        m = t.movements.c
        event_movements = dict(
            conn.execute(
                select(m.airport, func.count())
                .where(m.airport.in_(EVENT), m.kind.in_(["takeoff", "landing"]))
                .group_by(m.airport)
            ).all()
        )
    result: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": machine(None),
        "backend": db.backend,
        "rows_built": built,
        "build_seconds": build_s,
        "event_movements": event_movements,
    }
    twenty = ",".join(HUBS)
    queries = {
        "day, EGLL": {**day, "airports": "EGLL"},
        "day, EGLL,EHAM": {**day, "airports": ",".join(EVENT)},
        "day, 20 airports": {**day, "airports": twenty},
        "day, EGLL,EHAM, csv": {**day, "airports": ",".join(EVENT), "format": "csv"},
        "7 days to the day's end, EGLL,EHAM": {
            "from": (end - 7 * DAY).isoformat(),
            "to": end.isoformat(),
            "airports": ",".join(EVENT),
        },
    }
    with TestClient(app) as client:
        cold: dict[str, float] = {}
        for name, params in queries.items():
            started = time.perf_counter()
            response = client.get("/api/reports/traffic", params=params)
            cold[name] = round((time.perf_counter() - started) * 1000, 2)
            assert response.status_code == 200, (name, response.text)
        result["cold_first_call_ms"] = cold
        result["warm"] = {
            name: timings(lambda p=params: client.get("/api/reports/traffic", params=p), args.calls)
            for name, params in queries.items()
        }
        egll = client.get("/api/reports/traffic", params=queries["day, EGLL"]).json()
        report = egll["airports"][0]
        result["egll_day"] = {
            "total": report["total"],
            "peak_hour": report["peak_hour"],
            "peak_15_minutes": report["peak_15_minutes"],
            "atc_contact": report["atc_contact"],
            "positions": len(report["positions"]),
        }
    db.dispose()
    out = RESULTS / f"reports-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
