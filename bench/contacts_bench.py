"""What per-snapshot ATC contact matching costs, against the cost of just parsing the snapshot.

    .venv/bin/python bench/contacts_bench.py [--repeats 31] [--quick]

The issue's budget for sectors and contacts together is 3x ``orjson.loads`` of the snapshot;
this measures the contacts half. On the largest shared snapshot (2021-01-03 14:29:30Z), with
its transceivers document when one is stored beside it, otherwise the simulator's (seeded with
that snapshot, at tick 0, so the population is the snapshot's), it times, interleaved round by
round so drift hits every variant alike:

* ``orjson_loads`` -- ``orjson.loads(raw)`` of the snapshot file, the yardstick
* ``contacts``     -- from decoded ``Snapshot`` + transceivers: join by callsign, build the
  ``PilotRadio`` / ``ControllerRadio`` lists, ``match_contacts``
* ``match_only``   -- ``match_contacts`` on lists built beforehand (the matcher alone)

and reports medians, the ratio of each to ``orjson_loads`` and the number of contacts found.
Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dbsetup import machine, source_fingerprint
from vatsim_collector.airspace.contacts import (
    Contact,
    ControllerRadio,
    PilotRadio,
    controller_radio,
    match_contacts,
    pilot_radio,
)
from vatsim_collector.feed.decode import decode_snapshot, decode_transceivers
from vatsim_collector.feed.models import Snapshot, StationTransceivers
from vatsim_collector.simulator.world import SimulatedNetwork

RESULTS = Path(__file__).resolve().parent / "results"
FEEDS = Path("/work/shared/data/feeds")
SNAPSHOT = FEEDS / "vatsim-data-20210103T142930Z.json"
TRANSCEIVERS = FEEDS / "transceivers-data-20210103T142930Z.json"
SIM_SEED = 0


def load_world(snapshot_path: Path, transceivers_path: Path) -> tuple[bytes, bytes, bytes, str]:
    """(raw snapshot, data document, transceivers document, where the transceivers came from).

    Without a stored transceivers document the simulator renders both documents, so pilots'
    positions and tuned frequencies agree with each other as on the real feed.
    """
    raw = snapshot_path.read_bytes()
    if transceivers_path.exists():
        return raw, raw, transceivers_path.read_bytes(), str(transceivers_path)
    net = SimulatedNetwork(orjson.loads(raw), seed=SIM_SEED)
    data = orjson.dumps(net.data_document())
    radios = orjson.dumps(net.transceivers_document())
    return raw, data, radios, f"simulator (seed {SIM_SEED}, tick 0)"


def build_radios(
    snapshot: Snapshot, stations: list[StationTransceivers]
) -> tuple[list[PilotRadio], list[ControllerRadio]]:
    by_callsign = {s.callsign: s for s in stations}
    pilots = [
        pilot_radio(
            (p.cid, p.callsign, p.logon_time),
            p.latitude,
            p.longitude,
            by_callsign.get(p.callsign),
        )
        for p in snapshot.pilots
    ]
    controllers = [
        controller_radio(
            (c.cid, c.callsign, c.logon_time),
            c.frequency,
            c.facility,
            c.callsign,
            by_callsign.get(c.callsign),
        )
        for c in snapshot.controllers
    ]
    return pilots, controllers


def contacts_of(snapshot: Snapshot, stations: list[StationTransceivers]) -> list[Contact]:
    pilots, controllers = build_radios(snapshot, stations)
    return match_contacts(pilots, controllers)


def measure(
    raw: bytes, snapshot: Snapshot, stations: list[StationTransceivers], repeats: int
) -> dict[str, Any]:
    pilots, controllers = build_radios(snapshot, stations)
    variants: dict[str, Callable[[], object]] = {
        "orjson_loads": lambda: orjson.loads(raw),
        "contacts": lambda: contacts_of(snapshot, stations),
        "match_only": lambda: match_contacts(pilots, controllers),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in variants.items():
            gc.collect()
            started = time.perf_counter_ns()
            run()
            samples[name].append((time.perf_counter_ns() - started) / 1e6)
    base = statistics.median(samples["orjson_loads"])
    results: dict[str, Any] = {}
    for name, ms in samples.items():
        median = statistics.median(ms)
        results[name] = {
            "ms": round(median, 3),
            "ms_min": round(min(ms), 3),
            "ratio_to_orjson_loads": round(median / base, 3),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31, help="rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats

    raw, data, radios, radios_source = load_world(SNAPSHOT, TRANSCEIVERS)
    snapshot = decode_snapshot(data)
    stations = decode_transceivers(radios)
    contacts = contacts_of(snapshot, stations)
    _, controllers = build_radios(snapshot, stations)
    facility = {c.key: c.facility for c in controllers}
    by_facility = Counter(facility[c.controller] for c in contacts)

    results = measure(raw, snapshot, stations, repeats)
    print(
        f"{SNAPSHOT.name} ({len(raw):,} bytes): {len(snapshot.pilots)} pilots,"
        f" {len(snapshot.controllers)} controllers; transceivers from {radios_source}"
    )
    print(
        f"contacts: {len(contacts)} ({len({c.pilot for c in contacts})} pilots), by facility"
        f" {dict(sorted(by_facility.items()))}"
    )
    print(f"{repeats} interleaved rounds; medians")
    print(f"{'variant':14} {'ms':>9} {'min ms':>9} {'x orjson.loads':>15}")
    for name, r in results.items():
        print(f"{name:14} {r['ms']:9.3f} {r['ms_min']:9.3f} {r['ratio_to_orjson_loads']:15.3f}")

    stamp = datetime.now(UTC)
    report = {
        "benchmark": "contacts",
        "at": stamp.isoformat(),
        "snapshot": SNAPSHOT.name,
        "snapshot_bytes": len(raw),
        "transceivers": radios_source,
        "pilots": len(snapshot.pilots),
        "controllers": len(snapshot.controllers),
        "contacts": len(contacts),
        "pilots_in_contact": len({c.pilot for c in contacts}),
        "contacts_by_facility": {str(k): v for k, v in sorted(by_facility.items())},
        "repeats": repeats,
        "machine": machine(None),
        "source_sha256": source_fingerprint(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"contacts-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
