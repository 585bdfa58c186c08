"""Ingest benchmark: per-snapshot cost against ``orjson.loads``, growth over a day, bytes per row.

    .venv/bin/python bench/ingest_bench.py [--backend sqlite|postgresql|both]
                                           [--day-snapshots N] [--quick]

1. Steady-state ingest of the largest real snapshot (1x) and a 3x copy of it: open all
   sessions once, then time ``Ingestor.ingest`` on successor documents (+15 s, every pilot
   moved), interleaved with ``orjson.loads`` of the same bytes. The first ingest into an
   empty database (every session new) is reported separately.
2. A simulated day (``SimulatedNetwork``, with transceivers): the per-snapshot cost of
   snapshots 20-80 against the 60 snapshots after the day.
3. Bytes on disk per stored position and per transceiver row after that day.

Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from dbsetup import BACKENDS, PG_ADMIN_URL, fresh_database, machine, sqlite_page_bytes, storage
from feeddocs import Json, load_document, multiplied, successors
from vatsim_collector.feed.sim_world import SimulatedNetwork
from vatsim_collector.ingest import IngestConfig, Ingestor, IngestResult, Outcome

LARGEST = Path("/work/shared/data/feeds/vatsim-data-20210103T142930Z.json")
RESULTS = Path(__file__).resolve().parent / "results"
DAY = 5760  # 24 h of 15 s snapshots
WINDOW = 60
EARLY_START = 20
WARMUP = 2  # successors ingested but not counted (first UPDATE/INSERT statements compiled)
SEED = 20210103
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)
RATIO_TARGET = {"sqlite": 10.0, "postgresql": 20.0}
SCALE_TARGET = 3.5
GROWTH_TARGET = 1.2
BYTES_TARGET = 60.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _ingestor(engine: Engine) -> Ingestor:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    return ingestor


def timed_ingest(
    ingestor: Ingestor, raw: bytes, tx: bytes | None = None
) -> tuple[float, IngestResult]:
    start = time.perf_counter()
    result = ingestor.ingest(raw, transceivers_raw=tx)
    elapsed = time.perf_counter() - start
    if result.outcome is not Outcome.INGESTED:
        raise RuntimeError(f"benchmark snapshot not ingested: {result}")
    return elapsed, result


def timed_loads(raw: bytes) -> float:
    start = time.perf_counter()
    orjson.loads(raw)
    return time.perf_counter() - start


# 1. per-snapshot cost --------------------------------------------------------------------


def snapshot_costs(
    backend: str, docs: dict[str, tuple[bytes, list[bytes]]], first_reps: int
) -> dict[str, Any]:
    """Interleaved timings for each variant; each variant has its own database."""
    first: dict[str, list[tuple[float, float]]] = {name: [] for name in docs}
    steady: dict[str, list[tuple[float, float]]] = {name: [] for name in docs}
    with ExitStack() as keep:
        ingestors: dict[str, Ingestor] = {}
        for rep in range(first_reps):
            for name, (opening, _) in docs.items():
                with ExitStack() as scratch:
                    last = rep == first_reps - 1
                    engine = (keep if last else scratch).enter_context(fresh_database(backend))
                    ingestor = _ingestor(engine)
                    loads = timed_loads(opening)
                    first[name].append((timed_ingest(ingestor, opening)[0], loads))
                    if last:
                        ingestors[name] = ingestor
        count = min(len(series) for _, series in docs.values())
        for i in range(count):
            for name, (_, series) in docs.items():
                loads = timed_loads(series[i])
                steady[name].append((timed_ingest(ingestors[name], series[i])[0], loads))
    out: dict[str, Any] = {}
    for name, (opening, _) in docs.items():
        counted = steady[name][WARMUP:]
        ingest, loads = _median([s[0] for s in counted]), _median([s[1] for s in counted])
        f_ingest, f_loads = (
            _median([s[0] for s in first[name]]),
            _median([s[1] for s in first[name]]),
        )
        out[name] = {
            "pilots": len(orjson.loads(opening)["pilots"]),
            "document_bytes": len(opening),
            "steady_samples": len(counted),
            "steady_ingest_ms": _ms(ingest),
            "steady_orjson_ms": _ms(loads),
            "steady_ratio": round(ingest / loads, 2),
            "steady_ingest_ms_min_max": [
                _ms(min(s[0] for s in counted)),
                _ms(max(s[0] for s in counted)),
            ],
            "first_ingest_samples": len(first[name]),
            "first_ingest_ms": _ms(f_ingest),
            "first_ingest_ms_each": [_ms(s[0]) for s in first[name]],
            "first_orjson_ms": _ms(f_loads),
            "first_ratio": round(f_ingest / f_loads, 2),
        }
    if {"1x", "3x"} <= out.keys():
        for kind in ("steady", "first"):
            ratio = out["3x"][f"{kind}_ingest_ms"] / out["1x"][f"{kind}_ingest_ms"]
            out[f"{kind}_3x_over_1x"] = round(ratio, 2)
    return out


# 2 + 3. a day of history -----------------------------------------------------------------


def _window(records: list[tuple[float, float, int, int]], start: int) -> dict[str, Any]:
    chosen = records[start : start + WINDOW]
    return {
        "snapshots": [start, start + len(chosen)],
        "ingest_ms": _ms(_median([r[0] for r in chosen])),
        "orjson_ms": _ms(_median([r[1] for r in chosen])),
        "pilots": _median([r[2] for r in chosen]),
        "transceivers": _median([r[3] for r in chosen]),
    }


def day_run(backend: str, seed_doc: Json, day: int, budget_s: float | None) -> dict[str, Any]:
    network = SimulatedNetwork(seed_doc, seed=SEED, start=START)
    records: list[tuple[float, float, int, int]] = []  # ingest s, loads s, pilots, transceivers
    reached: int | None = None
    with fresh_database(backend) as engine:
        ingestor = _ingestor(engine)
        bytes_before = sqlite_page_bytes(engine) if backend == "sqlite" else None
        began = time.perf_counter()
        i = 0
        while reached is None or i < reached + WINDOW:
            if reached is None and i >= EARLY_START + WINDOW:
                over_budget = budget_s is not None and time.perf_counter() - began > budget_s
                if i >= day or over_budget:
                    reached = i
            if i:
                network.tick()
            doc = network.data_document()
            raw = orjson.dumps(doc)
            tx = orjson.dumps(network.transceivers_document())
            loads = timed_loads(raw)
            elapsed, result = timed_ingest(ingestor, raw, tx)
            assert result.changes is not None
            records.append((elapsed, loads, len(doc["pilots"]), result.changes.transceiver_count))
            i += 1
            if i % 240 == 0:
                hour = records[-240:]
                print(
                    f"  [{backend}] hour {i // 240:2d}: median ingest "
                    f"{_ms(_median([r[0] for r in hour])):.1f} ms, "
                    f"{len(doc['pilots'])} pilots, {time.perf_counter() - began:.0f} s elapsed",
                    file=sys.stderr,
                    flush=True,
                )
        wall = time.perf_counter() - began
        growth = None if bytes_before is None else sqlite_page_bytes(engine) - bytes_before
        disk = {
            table: storage(engine, table, sqlite_fallback_bytes=growth)
            for table in ("positions", "transceivers")
        }
    assert reached is not None
    early, late = _window(records, EARLY_START), _window(records, reached)
    return {
        "day_snapshots_requested": day,
        "day_snapshots_reached": reached,
        "hours_reached": round(reached * 15 / 3600, 2),
        "budget_s": budget_s,
        "wall_s": round(wall, 1),
        "mean_ingest_ms": _ms(statistics.fmean(r[0] for r in records)),
        "early": early,
        "late": late,
        "late_over_early": round(late["ingest_ms"] / early["ingest_ms"], 3),
        "late_over_early_per_pilot": round(
            (late["ingest_ms"] / late["pilots"]) / (early["ingest_ms"] / early["pilots"]), 3
        ),
        "late_over_early_vs_orjson": round(
            (late["ingest_ms"] / late["orjson_ms"]) / (early["ingest_ms"] / early["orjson_ms"]), 3
        ),
        "hourly_median_ingest_ms": [
            _ms(_median([r[0] for r in records[h : h + 240]])) for h in range(0, reached, 240)
        ],
        "storage": disk,
    }


# reporting -------------------------------------------------------------------------------


def _verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "FAIL"


def targets(backend: str, result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what, measured, limit) for every target the issue sets."""
    rows: list[tuple[str, float, float]] = []
    costs, day = result.get("costs"), result.get("day")
    if costs:
        for name in ("1x", "3x"):
            if name in costs:
                what = f"steady ingest / orjson.loads, {name}"
                rows.append((what, costs[name]["steady_ratio"], RATIO_TARGET[backend]))
        if "steady_3x_over_1x" in costs:
            rows.append(("steady ingest 3x / 1x", costs["steady_3x_over_1x"], SCALE_TARGET))
    if day:
        label = f"ingest after {day['hours_reached']} h / early"
        rows.append((label, day["late_over_early"], GROWTH_TARGET))
        rows.append(
            ("bytes per position", day["storage"]["positions"]["bytes_per_row"], BYTES_TARGET)
        )
    return rows


