"""Airport endpoints and pilot activity on a simulated day: latency of ``/api/airports/...``
and ``/api/activity/pilots``.

    .venv/bin/python bench/airports_bench_api.py [--database-url URL] [--flights 15000]
                                                 [--pilots 9000] [--airports 40]
                                                 [--calls 50] [--reuse]

Builds (unless ``--reuse``) a day of flights with their sessions and movements (off-block,
take-off, landing, on-block; circuits, reconnects, flights joined or left in the air) between
``--airports`` airports of the reference, written straight into the database by the tests'
deterministic world (tests/movement_world.py: the movement detector is not needed to time the
reads); then times each endpoint through the ASGI app: the first call and p50/p99 of
``--calls`` more. The issue's target is p99 < 100 ms. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dbsetup import machine
from endpoints_bench import RESULTS, timings
from movement_world import AIRPORTS, build, insert_world
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def airports(count: int) -> list[str]:
    """The world's airports, then airports of the reference with an IATA code, by code."""
    reference = AirportReference.packaged()
    more = sorted(a.icao for a in reference.airports if a.iata and a.icao[0] in "EKL")
    return [*AIRPORTS, *(code for code in more if code not in AIRPORTS)][:count]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=f"sqlite:///{RESULTS / 'airports-day.db'}")
    parser.add_argument("--flights", type=int, default=15000)
    parser.add_argument("--pilots", type=int, default=9000)
    parser.add_argument("--airports", type=int, default=40)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="use the database as it is")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    db = DatabaseService.for_engine(create_db_engine(args.database_url))
    upgrade(db.engine)
    build_s = None
    rows: dict[str, int] = {}
    if not args.reuse:
        started = time.perf_counter()
        world = build(
            START, 24, args.flights, seed=5, pilots=args.pilots, airports=airports(args.airports)
        )
        with db.engine.begin() as conn:
            insert_world(conn, world)
        build_s = round(time.perf_counter() - started, 1)
        rows = {"sessions": len(world.sessions), "movements": len(world.moves)}
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    end = START + DAY
    app = create_app(ingestor, stale_after=1e9, clock=lambda: end + timedelta(hours=2))
    day = {"from": START.isoformat(), "to": end.isoformat()}
    result: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": machine(None),
        "backend": db.backend,
        "rows_built": rows or None,
        "build_seconds": build_s,
    }
    with TestClient(app) as client:
        top = client.get("/api/airports/busiest", params={**day, "limit": 1}).json()
        busiest = top["airports"][0]["icao"]
        first = client.get("/api/activity/pilots", params={**day, "limit": 1}).json()
        one_cid = first["rows"][0]["cid"]
        queries: dict[str, tuple[str, dict[str, Any]]] = {
            f"traffic {busiest}, day, 60 min": (f"/api/airports/{busiest}/traffic", day),
            f"traffic {busiest}, day, 5 min": (
                f"/api/airports/{busiest}/traffic",
                {**day, "bucket_minutes": 5},
            ),
            "busiest, day, 10": ("/api/airports/busiest", day),
            "busiest, day, 100": ("/api/airports/busiest", {**day, "limit": 100}),
            f"movements {busiest}, day, page of 50": (f"/api/airports/{busiest}/movements", day),
            f"airport {busiest} now": (f"/api/airports/{busiest}", {}),
            "pilots, day, page of 100": ("/api/activity/pilots", day),
            "pilots, day, one member": ("/api/activity/pilots", {**day, "cid": one_cid}),
            "pilots, day, csv": ("/api/activity/pilots", {**day, "format": "csv"}),
        }
        cold: dict[str, float] = {}
        for name, (path, params) in queries.items():
            started = time.perf_counter()
            response = client.get(path, params=params)
            cold[name] = round((time.perf_counter() - started) * 1000, 2)
            assert response.status_code == 200, (name, response.text)
        result["cold_first_call_ms"] = cold
        result["warm"] = {
            name: timings(lambda p=path, q=params: client.get(p, params=q), args.calls)
            for name, (path, params) in queries.items()
        }
        result["day_totals"] = {"pilots": first["totals"], "busiest": top["airports"][0]}
    db.dispose()
    out = RESULTS / f"airports-api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
