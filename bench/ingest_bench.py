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
import itertools
import json
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine

from benchreport import print_report, targets
from dbsetup import (
    BACKENDS,
    PG_ADMIN_URL,
    copied_database,
    fresh_database,
    machine,
    source_fingerprint,
    sqlite_page_bytes,
    storage,
)
from feeddocs import Json, load_document, multiplied, successors
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, IngestResult, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork

LARGEST = Path("/work/shared/data/feeds/vatsim-data-20210103T142930Z.json")
RESULTS = Path(__file__).resolve().parent / "results"
DAY = 5760  # 24 h of 15 s snapshots
WINDOW = 60
EARLY_START = 20
WARMUP = 2  # successors ingested but not counted (first UPDATE/INSERT statements compiled)
LATE_WARMUP = 10  # after the day: lets the early-state copy open the then-current sessions
SEED = 20210103
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)


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
) -> tuple[float, float, IngestResult]:
    """Wall seconds, this process's CPU seconds, and the result of one ingest."""
    cpu, start = time.process_time(), time.perf_counter()
    result = ingestor.ingest(raw, transceivers_raw=tx)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.outcome is not Outcome.INGESTED:
        raise RuntimeError(f"benchmark snapshot not ingested: {result}")
    return elapsed, cpu, result


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
    steady: dict[str, list[tuple[float, float, float]]] = {name: [] for name in docs}
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
                elapsed, cpu, _ = timed_ingest(ingestors[name], series[i])
                steady[name].append((elapsed, loads, cpu))
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
            "steady_ingest_cpu_ms": _ms(_median([s[2] for s in counted])),
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
        for kind in ("steady", "steady_ingest_cpu", "first"):
            key = kind if kind.endswith("_cpu") else f"{kind}_ingest"
            ratio = out["3x"][f"{key}_ms"] / out["1x"][f"{key}_ms"]
            out[f"{kind}_3x_over_1x"] = round(ratio, 2)
        # Per-document pairs are taken moments apart, so their ratio is least affected by load.
        pairs = zip(steady["1x"][WARMUP:], steady["3x"][WARMUP:], strict=True)
        out["steady_3x_over_1x_paired_median"] = round(_median([b[0] / a[0] for a, b in pairs]), 2)
    return out


# 2 + 3. a day of history -----------------------------------------------------------------


class Sample(NamedTuple):
    ingest: float  # wall seconds
    cpu: float  # this process's CPU seconds (on PostgreSQL the server's work is not in it)
    loads: float  # orjson.loads of the same bytes, wall seconds
    pilots: int
    transceivers: int


def _window(samples: list[Sample], start: int, label: int | None = None) -> dict[str, Any]:
    chosen = samples[start : start + WINDOW]
    first = start if label is None else label
    return {
        "snapshots": [first, first + len(chosen)],
        "ingest_ms": _ms(_median([s.ingest for s in chosen])),
        "ingest_cpu_ms": _ms(_median([s.cpu for s in chosen])),
        "orjson_ms": _ms(_median([s.loads for s in chosen])),
        "pilots": _median([s.pilots for s in chosen]),
        "transceivers": _median([s.transceivers for s in chosen]),
    }


def _growth(early: dict[str, float], late: dict[str, float]) -> dict[str, float]:
    def ratio(key: str, per: str | None = None) -> float:
        scale = late[per] / early[per] if per else 1.0
        return round(late[key] / early[key] / scale, 3)

    return {
        "late_over_early": ratio("ingest_ms"),
        "late_over_early_per_pilot": ratio("ingest_ms", "pilots"),
        "late_over_early_vs_orjson": ratio("ingest_ms", "orjson_ms"),
        "late_over_early_cpu": ratio("ingest_cpu_ms"),
    }


def _documents(network: SimulatedNetwork) -> Iterator[tuple[bytes, bytes, int]]:
    """Encoded (data, transceivers, pilot count) for each 15 s tick, made outside any timing."""
    while True:
        doc = network.data_document()
        yield orjson.dumps(doc), orjson.dumps(network.transceivers_document()), len(doc["pilots"])
        network.tick()


def _sample(ingestor: Ingestor, raw: bytes, tx: bytes, loads: float, pilots: int) -> Sample:
    elapsed, cpu, result = timed_ingest(ingestor, raw, tx)
    assert result.changes is not None
    return Sample(elapsed, cpu, loads, pilots, result.changes.transceiver_count)