def print_report(backend: str, result: dict[str, Any]) -> None:
    print(f"\n=== {backend} ===")
    costs = result.get("costs")
    if costs:
        print("Per snapshot (steady state = same sessions +15 s, pilots moved; medians)")
        print(
            f"{'':4} {'pilots':>6} {'KiB':>6} {'ingest ms':>10} {'orjson ms':>10} {'ratio':>6}"
            f" | {'empty-db ingest ms':>18} {'ratio':>6}"
        )
        for name in ("1x", "3x"):
            c = costs.get(name)
            if c:
                print(
                    f"{name:4} {c['pilots']:6d} {c['document_bytes'] / 1024:6.0f}"
                    f" {c['steady_ingest_ms']:10.1f} {c['steady_orjson_ms']:10.2f}"
                    f" {c['steady_ratio']:6.1f} | {c['first_ingest_ms']:18.1f}"
                    f" {c['first_ratio']:6.1f}"
                )
    day = result.get("day")
    if day:
        print(
            f"Day: {day['day_snapshots_reached']} snapshots ({day['hours_reached']} h) in"
            f" {day['wall_s']:.0f} s; mean ingest {day['mean_ingest_ms']:.1f} ms"
        )
        for label in ("early", "late"):
            w = day[label]
            print(
                f"  {label:5} snapshots {w['snapshots'][0]}-{w['snapshots'][1]}:"
                f" ingest {w['ingest_ms']:.1f} ms, orjson {w['orjson_ms']:.2f} ms,"
                f" {w['pilots']:.0f} pilots, {w['transceivers']:.0f} transceivers"
            )
        print(
            f"  late/early {day['late_over_early']:.3f}, per pilot"
            f" {day['late_over_early_per_pilot']:.3f},"
            f" vs orjson {day['late_over_early_vs_orjson']:.3f}"
        )
        for table, s in day["storage"].items():
            print(
                f"  {table:12} {s['rows']:>10,} rows  {s['bytes_per_row']:6.1f} B/row"
                f" (table {s['table_bytes_per_row']:.1f} + index {s['index_bytes_per_row']:.1f})"
            )
    print("Targets:")
    for what, value, limit in targets(backend, result):
        print(f"  {what:42} {value:8.2f}  <= {limit:<6g} {_verdict(value, limit)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--day-snapshots", type=int, default=None, help=f"default {DAY}")
    parser.add_argument("--quick", action="store_true", help="short run: 1 h day, fewer samples")
    parser.add_argument("--successors", type=int, default=None, help="steady-state documents")
    parser.add_argument("--first-reps", type=int, default=None, help="empty-database ingests")
    parser.add_argument("--pg-day-minutes", type=float, default=15.0, help="0 for no limit")
    parser.add_argument("--skip", choices=["costs", "day"], action="append", default=[])
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="admin URL for CREATE DATABASE")
    args = parser.parse_args(argv)
    day = args.day_snapshots or (240 if args.quick else DAY)
    if day < EARLY_START + WINDOW:
        parser.error(f"--day-snapshots must be at least {EARLY_START + WINDOW}")
    count = args.successors or (20 if args.quick else 40)
    reps = args.first_reps or (1 if args.quick else 3)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]

    seed_doc = load_document(LARGEST)
    tripled = multiplied(seed_doc, 3)
    docs = {
        name: (orjson.dumps(doc), successors(doc, count + WARMUP))
        for name, doc in (("1x", seed_doc), ("3x", tripled))
    }
    started = datetime.now(UTC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / f"ingest-{started:%Y%m%dT%H%M%SZ}.json"
    report: dict[str, Any] = {
        "started": started.isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(args.pg_url if "postgresql" in backends else None),
        "settings": {
            "day_snapshots": day,
            "successors": count,
            "warmup": WARMUP,
            "first_reps": reps,
            "seed": SEED,
            "start": START.isoformat(),
            "snapshot": LARGEST.name,
            "pg_day_minutes": args.pg_day_minutes,
        },
        "results": {},
    }
    for backend in backends:
        result: dict[str, Any] = {}
        report["results"][backend] = result
        if "costs" not in args.skip:
            print(f"[{backend}] per-snapshot costs ...", file=sys.stderr, flush=True)
            result["costs"] = snapshot_costs(backend, docs, reps)
        if "day" not in args.skip:
            budget = args.pg_day_minutes * 60 if backend == "postgresql" else None
            print(f"[{backend}] day of {day} snapshots ...", file=sys.stderr, flush=True)
            result["day"] = day_run(backend, seed_doc, day, budget or None)
        result["targets"] = [
            {"what": w, "value": v, "limit": lim, "pass": v <= lim}
            for w, v, lim in targets(backend, result)
        ]
        out_path.write_text(json.dumps(report, indent=2))
        print_report(backend, result)
    print(f"\nJSON: {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
