"""What sectors + contacts add to ingesting a snapshot, against ``orjson.loads`` of it.

    .venv/bin/python bench/airspace_bench.py [--repeats 31]

The input is the largest shared snapshot (1,383 pilots). No transceivers document is stored
with it, so, as in ``contacts_bench.py``, the simulator seeded with it renders the data and
transceivers documents of tick 0. Both are decoded and tracked once, so the changeset is the
one live ingest would hand over. Then, interleaved round by round in one process, it times:

* ``orjson.loads``  -- of the real snapshot file (the yardstick of every benchmark here);
* ``steady``        -- ``LiveAirspace.apply`` on that changeset with the engine already holding
  every occupancy and contact (each later snapshot's case: everything continues): building
  the observations, one vectorised sector assignment, the occupancy state machine, the contact
  matcher and the contact state machine;
* ``first``         -- the same on a fresh engine (every pilot enters a sector, every contact
  starts), timed on new engines, for scale.

The issue's target: the added cost of sectors + contacts per largest snapshot <= 3x
``orjson.loads`` (same run). Writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from dbsetup import machine, source_fingerprint
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.live import LiveAirspace
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.feed.decode import decode_snapshot, decode_transceivers
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.tracking.changes import Changeset
from vatsim_collector.tracking.state import LiveState
from vatsim_collector.tracking.tracker import Tracker

RESULTS = Path(__file__).resolve().parent / "results"
LARGEST = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "feeds"
    / "vatsim-data-20210103T142930Z.json"
)
TARGET = 3.0


def changeset(raw: bytes) -> tuple[Changeset, int]:
    net = SimulatedNetwork(orjson.loads(raw), seed=0)
    data = orjson.dumps(net.data_document())
    radios = orjson.dumps(net.transceivers_document())
    tracker = Tracker(LiveState(), missed_to_end=4, reconnect_window=timedelta(minutes=30))
    changes = tracker.apply(decode_snapshot(data), decode_transceivers(radios))
    return changes, len(changes.pilots.present)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    raw = LARGEST.read_bytes()
    changes, pilots = changeset(raw)
    sectors = SectorSet.default()
    steady = LiveAirspace(AirspaceEngine(sectors))
    first_out = steady.apply(changes, transceivers_fetched=True)  # also warms the sector index
    entered, contacts = len(first_out.airspace.entered), len(first_out.airspace.contacts_started)
    times: dict[str, list[float]] = {"orjson.loads": [], "steady": [], "first": []}
    for _ in range(args.repeats):
        gc.collect()
        t0 = time.perf_counter()
        orjson.loads(raw)
        times["orjson.loads"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = steady.apply(changes, transceivers_fetched=True)
        times["steady"].append(time.perf_counter() - t0)
        assert not out.airspace.entered
        assert not out.airspace.contacts_started
        fresh = LiveAirspace(AirspaceEngine(sectors))
        t0 = time.perf_counter()
        fresh.apply(changes, transceivers_fetched=True)
        times["first"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    result: dict[str, Any] = {
        "bench": "airspace",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "source": source_fingerprint(),
        "pilots": pilots,
        "sector_entries": entered,
        "contacts": contacts,
        "median_ms": med,
        "steady_over_loads": med["steady"] / med["orjson.loads"],
        "first_over_loads": med["first"] / med["orjson.loads"],
    }
    print(f"largest snapshot: {pilots} pilots, {entered} in a sector, {contacts} contacts")
    for name, value in med.items():
        print(f"  {name:<13} {value:7.2f} ms  {value / med['orjson.loads']:5.2f}x orjson.loads")
    ok = result["steady_over_loads"] <= TARGET
    print(f"  target steady <= {TARGET:g}x orjson.loads: {'met' if ok else 'MISSED'}")
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"airspace-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out_path.write_text(json.dumps(result, indent=2))
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
