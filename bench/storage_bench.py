"""Bytes per stored position and transceiver on PostgreSQL, before and after the compact layout.

Three databases, the same documents (the simulated network ``ingest_bench.py``'s day uses: seed
20210103, 14:30Z, about 1,400 pilots and 2,200 transceivers per 15 s snapshot), measured as
BENCHMARKS.md measures (``dbsetup.storage``: ``pg_table_size`` + ``pg_indexes_size`` of the leaf
partitions after ``VACUUM ANALYZE``, divided by the row count):

1. **before**: the code before migration 0007 (``git archive`` of ``--before-ref`` into a temp
   directory), run in a subprocess, ingests the snapshots through its real ingest path;
2. **migrated**: that database upgraded to 0007 by this code (the rewrite is timed);
3. **after**: this code ingests the same snapshots into a fresh database.

On the "after" database the queries that read positions and transceivers are run once with
their SQL captured, and each is EXPLAINed: which index (or partition scan) serves it.

    PYTHONPATH=src:tests .venv/bin/python bench/storage_bench.py [--snapshots N] [--pg-url URL]
        [--before-ref REF]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SEED = 20210103
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)
TABLES = ("positions", "transceivers")


def _engine(url: str) -> Engine:
    from vatsim_collector.store.engine import create_db_engine

    return create_db_engine(url)


def build(url: str, snapshots: int) -> dict[str, Any]:
    """Migrate ``url`` with the code on the path, ingest ``snapshots`` documents, measure."""
    from dbsetup import LARGEST_SNAPSHOT, storage
    from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
    from vatsim_collector.simulator.world import SimulatedNetwork
    from vatsim_collector.store.migrate import current_revision, upgrade

    engine = _engine(url)
    try:
        upgrade(engine)
        network = SimulatedNetwork(
            orjson.loads(LARGEST_SNAPSHOT.read_bytes()), seed=SEED, start=START
        )
        ingestor = Ingestor(engine, IngestConfig())
        ingestor.restore()
        began = time.perf_counter()
        for i in range(snapshots):
            raw = orjson.dumps(network.data_document())
            tx = orjson.dumps(network.transceivers_document())
            outcome = ingestor.ingest(raw, transceivers_raw=tx).outcome
            assert outcome is Outcome.INGESTED, outcome
            network.tick()
            if (i + 1) % 120 == 0:
                print(
                    f"  {i + 1}/{snapshots} snapshots, {time.perf_counter() - began:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        return {
            "revision": current_revision(engine),
            "ingest_s": round(time.perf_counter() - began, 1),
            "storage": {table: storage(engine, table) for table in TABLES},
            "index_bytes": index_bytes(engine),
        }
    finally:
        engine.dispose()


@contextmanager
def _database(admin_url: str, name: str) -> Iterator[str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:  # a failed run leaves no database behind
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _export(ref: str, into: Path) -> Path:
    """The package source at ``ref`` (a commit before migration 0007), unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _before(url: str, snapshots: int, ref: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vcbench-before-") as tmp:
        source = _export(ref, Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(BENCH)])}
        done = subprocess.run(
            [sys.executable, __file__, "--build", url, "--snapshots", str(snapshots)],
            check=True,
            env=env,
            stdout=subprocess.PIPE,
        )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def migrate(url: str) -> dict[str, Any]:
    from dbsetup import storage
    from vatsim_collector.store.migrate import current_revision, upgrade

    engine = _engine(url)
    try:
        began = time.perf_counter()
        upgrade(engine)
        seconds = time.perf_counter() - began
        with engine.connect() as conn:
            rows = {
                table: int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
                for table in TABLES
            }
        return {
            "revision": current_revision(engine),
            "migration_s": round(seconds, 2),
            "rows_per_s": round(sum(rows.values()) / seconds),
            "storage": {table: storage(engine, table) for table in TABLES},
            "index_bytes": index_bytes(engine),
        }
    finally:
        engine.dispose()


