"""The nearest-airport lookup on the largest shared snapshot, against ``orjson.loads`` of it.

    .venv/bin/python bench/airports_bench.py [--repeats 51] [--radius-nm 5]

The input is the largest shared snapshot (1,383 pilots), decoded once. Interleaved round by
round in one process, it times:

* ``orjson.loads`` -- of the snapshot file (the yardstick of every benchmark here);
* ``nearest``      -- ``AirportIndex.nearest`` for every pilot's position (arrays ready);
* ``placement``    -- building the position, altitude and speed arrays from the decoded pilots
  plus ``place_on_ground`` (the lookup, the height above the field, the ground rule): what a
  snapshot will pay for airports in ingest.

Loading the reference and building the index happen once per process; they are timed once, for
scale. The issue's target for all of its added work per snapshot: <= 1x ``orjson.loads``.
Writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from dbsetup import LARGEST_SNAPSHOT as LARGEST
from dbsetup import RESULTS, machine, source_fingerprint
from vatsim_collector.airports.ground import place_on_ground
from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.feed.decode import decode_snapshot
from vatsim_collector.feed.models import Pilot

TARGET = 1.0


def placement(index: AirportIndex, pilots: list[Pilot], radius_nm: float) -> int:
    lat = np.fromiter((p.latitude for p in pilots), float, len(pilots))
    lon = np.fromiter((p.longitude for p in pilots), float, len(pilots))
    alt = np.fromiter((p.altitude for p in pilots), float, len(pilots))
    speed = np.fromiter((p.groundspeed for p in pilots), float, len(pilots))
    return int(place_on_ground(index, lat, lon, alt, speed, radius_nm=radius_nm).on_ground.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--radius-nm", type=float, default=5.0)
    args = parser.parse_args()
    raw = LARGEST.read_bytes()
    pilots = decode_snapshot(raw).pilots
    t0 = time.perf_counter()
    reference = AirportReference.packaged()
    load_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    index = AirportIndex(reference)
    build_ms = (time.perf_counter() - t0) * 1000
    lat = np.array([p.latitude for p in pilots])
    lon = np.array([p.longitude for p in pilots])
    placed = int((index.nearest(lat, lon, radius_nm=args.radius_nm).index >= 0).sum())
    on_ground = placement(index, pilots, args.radius_nm)
    times: dict[str, list[float]] = {"orjson.loads": [], "nearest": [], "placement": []}
    for _ in range(args.repeats):
        gc.collect()
        t0 = time.perf_counter()
        orjson.loads(raw)
        times["orjson.loads"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.nearest(lat, lon, radius_nm=args.radius_nm)
        times["nearest"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        placement(index, pilots, args.radius_nm)
        times["placement"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    result: dict[str, Any] = {
        "bench": "airports",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "source": source_fingerprint(),
        "pilots": len(pilots),
        "airports": len(reference),
        "radius_nm": args.radius_nm,
        "within_radius": placed,
        "on_ground": on_ground,
        "median_ms": med,
        "reference_load_ms": load_ms,
        "index_build_ms": build_ms,
        "nearest_over_loads": med["nearest"] / med["orjson.loads"],
        "placement_over_loads": med["placement"] / med["orjson.loads"],
    }
    print(
        f"largest snapshot: {len(pilots)} pilots, {placed} within {args.radius_nm:g} nm of one of"
        f" {len(reference)} airports, {on_ground} on the ground"
    )
    for name, value in med.items():
        print(f"  {name:<13} {value:7.3f} ms  {value / med['orjson.loads']:5.2f}x orjson.loads")
    print(f"  once: reference load {load_ms:.0f} ms, index build {build_ms:.0f} ms")
    ok = result["placement_over_loads"] <= TARGET
    print(f"  target placement <= {TARGET:g}x orjson.loads: {'met' if ok else 'MISSED'}")
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"airports-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out_path.write_text(json.dumps(result, indent=2))
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
