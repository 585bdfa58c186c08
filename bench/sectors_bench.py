"""What assigning every pilot of a snapshot to its sector costs, next to parsing the snapshot.

    .venv/bin/python bench/sectors_bench.py [--snapshot FILE] [--repeats 51] [--quick]

The yardstick is ``orjson.loads`` of the same snapshot: the collector parses every document it
records, so a per-snapshot step is cheap when it is a small multiple of that. In one process,
interleaved round by round so that drift hits both alike, it times:

* ``orjson_loads`` -- ``orjson.loads(raw)`` of the snapshot file's bytes
* ``sectors``      -- the pilots' longitude, latitude and altitude pulled out of the parsed
  document into numpy arrays, plus ``SectorSet.default().assign(...)`` over them (the set is
  loaded once, outside the timing, as the collector does)

and reports the median of each over ``--repeats`` rounds and their ratio, plus the one-off time
to load the shipped VATSpy sector set. (The issue's budget is sectors and ATC contacts together
within 3x ``orjson.loads``; this measures the sectors' share.) Prints a table and writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from dbsetup import machine, source_fingerprint
from vatsim_collector.airspace.sectors import SectorSet

RESULTS = Path(__file__).resolve().parent / "results"
SNAPSHOT = Path("/work/shared/data/feeds/vatsim-data-20210103T142930Z.json")


def assign_pilots(sectors: SectorSet, doc: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    rows = [(p["longitude"], p["latitude"], p["altitude"]) for p in doc["pilots"]]
    xyz = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return sectors.assign(xyz[:, 0], xyz[:, 1], xyz[:, 2])


def _time_ns(call: Callable[[], object]) -> int:
    gc.collect()
    started = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - started


def measure(raw: bytes, repeats: int) -> dict[str, Any]:
    started = time.perf_counter_ns()
    sectors = SectorSet.default()
    load_ms = (time.perf_counter_ns() - started) / 1e6
    doc = orjson.loads(raw)
    found = assign_pilots(sectors, doc)  # warm-up (and the figures below)

    samples: dict[str, list[int]] = {"orjson_loads": [], "sectors": []}
    for _ in range(repeats):
        samples["orjson_loads"].append(_time_ns(lambda: orjson.loads(raw)))
        samples["sectors"].append(_time_ns(lambda: assign_pilots(sectors, doc)))

    loads = statistics.median(samples["orjson_loads"])
    results: dict[str, Any] = {}
    for name, values in samples.items():
        median = statistics.median(values)
        results[name] = {
            "ms": round(median / 1e6, 3),
            "ms_min": round(min(values) / 1e6, 3),
            "ratio_to_orjson_loads": round(median / loads, 3),
        }
    return {
        "pilots": len(doc["pilots"]),
        "pilots_in_a_sector": int((found >= 0).sum()),
        "distinct_sectors": len({sectors.sectors[i].name for i in found if i >= 0}),
        "default_set": {
            "load_ms": round(load_ms, 1),
            "sectors": len(sectors.sectors),
            "names": len(sectors.names()),
            "rejected": len(sectors.report.rejected),
            "repaired": len(sectors.report.repaired),
            "split_at_antimeridian": len(sectors.report.split_at_antimeridian),
        },
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    default = report["default_set"]
    print(
        f"default sector set: {default['sectors']} features ({default['names']} names), "
        f"loaded in {default['load_ms']:.1f} ms; rejected {default['rejected']}, "
        f"repaired {default['repaired']}, split {default['split_at_antimeridian']}"
    )
    print(
        f"{report['pilots']} pilots, {report['pilots_in_a_sector']} in a sector, "
        f"{report['distinct_sectors']} distinct sectors"
    )
    print(f"{'step':14} {'ms':>9} {'min ms':>9} {'x loads':>8}")
    for name, r in report["results"].items():
        print(f"{name:14} {r['ms']:9.3f} {r['ms_min']:9.3f} {r['ratio_to_orjson_loads']:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT, help="a vatsim-data JSON file")
    parser.add_argument("--repeats", type=int, default=51, help="rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="7 rounds")
    args = parser.parse_args()
    repeats = 7 if args.quick else args.repeats

    raw = args.snapshot.read_bytes()
    report = measure(raw, repeats)
    print(f"{args.snapshot.name}, {len(raw):,} bytes, {repeats} rounds; medians")
    print_table(report)

    stamp = datetime.now(UTC)
    out_report = {
        "benchmark": "sectors",
        "at": stamp.isoformat(),
        "snapshot": args.snapshot.name,
        "snapshot_bytes": len(raw),
        "repeats": repeats,
        "machine": machine(None),
        "source_sha256": source_fingerprint(),
        **report,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sectors-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(out_report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