def index_bytes(engine: Engine) -> dict[str, int]:
    """Bytes of each index of the volume tables, summed over the partitions' indexes."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.indexrelid::regclass::text,"
                " (SELECT COALESCE(SUM(pg_relation_size(relid)), 0)"
                "  FROM pg_partition_tree(i.indexrelid) WHERE isleaf)"
                " FROM pg_index i WHERE i.indrelid IN"
                " ('positions'::regclass, 'transceivers'::regclass)"
            )
        ).all()
    return {str(name): int(size) for name, size in rows}


def _captured(engine: Engine, run: Callable[[Connection], object]) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "DELETE")):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.begin() as conn:
            run(conn)
            conn.rollback()  # the forget delete is explained, never kept
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return statements


def explain(url: str) -> dict[str, list[str]]:
    """Each query on the volume tables, run once and EXPLAINed with its own parameters."""
    from vatsim_collector.store import queries, recompute_rows
    from vatsim_collector.store import schema as t
    from vatsim_collector.store.airspace_restore import _last_positions
    from vatsim_collector.store.queries_airspace import coverage_by_snapshot
    from vatsim_collector.store.restore import load_live_state

    engine = _engine(url)
    try:
        # Statistics on every table, as autovacuum keeps them on a running database: the
        # storage measure analysed the volume tables only, and the planner would otherwise
        # plan joins with sessions and snapshots from guesses.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        with engine.connect() as conn:
            busiest = conn.execute(
                text(
                    "SELECT pilot_session_id, COUNT(*) FROM positions"
                    " GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
                )
            ).one()[0]
            flight = conn.execute(
                select(t.pilot_sessions.c.flight_id).where(t.pilot_sessions.c.id == busiest)
            ).scalar_one()
            snapshot = conn.execute(  # the middle snapshot
                text(
                    "SELECT id FROM snapshots ORDER BY id"
                    " OFFSET (SELECT COUNT(*) / 2 FROM snapshots) LIMIT 1"
                )
            ).scalar_one()
            span = conn.execute(
                select(t.snapshots.c.update_timestamp).where(t.snapshots.c.id == snapshot)
            ).scalar_one()
            open_ids = list(
                conn.execute(
                    select(t.pilot_sessions.c.id).where(t.pilot_sessions.c.ended_at.is_(None))
                ).scalars()
            )
        cases: dict[str, Callable[[Connection], object]] = {
            "flight_track (API track, summaries)": lambda c: queries.flight_track(c, flight),
            "snapshot_positions (recompute)": lambda c: recompute_rows.snapshot_positions(
                c, snapshot
            ),
            "snapshot_transceivers (recompute)": lambda c: recompute_rows.snapshot_transceivers(
                c, snapshot
            ),
            "last positions (airspace restore)": lambda c: _last_positions(c, open_ids, 4),
            "coverage_by_snapshot, 1 h": lambda c: coverage_by_snapshot(
                c, span, span + timedelta(hours=1), None
            ),
            "live state (restore)": lambda c: load_live_state(
                c, missed_to_end=4, reconnect_window=timedelta(minutes=5)
            ),
            "forget a pilot session": lambda c: _forget_one(c, busiest),
        }
        plans: dict[str, list[str]] = {}
        for name, run in cases.items():
            lines: list[str] = []
            for statement, parameters in _captured(engine, run):
                if "positions" not in statement and "transceivers" not in statement:
                    continue
                with engine.connect() as conn:
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    cursor.execute(f"EXPLAIN (COSTS OFF) {statement}", parameters)
                    # Long IN lists shortened: the plan's shape is what is read here.
                    lines += [_short(row[0]) for row in cursor.fetchall()] + ["--"]
                    conn.rollback()
            plans[name] = lines
        return plans
    finally:
        engine.dispose()


def _short(line: str, width: int = 160) -> str:
    return line if len(line) <= width else f"{line[:width]}..."


def _forget_one(conn: Connection, session_id: int) -> None:
    from sqlalchemy import delete

    from vatsim_collector.store import schema as t

    pos = t.positions
    low, high = conn.execute(
        text(
            "SELECT MIN(snapshot_id), MAX(snapshot_id) FROM positions WHERE pilot_session_id = :s"
        ),
        {"s": session_id},
    ).one()
    conn.execute(
        delete(pos).where(
            pos.c.snapshot_id.between(low, high), pos.c.pilot_session_id == session_id
        )
    )


def _summary(label: str, result: dict[str, Any]) -> list[str]:
    lines = []
    for table in TABLES:
        s = result["storage"][table]
        lines.append(
            f"{label:9} {table:12} {s['rows']:>10,} rows  table {s['table_bytes_per_row']:6.1f}"
            f" + index {s['index_bytes_per_row']:5.1f} = {s['bytes_per_row']:6.1f} B/row"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--snapshots", type=int, default=720, help="15 s snapshots (720 = 3 h)")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--before-ref", default=None, help="default: merge-base with main")
    parser.add_argument("--build", metavar="URL", help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args(argv)
    if args.build:
        print(json.dumps(build(args.build, args.snapshots)))
        return 0
    sys.path.insert(0, str(BENCH))
    from dbsetup import RESULTS, machine, source_fingerprint

    ref = (
        args.before_ref
        or subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "started": stamp,
        "snapshots": args.snapshots,
        "before_ref": ref,
        "machine": machine(args.pg_url),
        "source_sha256": source_fingerprint(),
        "load_average": os.getloadavg(),
    }
    with _database(args.pg_url, f"vcbench_before_{stamp.lower()}") as before_url:
        print(f"before ({ref[:10]}): ingesting {args.snapshots} snapshots", file=sys.stderr)
        report["before"] = _before(before_url, args.snapshots, ref)
        print("migrating the before database to 0007", file=sys.stderr)
        report["migrated"] = migrate(before_url)
    with _database(args.pg_url, f"vcbench_after_{stamp.lower()}") as after_url:
        print(f"after: ingesting {args.snapshots} snapshots", file=sys.stderr)
        report["after"] = build(after_url, args.snapshots)
        report["plans"] = explain(after_url)
    report["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"storage-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    for label in ("before", "migrated", "after"):
        print("\n".join(_summary(label, report[label])))
        print(f"          indexes: {report[label].get('index_bytes')}")
    print(f"migration: {report['migrated']['migration_s']} s", end=" ")
    print(f"({report['migrated']['rows_per_s']:,} rows/s)")
    for name, lines in report["plans"].items():
        print(f"\n{name}:\n  " + "\n  ".join(lines))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
