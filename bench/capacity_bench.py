"""Rows and bytes per day for the whole network, and how long one PostgreSQL lasts.

    .venv/bin/python bench/capacity_bench.py [--snapshot FILE] [--snapshots 240]
                                             [--pg-admin-url postgresql+psycopg://postgres@127.0.0.1/postgres]

Ingests ``--snapshots`` consecutive documents of the simulator (seeded from ``--snapshot``, a
v3 vatsim-data document; default the simulator's own seed) into a fresh PostgreSQL database
through the real ingest path, with transceivers, airspace analytics, the event log and the
summaries, then measures every table (rows, and bytes of table and indexes after VACUUM) and
scales to a day of 5,760 snapshots. With the retention settings' defaults it gives the size
the database settles at, and how much it still grows per year (sessions, flights, summaries
and occupancy are kept for good). Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from dbsetup import PG_ADMIN_URL, fresh_database, machine, storage
from vatsim_collector.airspace.setup import build_airspace
from vatsim_collector.config import load_settings
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.simulator.world import load_seed_snapshot
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

RESULTS = Path(__file__).resolve().parent / "results"
PER_DAY = 5760
# Days each growing table is kept by default (RetentionPolicy); None: kept for good.
RETENTION_DAYS: dict[str, int | None] = {
    "positions": 30,
    "transceivers": 7,
    "events": 30,
    "held_documents": 30,
    "error_records": 30,
}


class Collector:
    """The ingest path with its handlers, as the service runs them."""

    def __init__(self, db: DatabaseService) -> None:
        settings = load_settings(sanity_min_pilots=1, database_url="sqlite://")
        airspace = build_airspace(settings)
        self.ingestor = Ingestor(
            db, IngestConfig.from_settings(settings), airspace=airspace.engine, boundary=None
        )
        self.ingestor.restore()
        self.events = build_event_layer(settings, db)


async def fill(collector: Collector, network: SimulatedNetwork, snapshots: int) -> dict[str, Any]:
    ingestor, events = collector.ingestor, collector.events
    pilots = 0
    published = 0
    started = time.perf_counter()
    for _ in range(snapshots):
        network.tick()
        data = orjson.dumps(network.data_document())
        transceivers = orjson.dumps(network.transceivers_document())
        result = await asyncio.to_thread(ingestor.ingest, data, transceivers_raw=transceivers)
        assert result.outcome.value == "ingested", result
        pilots += len(network.pilots)
        published += len(result.events)
        await events.bus.publish_many(result.events)
    # Everything published is handled (event log, summaries) before the tables are measured.
    await events.stop(120)
    await events.start()
    return {
        "snapshots": snapshots,
        "mean_pilots": round(pilots / snapshots),
        "events_published": published,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot", type=Path, default=None)
    parser.add_argument("--snapshots", type=int, default=240)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    seed = load_seed_snapshot(args.snapshot)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    network = SimulatedNetwork(seed, seed=3, start=start)
    with fresh_database("postgresql", args.pg_admin_url) as engine:
        collector = Collector(DatabaseService.for_engine(engine))

        def measure() -> dict[str, dict[str, Any]]:
            return {table: storage(engine, table) for table in t.metadata.tables}

        async def both() -> tuple[dict[str, Any], ...]:
            await collector.events.start()
            # The first snapshots open every session at once and pay fixed page costs:
            # measure the growth after them, as a running collector grows.
            warmup = await fill(collector, network, args.warmup)
            before = await asyncio.to_thread(measure)
            run = await fill(collector, network, args.snapshots)
            after = await asyncio.to_thread(measure)
            await collector.events.stop(120)
            return warmup, run, before, after

        warmup, run, before, after = asyncio.run(both())
        scale = PER_DAY / args.snapshots
        tables: dict[str, Any] = {}
        for table in sorted(t.metadata.tables):
            rows = after[table]["rows"] - before[table]["rows"]
            grown = after[table]["total_bytes"] - before[table]["total_bytes"]
            if rows <= 0:
                continue
            tables[table] = {
                "rows_per_day": round(rows * scale),
                "bytes_per_day": round(max(grown, 0) * scale),
                "bytes_per_row": round(max(grown, 0) / rows, 1),
                "retention_days": RETENTION_DAYS.get(table),
            }
    per_day = sum(v["bytes_per_day"] for v in tables.values())
    settled = sum(
        v["bytes_per_day"] * v["retention_days"]
        for v in tables.values()
        if v["retention_days"] is not None
    )
    kept = sum(v["bytes_per_day"] for v in tables.values() if v["retention_days"] is None)
    report = {
        "machine": machine(args.pg_admin_url),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "warmup": warmup,
        "run": run,
        "tables": tables,
        "bytes_per_day": per_day,
        "rows_per_day": sum(v["rows_per_day"] for v in tables.values()),
        "settled_bytes_with_default_retention": settled,
        "growth_bytes_per_year_kept_for_good": kept * 365,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"capacity-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2, default=str))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