def day_run(backend: str, seed_doc: Json, day: int, budget_s: float | None) -> dict[str, Any]:
    """Ingest ``day`` simulated snapshots (fewer if over budget), then the ones that follow.

    Those that follow go, alternately first, into the full database and into a copy taken
    right after the early window: the same documents at the same moment, so the ratio of
    the two is the cost of a day of history free of drift in the machine's load.
    """
    docs = _documents(SimulatedNetwork(seed_doc, seed=SEED, start=START))
    samples: list[Sample] = []
    copy_samples: list[Sample] = []
    copy_at = EARLY_START + WINDOW
    with fresh_database(backend) as engine, ExitStack() as stack:
        ingestor = _ingestor(engine)
        bytes_before = sqlite_page_bytes(engine) if backend == "sqlite" else None
        began = time.perf_counter()
        while True:
            i = len(samples)
            if i == copy_at:
                copy_engine = stack.enter_context(copied_database(engine))
            over_budget = budget_s is not None and time.perf_counter() - began > budget_s
            if i >= copy_at and (i >= day or over_budget):
                break
            raw, tx, pilots = next(docs)
            samples.append(_sample(ingestor, raw, tx, timed_loads(raw), pilots))
            if (i + 1) % 240 == 0:
                print(
                    f"  [{backend}] hour {(i + 1) // 240:2d}: median ingest"
                    f" {_ms(_median([s.ingest for s in samples[-240:]])):.1f} ms,"
                    f" {pilots} pilots, {time.perf_counter() - began:.0f} s elapsed",
                    file=sys.stderr,
                    flush=True,
                )
        reached, wall = len(samples), time.perf_counter() - began
        for raw, tx, pilots in itertools.islice(docs, WINDOW):  # the late window, alone
            samples.append(_sample(ingestor, raw, tx, timed_loads(raw), pilots))
        early_state = _ingestor(copy_engine)
        for k in range(LATE_WARMUP + WINDOW):
            raw, tx, pilots = next(docs)
            loads = timed_loads(raw)
            pair = [(ingestor, samples), (early_state, copy_samples)]
            for target, out in pair if k % 2 == 0 else pair[::-1]:
                out.append(_sample(target, raw, tx, loads, pilots))
        growth = None if bytes_before is None else sqlite_page_bytes(engine) - bytes_before
        disk = {
            table: storage(engine, table, sqlite_fallback_bytes=growth)
            for table in ("positions", "transceivers")
        }
    early = _window(samples, EARLY_START)
    late = _window(samples, reached)
    # The interleaved phase: the full database's samples after the late window, the copy's.
    paired_start = reached + WINDOW + LATE_WARMUP
    paired = _window(samples, paired_start)
    copy_late = _window(copy_samples, LATE_WARMUP, label=paired_start)
    hours = range(0, reached, 240)
    return {
        "day_snapshots_requested": day,
        "day_snapshots_reached": reached,
        "hours_reached": round(reached * 15 / 3600, 2),
        "budget_s": budget_s,
        "wall_s": round(wall, 1),
        "mean_ingest_ms": _ms(statistics.fmean(s.ingest for s in samples[:reached])),
        "early": early,
        "late": late,
        **_growth(early, late),
        "paired_full": paired,
        "early_state_copy": {**copy_late, "copied_after_snapshots": copy_at},
        "full_over_early_state": round(paired["ingest_ms"] / copy_late["ingest_ms"], 3),
        "full_over_early_state_cpu": round(paired["ingest_cpu_ms"] / copy_late["ingest_cpu_ms"], 3),
        "hourly_median_ingest_ms": [
            _ms(_median([s.ingest for s in samples[h : h + 240]])) for h in hours
        ],
        "hourly_median_cpu_ms": [
            _ms(_median([s.cpu for s in samples[h : h + 240]])) for h in hours
        ],
        "storage": disk,
    }


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
        "source_sha256": source_fingerprint(),
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
    if source_fingerprint() != report["source_sha256"]:
        report["source_changed_during_run"] = True
        out_path.write_text(json.dumps(report, indent=2))
        print("WARNING: src/ changed while the benchmark ran", file=sys.stderr)
    print(f"\nJSON: {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
