"""What movement detection adds to a whole ingest, in steady state, against ``orjson.loads``.

    .venv/bin/python bench/movements_ingest_bench.py [--backend sqlite|postgresql|both]
                                                     [--successors 40]

Two fresh databases per backend, two ``Ingestor`` s, the same documents: one ingests without a
movement detector, the other with the one the settings build. Both open every session with the
largest shared snapshot (1,383 pilots), then ingest its successors (+15 s each, every pilot
moved along its heading, as ``bench/ingest_bench.py`` makes them), interleaved document by
document with ``orjson.loads`` of the same bytes. The difference of the median ingest times is
what detection adds: the samples, the detector's step, and the movement and state rows written
in the snapshot's transaction. The issue's target: <= 1x ``orjson.loads``. JSON goes to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import orjson

from dbsetup import BACKENDS, LARGEST_SNAPSHOT, RESULTS, fresh_database, machine
from feeddocs import load_document, successors
from vatsim_collector.config import load_settings
from vatsim_collector.movements.setup import build_detector
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome

WARMUP = 2  # successors ingested but not counted (statements compiled, caches filled)


def _ingest(ingestor: Ingestor, raw: bytes) -> float:
    started = time.perf_counter()
    result = ingestor.ingest(raw)
    elapsed = time.perf_counter() - started
    if result.outcome is not Outcome.INGESTED:
        raise RuntimeError(f"benchmark snapshot not ingested: {result}")
    return elapsed


def run(backend: str, opening: bytes, series: list[bytes]) -> dict[str, Any]:
    times: dict[str, list[float]] = {"orjson.loads": [], "without": [], "with": []}
    with ExitStack() as stack:
        ingestors = {
            "without": Ingestor(stack.enter_context(fresh_database(backend)), IngestConfig()),
            "with": Ingestor(
                stack.enter_context(fresh_database(backend)),
                IngestConfig(),
                movements=build_detector(load_settings()),
            ),
        }
        for ingestor in ingestors.values():
            ingestor.restore()
            _ingest(ingestor, opening)
        for i, raw in enumerate(series):
            started = time.perf_counter()
            orjson.loads(raw)
            loads = time.perf_counter() - started
            ingested = {name: _ingest(ingestor, raw) for name, ingestor in ingestors.items()}
            if i >= WARMUP:
                times["orjson.loads"].append(loads)
                for name, seconds in ingested.items():
                    times[name].append(seconds)
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    added = med["with"] - med["without"]
    return {
        "median_ms": med,
        "added_ms": added,
        "added_over_loads": added / med["orjson.loads"],
        "samples": len(times["with"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--successors", type=int, default=40)
    args = parser.parse_args()
    doc = load_document(LARGEST_SNAPSHOT)
    opening = orjson.dumps(doc)
    series = successors(doc, args.successors + WARMUP)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    result: dict[str, Any] = {
        "bench": "movements_ingest",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "pilots": len(doc["pilots"]),
        "backends": {},
    }
    for backend in backends:
        found = run(backend, opening, series)
        result["backends"][backend] = found
        med = found["median_ms"]
        print(
            f"{backend}: orjson.loads {med['orjson.loads']:.2f} ms; ingest without movements"
            f" {med['without']:.1f} ms, with {med['with']:.1f} ms; added {found['added_ms']:.2f}"
            f" ms = {found['added_over_loads']:.2f}x orjson.loads (target <= 1x)"
        )
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"movements-ingest-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out_path.write_text(json.dumps(result, indent=2))
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
