"""What record-level decoding costs, next to parsing the snapshot.

    .venv/bin/python bench/decode_bench.py [--snapshot FILE] [--repeats 51]

The yardstick is ``orjson.loads`` of the same snapshot, as in the other per-snapshot benches.
In one process, interleaved round by round so that drift hits every case alike, it times
``decode_snapshot_records`` on:

* ``clean``      -- the real snapshot as served (the fast path: one typed decode with every
  column limit checked by msgspec, and one scan for escaped control characters)
* ``one_bad``    -- the same with one pilot's groundspeed at 70,000 (the per-record path)
* ``one_nan``    -- the same with one pilot's altitude ``NaN`` (no JSON parser takes the
  document whole: its sections are cut into records first)
* ``all_floats`` -- every pilot's altitude a float (every record coerced)

and reports the median of each over ``--repeats`` rounds and its ratio to ``orjson.loads``.
Prints a table and writes JSON to ``bench/results/``.
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

import orjson

from dbsetup import machine, source_fingerprint
from vatsim_collector.feed.decode import decode_snapshot_records

RESULTS = Path(__file__).resolve().parent / "results"
SNAPSHOT = Path("/work/shared/data/feeds/vatsim-data-20210103T142930Z.json")


def variants(raw: bytes) -> dict[str, bytes]:
    doc = orjson.loads(raw)
    one_bad = orjson.loads(raw)
    one_bad["pilots"][len(one_bad["pilots"]) // 2]["groundspeed"] = 70_000
    floats = orjson.loads(raw)
    for pilot in floats["pilots"]:
        pilot["altitude"] = float(pilot["altitude"]) + 0.25
    # orjson writes NaN as null; the feed's bad value is the bare token, so splice it in.
    marker = -987_654_321
    nan = orjson.loads(raw)
    nan["pilots"][len(nan["pilots"]) // 2]["altitude"] = marker
    return {
        "clean": orjson.dumps(doc),
        "one_bad": orjson.dumps(one_bad),
        "one_nan": orjson.dumps(nan).replace(str(marker).encode(), b"NaN", 1),
        "all_floats": orjson.dumps(floats),
    }


def _time_ns(call: Callable[[], object]) -> int:
    gc.collect()
    started = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - started


def measure(raw: bytes, repeats: int) -> dict[str, Any]:
    cases = variants(raw)
    dropped = {name: len(decode_snapshot_records(body)[1].dropped) for name, body in cases.items()}
    assert dropped == {"clean": 0, "one_bad": 1, "one_nan": 1, "all_floats": 0}, dropped
    timings: dict[str, list[int]] = {"orjson_loads": [], **{name: [] for name in cases}}
    for _ in range(repeats):
        timings["orjson_loads"].append(_time_ns(lambda: orjson.loads(raw)))
        for name, body in cases.items():
            timings[name].append(_time_ns(lambda body=body: decode_snapshot_records(body)))
    median_ms = {name: statistics.median(ns) / 1e6 for name, ns in timings.items()}
    base = median_ms["orjson_loads"]
    return {
        "median_ms": median_ms,
        "ratio_to_orjson_loads": {
            name: ms / base for name, ms in median_ms.items() if name != "orjson_loads"
        },
        "pilots": len(orjson.loads(raw)["pilots"]),
        "bytes": len(raw),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    parser.add_argument("--repeats", type=int, default=51)
    args = parser.parse_args()
    raw = args.snapshot.read_bytes()
    result = {
        "bench": "decode",
        "snapshot": args.snapshot.name,
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "source": source_fingerprint(),
        **measure(raw, args.repeats),
    }
    print(f"{args.snapshot.name}: {result['pilots']} pilots, {result['bytes']:,} bytes")
    print(f"{'case':<14}{'median ms':>12}{'x orjson.loads':>16}")
    print(f"{'orjson_loads':<14}{result['median_ms']['orjson_loads']:>12.2f}{1:>16.2f}")
    for name, ratio in result["ratio_to_orjson_loads"].items():
        print(f"{name:<14}{result['median_ms'][name]:>12.2f}{ratio:>16.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"decode-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
