"""What the event bus costs: dispatch throughput, and what it adds to ingesting a snapshot.

    .venv/bin/python bench/bus_bench.py [--events 100000] [--repeats 5] [--backend sqlite]

Dispatch: ``--events`` events published in one ``publish_many`` and delivered through one
no-op handler, and through ten, each handler with its timeout, breaker, retry policy and
metrics on (the defaults of ``HandlerOptions``); throughput = events / (publish + drain). The
issue's target is >= 50,000 events/s through one handler.

Ingest: the largest shared snapshot ingested into a fresh database (its first snapshot: every
pilot, controller and ATIS connects, about 3,000 domain events), then a successor 15 s later
(the steady state: the same sessions moved on, one event), each published to the service's
own event layer (the event-log handler writing every event to the database). Timed apart in
the same round: ingest proper, building the events, ``publish_many`` (what the collector waits
for) and the handlers finishing (the event log's writes, off the collector's path). Reported:
the bus's cost as a share of ingest proper, for the collector (build + publish) and all in
(build + publish + handled), each the median of per-round ratios; and the ``orjson.loads`` time
of the document, the yardstick the other benchmarks use. Writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dbsetup import BACKENDS, PG_ADMIN_URL, fresh_database, machine, source_fingerprint
from feeddocs import load_document, successors
from vatsim_collector.config import Settings
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import ControllerDisconnected
from vatsim_collector.events.subscription import HandlerOptions
from vatsim_collector.pipeline.domain_events import domain_events
from vatsim_collector.pipeline.event_layer import build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.database import DatabaseService

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds"
LARGEST = SHARED / "vatsim-data-20210103T142930Z.json"
TARGET_EVENTS_PER_S = 50_000


def _events(n: int) -> list[Event]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    payload = ControllerDisconnected(
        session_id=1, cid=1, callsign="EDDF_TWR", logon_time=at, first_seen=at, last_seen=at
    )
    return [Event.create(payload, time=at, source="bench") for _ in range(n)]


async def _dispatch_once(events: list[Event], handlers: int) -> float:
    bus = EventBus()

    async def noop(event: Event) -> None:
        return None

    options = HandlerOptions(queue_size=len(events) + 1)
    for i in range(handlers):
        bus.subscribe(f"noop-{i}", noop, "*", options=options)
    await bus.start()
    gc.collect()
    started = time.perf_counter()
    await bus.publish_many(events)
    await bus.join()
    elapsed = time.perf_counter() - started
    delivered = sum(m.successes for m in bus.metrics.handlers.values())
    assert delivered == len(events) * handlers, "not every event was delivered"
    await bus.stop(timeout=10)
    return elapsed


def dispatch(n: int, repeats: int) -> dict[str, Any]:
    events = _events(n)
    out: dict[str, Any] = {"events": n}
    for handlers in (1, 10):
        times = [asyncio.run(_dispatch_once(events, handlers)) for _ in range(repeats)]
        best, median = min(times), statistics.median(times)
        out[f"{handlers}_handlers"] = {
            "median_s": median,
            "events_per_s": n / median,
            "deliveries_per_s": n * handlers / median,
            "best_events_per_s": n / best,
            "us_per_delivery": median / (n * handlers) * 1e6,
        }
    return out


async def _ingest_round(backend: str, raw: bytes, successor: bytes) -> dict[str, float]:
    """One fresh database: the snapshot, then its successor, each ingested and published to
    the service's own event layer, with each part of the work timed on its own."""
    with fresh_database(backend) as engine:
        db = DatabaseService.for_engine(engine)
        ingestor = Ingestor(db, IngestConfig())
        ingestor.restore()
        layer = build_event_layer(Settings(), db)
        await layer.start()
        out: dict[str, float] = {}
        for name, doc in (("first", raw), ("steady", successor)):
            gc.collect()
            t0 = time.perf_counter()
            result = await asyncio.to_thread(ingestor.ingest, doc)
            t1 = time.perf_counter()
            await layer.bus.publish_many(result.events)
            t2 = time.perf_counter()
            await layer.bus.join()
            t3 = time.perf_counter()
            assert result.changes is not None
            # Building the events is part of ingest; time it again on the same changeset.
            b0 = time.perf_counter()
            domain_events(result.changes, result.airspace, correlation_id=None)
            build = time.perf_counter() - b0
            out[name] = t1 - t0 - build  # ingest proper, without building the events
            out[f"{name}_build"] = build
            out[f"{name}_publish"] = t2 - t1
            out[f"{name}_handled"] = t3 - t2
            out[f"{name}_events"] = len(result.events)
        logged = layer.log.count()
        assert logged == out["first_events"] + out["steady_events"], "events not logged"
        await layer.stop(30)
        return out


