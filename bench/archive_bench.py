"""Archive benchmark: bytes per position (and per transceiver row) in the Parquet archive.

    .venv/bin/python bench/archive_bench.py [--hours H] [--db-snapshots N]
                                            [--backend sqlite|postgresql]

1. Format on a long simulated stretch: ``SimulatedNetwork`` with realistic flights (real
   airports, climbs, cruise, descents; the seed snapshot's pilot count) for ``--hours`` of
   15 s snapshots, turned into the archive's rows without a database (session ids given in
   order of first appearance, as the database does) and written with the archive's layout at
   zstd levels 3, 9 (the default) and 19; and, for comparison, the same columns in snapshot
   order with pyarrow's default encodings and DOUBLE coordinates.
2. End to end: ``--db-snapshots`` simulated snapshots (random flights, with transceivers)
   ingested into a fresh database, then written by ``store.archive.write_window`` as retention
   does: bytes per position and per transceiver row, rows per second.

The archive's size depends on how long sessions last (their keys cost almost nothing once
sorted by session) and how smoothly aircraft move, not on the number of pilots. Prints JSON and
writes it to ``bench/results/archive.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dbsetup import PG_ADMIN_URL, fresh_database, machine
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.geo import parse_feed_time
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store.archive import FETCH_ROWS, open_sink, write_window
from vatsim_collector.store.archive_layout import POSITIONS
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.rows import squawk
from vatsim_collector.store.schema import snapshot_id_for

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2026, 1, 1, tzinfo=UTC)
SNAPSHOTS_PER_HOUR = 240


def simulated_positions(hours: float, seed: int) -> tuple[list[tuple[Any, ...]], float]:
    """Rows in the archive's query order (session, then time), and seconds spent simulating."""
    network = SimulatedNetwork(seed=seed, start=START, flights="realistic")
    sessions: dict[tuple[int, str, str], int] = {}
    rows: list[tuple[Any, ...]] = []
    started = time.perf_counter()
    for _ in range(round(hours * SNAPSHOTS_PER_HOUR)):
        document = network.data_document()
        snapshot_id = snapshot_id_for(parse_feed_time(document["general"]["update_timestamp"]))
        for p in document["pilots"]:
            key = (p["cid"], p["callsign"], p["logon_time"])
            session = sessions.setdefault(key, len(sessions) + 1)
            rows.append(
                (
                    session,
                    p["cid"],
                    p["callsign"],
                    parse_feed_time(p["logon_time"]),
                    snapshot_id,
                    p["latitude"],
                    p["longitude"],
                    p["altitude"],
                    p["groundspeed"],
                    p["heading"],
                    squawk(p["transponder"]),
                    p["qnh_mb"],
                )
            )
        network.tick()
    seconds = time.perf_counter() - started
    rows.sort(key=lambda r: (r[0], r[4]))
    return rows, seconds


def _pages(rows: Sequence[tuple[Any, ...]]) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), FETCH_ROWS):
        yield rows[start : start + FETCH_ROWS]


def archive_bytes(rows: Sequence[tuple[Any, ...]], level: int) -> tuple[int, float]:
    buffer = io.BytesIO()
    started = time.perf_counter()
    sink = open_sink(buffer, POSITIONS, "parquet", level, "decimal")
    for page in _pages(rows):
        sink.write(POSITIONS.batch(page, "decimal"))
    sink.close()
    return len(buffer.getvalue()), time.perf_counter() - started


def naive_bytes(rows: Sequence[tuple[Any, ...]]) -> int:
    """The same columns in snapshot order, DOUBLE coordinates, pyarrow's defaults, zstd 9."""
    by_time = sorted(rows, key=lambda r: (r[4], r[0]))
    batches = [POSITIONS.batch(page, "double") for page in _pages(by_time)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches(batches), buffer, compression="zstd", compression_level=9)
    return len(buffer.getvalue())


def format_section(hours: float, seed: int) -> dict[str, Any]:
    rows, simulated = simulated_positions(hours, seed)
    sessions = len({r[0] for r in rows})
    result: dict[str, Any] = {
        "hours": hours,
        "positions": len(rows),
        "sessions": sessions,
        "positions_per_session": round(len(rows) / sessions, 1),
        "simulation_seconds": round(simulated, 1),
        "levels": {},
    }
    for level in (3, 9, 19):
        size, seconds = archive_bytes(rows, level)
        result["levels"][str(level)] = {
            "bytes": size,
            "bytes_per_position": round(size / len(rows), 2),
            "write_seconds": round(seconds, 2),
        }
    naive = naive_bytes(rows)
    result["snapshot_order_defaults"] = {
        "bytes": naive,
        "bytes_per_position": round(naive / len(rows), 2),
    }
    return result


def end_to_end_section(backend: str, snapshots: int, seed: int, pg_url: str) -> dict[str, Any]:
    with fresh_database(backend, pg_url) as engine:
        ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
        ingestor.restore()
        network = SimulatedNetwork(seed=seed, start=START)
        for _ in range(snapshots):
            result = ingestor.ingest(
                orjson.dumps(network.data_document()),
                transceivers_raw=orjson.dumps(network.transceivers_document()),
                fetched_at=network.now,
            )
            assert result.outcome is Outcome.INGESTED, result
            network.tick()
        db = DatabaseService.of(engine)
        out: dict[str, Any] = {"backend": backend, "snapshots": snapshots}
        with tempfile.TemporaryDirectory(prefix="vcarchive-") as tmp:
            for table in ("positions", "transceivers"):
                started = time.perf_counter()
                written = write_window(db, table, 0, 2**62, Path(tmp) / f"{table}.parquet")
                seconds = time.perf_counter() - started
                out[table] = {
                    "rows": written.rows,
                    "bytes": written.bytes,
                    "bytes_per_row": round(written.bytes / written.rows, 2),
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(written.rows / seconds),
                }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--db-snapshots", type=int, default=240)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    report = {
        "machine": machine(args.pg_admin_url if args.backend == "postgresql" else None),
        "format": format_section(args.hours, args.seed),
        "end_to_end": end_to_end_section(
            args.backend, args.db_snapshots, args.seed, args.pg_admin_url
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "archive.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
