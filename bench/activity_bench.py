"""Controller activity on a simulated day: ``/api/activity/controllers`` latency.

    .venv/bin/python bench/activity_bench.py [--database-url URL] [--snapshots 5760]
                                             [--calls 50] [--reuse]

Builds (unless ``--reuse``) a day of simulated traffic, seeded from the largest shared snapshot,
with transceivers and airspace analytics (so controller frequency changes and ATC contacts are
stored) through the real ingest path; then times the endpoint through the ASGI app for the
whole day grouped each way, a one-member query, and the CSV form: the first call and p50/p99
of ``--calls`` more. The issue's target is p99 < 100 ms. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from dbsetup import machine
from endpoints_bench import RESULTS, START, build_day, timings
from vatsim_collector.airspace.setup import build_airspace
from vatsim_collector.api import create_app
from vatsim_collector.config import load_settings
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=f"sqlite:///{RESULTS / 'activity-day.db'}")
    parser.add_argument("--snapshots", type=int, default=5760)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="use the database as it is")
    args = parser.parse_args(argv)
    db = DatabaseService.for_engine(create_db_engine(args.database_url))
    upgrade(db.engine)
    settings = load_settings(database_url=args.database_url)
    ingestor = Ingestor(db, IngestConfig(), airspace=build_airspace(settings).engine)
    ingestor.restore()
    build_s = None if args.reuse else round(build_day(ingestor, args.snapshots, seed=11), 1)
    end = START + timedelta(seconds=15 * args.snapshots)
    app = create_app(ingestor, stale_after=1e9, clock=lambda: end)
    day = {"from": START.isoformat(), "to": end.isoformat()}
    result: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": machine(None),
        "backend": db.backend,
        "snapshots_built": None if args.reuse else args.snapshots,
        "build_seconds": build_s,
    }
    with TestClient(app) as client:
        first = client.get("/api/activity/controllers", params={**day, "limit": 1}).json()
        one_cid = first["rows"][0]["cid"]
        queries = {
            "day, group_by=cid": {**day, "group_by": "cid"},
            "day, group_by=position": {**day, "group_by": "position"},
            "day, group_by=facility": {**day, "group_by": "facility"},
            "day, group_by=day": {**day, "group_by": "day"},
            "day, observers and ATIS too": {
                **day,
                "include_observers": "true",
                "include_atis": "true",
            },
            "day, one member": {**day, "cid": one_cid},
            "day, csv": {**day, "format": "csv"},
        }
        cold: dict[str, float] = {}
        for name, params in queries.items():
            started = time.perf_counter()
            response = client.get("/api/activity/controllers", params=params)
            cold[name] = round((time.perf_counter() - started) * 1000, 2)
            assert response.status_code == 200, (name, response.text)
        result["cold_first_call_ms"] = cold
        result["warm"] = {
            name: timings(
                lambda p=params: client.get("/api/activity/controllers", params=p), args.calls
            )
            for name, params in queries.items()
        }
        result["day_totals"] = first["totals"]
    db.dispose()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"activity-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