def ingest_cost(backend: str, repeats: int) -> dict[str, Any]:
    raw = LARGEST.read_bytes()
    successor = successors(load_document(LARGEST), 1)[0]
    loads = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        orjson.loads(raw)
        loads.append(time.perf_counter() - t0)
    rounds = [asyncio.run(_ingest_round(backend, raw, successor)) for _ in range(repeats)]
    out: dict[str, Any] = {"orjson_loads_ms": statistics.median(loads) * 1000}
    for name in ("first", "steady"):

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rounds)

        # Ratios are taken within each round (same database, same moment), then the median.
        collector = [(r[f"{name}_build"] + r[f"{name}_publish"]) / r[name] for r in rounds]
        handled = [
            (r[f"{name}_build"] + r[f"{name}_publish"] + r[f"{name}_handled"]) / r[name]
            for r in rounds
        ]
        out[name] = {
            "events": int(rounds[0][f"{name}_events"]),
            "ingest_ms": med(name) * 1000,
            "build_ms": med(f"{name}_build") * 1000,
            "publish_ms": med(f"{name}_publish") * 1000,
            "handled_ms": med(f"{name}_handled") * 1000,
            "collector_cost_ratio": statistics.median(collector),
            "handled_cost_ratio": statistics.median(handled),
        }
    return out


def report(result: dict[str, Any]) -> None:
    d = result["dispatch"]
    print(f"Dispatch of {d['events']} events (publish + drain; median of rounds)")
    for h in (1, 10):
        r = d[f"{h}_handlers"]
        print(
            f"  {h:>2} handler(s): {r['events_per_s']:>9,.0f} events/s"
            f"  {r['deliveries_per_s']:>9,.0f} deliveries/s  {r['us_per_delivery']:.2f} µs each"
        )
    ok = d["1_handlers"]["events_per_s"] >= TARGET_EVENTS_PER_S
    verdict = "met" if ok else "MISSED"
    print(f"  target >= {TARGET_EVENTS_PER_S:,} events/s through one handler: {verdict}")
    for backend, cost in result["ingest"].items():
        loads = cost["orjson_loads_ms"]
        print(f"Ingest of the largest snapshot, {backend} (orjson.loads {loads:.1f} ms)")
        print(
            f"  {'':6} {'events':>6} {'ingest ms':>10} {'build ms':>9} {'publish ms':>11}"
            f" {'handled ms':>11} {'collector +':>12} {'all +':>7}"
        )
        for name in ("first", "steady"):
            c = cost[name]
            print(
                f"  {name:>6} {c['events']:>6} {c['ingest_ms']:>10.1f} {c['build_ms']:>9.2f}"
                f" {c['publish_ms']:>11.2f} {c['handled_ms']:>11.2f}"
                f" {c['collector_cost_ratio']:>11.1%} {c['handled_cost_ratio']:>7.1%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    result: dict[str, Any] = {
        "bench": "bus",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(PG_ADMIN_URL if "postgresql" in backends else None),
        "source": source_fingerprint(),
        "dispatch": dispatch(args.events, args.repeats),
        "ingest": {b: ingest_cost(b, args.repeats) for b in backends},
    }
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bus-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
