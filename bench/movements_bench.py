"""Movement detection on the largest shared snapshot in steady state, against ``orjson.loads``.

    .venv/bin/python bench/movements_bench.py [--repeats 51]

The largest shared snapshot (1,383 pilots) is decoded once and shown to the detector once, so
every session has a state; then, interleaved round by round in one process, it times:

* ``orjson.loads`` -- of the snapshot file (the yardstick of every benchmark here);
* ``samples``      -- building one ``PilotSample`` per pilot from the decoded pilots;
* ``step``         -- ``MovementDetector.step`` over them, the same snapshot 15 s later each
  round (the vectorised airport lookup and classification, and the per-session state machine;
  in steady state nothing changes, so nothing is saved).

The issue's target for all of its added work per snapshot: <= 1x ``orjson.loads``. Writes JSON
to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from dbsetup import LARGEST_SNAPSHOT as LARGEST
from dbsetup import RESULTS, machine, source_fingerprint
from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.feed.decode import decode_snapshot
from vatsim_collector.feed.models import Pilot
from vatsim_collector.movements.detector import MovementDetector
from vatsim_collector.movements.model import PilotSample
from vatsim_collector.movements.rules import MovementRules

TARGET = 1.0


def samples(pilots: list[Pilot]) -> list[PilotSample]:
    return [
        PilotSample(
            (p.cid, p.callsign),
            p,
            p.latitude,
            p.longitude,
            p.altitude,
            p.groundspeed,
            p.heading,
            p.flight_plan.arrival if p.flight_plan else None,
        )
        for p in pilots
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=51)
    args = parser.parse_args()
    raw = LARGEST.read_bytes()
    pilots = decode_snapshot(raw).pilots
    detector = MovementDetector(AirportIndex(AirportReference.packaged()), MovementRules())
    at = datetime(2021, 1, 3, 14, 29, 30, tzinfo=UTC)
    first = detector.step(at, samples(pilots))
    times: dict[str, list[float]] = {"orjson.loads": [], "samples": [], "step": []}
    saved = 0
    for _ in range(args.repeats):
        at += timedelta(seconds=15)
        gc.collect()
        t0 = time.perf_counter()
        orjson.loads(raw)
        times["orjson.loads"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batch = samples(pilots)
        times["samples"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step = detector.step(at, batch)
        times["step"].append(time.perf_counter() - t0)
        saved += len(step.saved)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    total = med["samples"] + med["step"]
    result: dict[str, Any] = {
        "bench": "movements",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "source": source_fingerprint(),
        "pilots": len(pilots),
        "first_step_saved": len(first.saved),
        "steady_saved": saved,
        "median_ms": med,
        "samples_and_step_over_loads": total / med["orjson.loads"],
    }
    print(f"largest snapshot: {len(pilots)} pilots; first step saved {len(first.saved)} states")
    for name, value in med.items():
        print(f"  {name:<13} {value:7.3f} ms  {value / med['orjson.loads']:5.2f}x orjson.loads")
    ratio = result["samples_and_step_over_loads"]
    ok = ratio <= TARGET
    print(
        f"  samples + step {total:.3f} ms = {ratio:.2f}x; target <= {TARGET:g}x: "
        f"{'met' if ok else 'MISSED'}; states saved in steady state: {saved}"
    )
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"movements-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out_path.write_text(json.dumps(result, indent=2))
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
