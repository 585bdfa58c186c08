"""Steady ingest on PostgreSQL with the session tables at several fillfactors, in one run.

Every snapshot updates ``last_seen_at`` of every online session row; migration 0008 gives the
four tables updated so (``TABLES``) a fillfactor of 70 so that the update fits on its page (a
HOT update: no index entries). This bench migrates one database per fillfactor, sets the
tables' fillfactor on each (the value 0008 sets is one of them), ingests the busiest shared
snapshot into each, then the same successors (every pilot moved, +15 s) into each in turn, the
order alternating, and reports the median per database.

    .venv/bin/python bench/session_fillfactor_bench.py [--successors 60] [--fillfactors 100,70,50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime

import orjson
from sqlalchemy import text

from dbsetup import LARGEST_SNAPSHOT, PG_ADMIN_URL, RESULTS, fresh_database, machine
from feeddocs import load_document, successors
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor

TABLES = ("pilot_sessions", "controller_sessions", "atis_sessions", "prefiles")
WARMUP = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--successors", type=int, default=60)
    parser.add_argument("--fillfactors", default="100,70,50")
    args = parser.parse_args(argv)
    factors = [int(f) for f in args.fillfactors.split(",")]
    doc = load_document(LARGEST_SNAPSHOT)
    opening = orjson.dumps(doc)
    documents = successors(doc, args.successors + WARMUP)
    times: dict[int, list[float]] = {f: [] for f in factors}
    with ExitStack() as keep:
        ingestors: dict[int, Ingestor] = {}
        for factor in factors:
            engine = keep.enter_context(fresh_database("postgresql"))
            with engine.begin() as conn:
                for table in TABLES:
                    conn.execute(text(f"ALTER TABLE {table} SET (fillfactor = {factor})"))
            ingestor = Ingestor(engine, IngestConfig())
            ingestor.restore()
            ingestor.ingest(opening)
            ingestors[factor] = ingestor
        for i, raw in enumerate(documents):
            order = factors if i % 2 == 0 else list(reversed(factors))
            for factor in order:
                started = time.perf_counter()
                ingestors[factor].ingest(raw)
                if i >= WARMUP:
                    times[factor].append(time.perf_counter() - started)
    medians = {f: round(1000 * statistics.median(v), 1) for f, v in times.items()}
    for factor, ms in medians.items():
        print(f"fillfactor {factor:>3}: median {ms} ms per snapshot ({len(times[factor])})")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"session-fillfactor-{stamp}.json"
    out.write_text(
        json.dumps(
            {"median_ms": medians, "successors": args.successors, "machine": machine(PG_ADMIN_URL)},
            indent=2,
        )
    )
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
