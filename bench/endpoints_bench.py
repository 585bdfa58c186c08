"""How fast the database service endpoints answer on a database holding a day of traffic.

    .venv/bin/python bench/endpoints_bench.py [--database-url URL] [--snapshots 5760]
                                              [--calls 50] [--reuse]

Builds (unless ``--reuse``) a day of simulated traffic with transceivers through the real
ingest path, then times ``/api/database/service/stats``, ``/api/database/service/health``,
``/health`` and ``/api/status`` through the ASGI app: the first (cold) call, and p50/p99 of
``--calls`` further calls. The stats cache is forced cold on every call in a second pass, so
the worst case (fresh ANALYZE on SQLite, catalogue reads on PostgreSQL) is shown too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from dbsetup import machine
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.health import HealthLimits, HealthMonitor
from vatsim_collector.store.manager import DatabaseManager
from vatsim_collector.store.migrate import upgrade

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds"
LARGEST = SHARED / "vatsim-data-20210103T142930Z.json"
RESULTS = Path(__file__).resolve().parent / "results"
BENCH_KEY = "endpoints-bench"
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)


def build_day(ingestor: Ingestor, snapshots: int, *, seed: int = 7) -> float:
    """A simulated day (or ``snapshots`` of it) through ``ingestor``; the seconds it took."""
    network = SimulatedNetwork(load_seed_snapshot(LARGEST), seed=seed, start=START)
    started = time.perf_counter()
    for i in range(snapshots):
        ingestor.ingest(
            orjson.dumps(network.data_document()),
            transceivers_raw=orjson.dumps(network.transceivers_document()),
        )
        network.tick()
        if i % 500 == 0:
            print(f"  built {i}/{snapshots} snapshots", file=sys.stderr)
    return time.perf_counter() - started


def timings(call: Callable[[], Any], calls: int) -> dict[str, float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "max_ms": round(samples[-1], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="sqlite:///bench/results/day.db")
    parser.add_argument("--snapshots", type=int, default=5760)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="use the database as it is")
    args = parser.parse_args(argv)

    db = DatabaseService(DatabaseManager(create_db_engine(args.database_url)))
    upgrade(db.engine)
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    build_s = None if args.reuse else round(build_day(ingestor, args.snapshots), 1)
    stale_after = 10.0**9  # simulated 2021 data: staleness is not what is measured here
    monitor = HealthMonitor(db, limits=HealthLimits(stale_after_seconds=stale_after))
    # The database service endpoints need a read key.
    app = create_app(
        ingestor, stale_after=stale_after, health=monitor, api_keys=[("read", BENCH_KEY)]
    )
    result: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "machine": machine(None),
        "backend": db.backend,
        "snapshots_built": None if args.reuse else args.snapshots,
        "build_seconds": build_s,
    }
    with TestClient(app, headers={"X-API-Key": BENCH_KEY}) as client:
        paths = [
            "/api/database/service/stats",
            "/api/database/service/health",
            "/health",
            "/api/status",
        ]
        cold = {}
        for path in paths:
            started = time.perf_counter()
            response = client.get(path)
            cold[path] = round((time.perf_counter() - started) * 1000, 2)
            assert response.status_code == 200, (path, response.text)
        result["cold_first_call_ms"] = cold
        result["warm"] = {path: timings(lambda p=path: client.get(p), args.calls) for path in paths}

        def uncached_stats() -> None:
            db.storage.get(force=True)

        result["stats_refresh_uncached"] = timings(uncached_stats, max(5, args.calls // 5))
        result["health_probe"] = timings(monitor.probe, args.calls)
        stats = client.get("/api/database/service/stats").json()
        result["rows_estimate"] = {
            t["name"]: t["rows_estimate"] for t in stats["storage"]["tables"]
        }
        result["total_bytes"] = stats["storage"]["total_bytes"]
    db.dispose()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"endpoints-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
