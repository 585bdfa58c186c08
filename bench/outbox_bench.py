"""The outbox and the events stream: what the outbox adds to the leader's snapshot, and how many
events per second go through JetStream.

    .venv/bin/python bench/outbox_bench.py [--backend postgresql|sqlite|both] [--snapshots 60]
                                           [--events 50000] [--skip ingest|stream] [--pg-url URL]

1. Ingest, outbox on vs off. A simulated network seeded from the largest shared snapshot
   (``SimulatedNetwork``, with transceivers and the shipped sectors, so pilots connect and leave,
   file plans, enter sectors and contact controllers as on the real network), the documents
   encoded before any timing. Two databases of the backend, one with the outbox, one without,
   get the same documents, alternating which goes first; each timing is one
   ``Ingestor.ingest`` (decode to commit). After each snapshot the outbox rows are read and
   deleted as the relay would (timed apart: it is the relay's work, not the snapshot's). The
   first snapshot (every session new, thousands of events) is reported apart: median of
   ``--first-reps`` fresh pairs of databases.
2. Events per second through JetStream, against a nats-server of the bench's own (a free
   loopback port, a temp store, stopped by PID). ``--events`` real events (those of the first
   snapshot, copied with new ids):
   * raw: nats-py ``publish_async`` of the bodies, 500 in flight, no database: the yardstick;
   * relay: the outbox filled, then ``OutboxRelay`` until it is empty (read, publish, await
     acks, delete), alone;
   * consume: a durable pull consumer (``fetch(500)``, explicit ack of each) reading them all;
   * end to end: the outbox filled again, a pull consumer in its own process started, then the
     relay; until the consumer has every event.

Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Engine

from dbsetup import BACKENDS, PG_ADMIN_URL, fresh_database, machine, source_fingerprint
from feeddocs import load_document
from vatsim_collector.airspace.setup import build_airspace
from vatsim_collector.brokers.nats.connection import NatsConnection
from vatsim_collector.brokers.nats.relay import OutboxRelay
from vatsim_collector.brokers.nats.stream import StreamSpec, ensure_stream
from vatsim_collector.config import Settings
from vatsim_collector.events.event import Event, encode_event
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import outbox
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.outbox import EventOutbox

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds"
LARGEST = SHARED / "vatsim-data-20210103T142930Z.json"
SEED = 20210103
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)
WARMUP = 3
PREFIX = "vatsim.events"
TARGET_OUTBOX_OVERHEAD = 0.15


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


# 1. ingest, outbox on vs off ---------------------------------------------------------------


def documents(count: int) -> list[tuple[bytes, bytes]]:
    """The opening document and ``count`` successors, 15 s apart, data and transceivers."""
    network = SimulatedNetwork(load_document(LARGEST), seed=SEED, start=START)
    out = []
    for _ in range(count + 1):
        out.append(
            (orjson.dumps(network.data_document()), orjson.dumps(network.transceivers_document()))
        )
        network.tick()
    return out


def _ingestor(engine: Engine, with_outbox: bool) -> Ingestor:
    airspace = build_airspace(Settings())
    ingestor = Ingestor(engine, IngestConfig(), airspace=airspace.engine)
    if with_outbox:
        ingestor.outbox = EventOutbox(PREFIX)
    ingestor.restore()
    return ingestor


def _timed(ingestor: Ingestor, doc: tuple[bytes, bytes]) -> tuple[float, int, float]:
    """Wall seconds, events, and this process's CPU seconds of one ingest."""
    cpu, started = time.process_time(), time.perf_counter()
    result = ingestor.ingest(doc[0], transceivers_raw=doc[1])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if result.outcome is not Outcome.INGESTED:
        raise RuntimeError(f"benchmark snapshot not ingested: {result.outcome}")
    return elapsed, len(result.events), cpu


def _relay_work(db: DatabaseService) -> tuple[float, int, int]:
    """Read and delete the outbox as the relay would: seconds, rows, body bytes."""
    started = time.perf_counter()
    with db.read("bench.outbox.read") as conn:
        rows = outbox.read_batch(conn, 1_000_000)
    with db.write("bench.outbox.delete") as conn:
        outbox.delete_rows(conn, [r.id for r in rows])
    return time.perf_counter() - started, len(rows), sum(len(r.body) for r in rows)


def ingest_cost(backend: str, docs: list[tuple[bytes, bytes]], first_reps: int) -> dict[str, Any]:
    first_on: list[float] = []
    first_off: list[float] = []
    first_events = 0
    for rep in range(first_reps):
        with fresh_database(backend) as e_on, fresh_database(backend) as e_off:
            on, off = _ingestor(e_on, True), _ingestor(e_off, False)
            order = [(on, first_on), (off, first_off)]
            for ingestor, times in order if rep % 2 == 0 else order[::-1]:
                elapsed, first_events, _ = _timed(ingestor, docs[0])
                times.append(elapsed)
    with fresh_database(backend) as e_on, fresh_database(backend) as e_off:
        on, off = _ingestor(e_on, True), _ingestor(e_off, False)
        db_on = DatabaseService.for_engine(e_on)
        _timed(on, docs[0])
        _timed(off, docs[0])
        _relay_work(db_on)
        steady_on, steady_off, relay, events, body_bytes = [], [], [], [], []
        cpu_on, cpu_off = [], []
        for i, doc in enumerate(docs[1:]):
            pair: dict[str, float] = {}
            for name in ("on", "off") if i % 2 == 0 else ("off", "on"):
                elapsed, n, cpu = _timed(on if name == "on" else off, doc)
                pair[name], pair[f"{name}_cpu"] = elapsed, cpu
                if name == "on":
                    events.append(n)
            seconds, rows, size = _relay_work(db_on)
            if rows != events[-1]:
                raise RuntimeError("the outbox does not hold the snapshot's events")
            if i >= WARMUP:
                steady_on.append(pair["on"])
                steady_off.append(pair["off"])
                cpu_on.append(pair["on_cpu"])
                cpu_off.append(pair["off_cpu"])
                relay.append(seconds)
                body_bytes.append(size / max(rows, 1))
    ratios = [a / b for a, b in zip(steady_on, steady_off, strict=True)]
    med_on, med_off = statistics.median(steady_on), statistics.median(steady_off)
    return {
        "first": {
            "events": first_events,
            "reps": first_reps,
            "on_ms": _ms(statistics.median(first_on)),
            "off_ms": _ms(statistics.median(first_off)),
            "on_ms_each": [_ms(x) for x in first_on],
            "off_ms_each": [_ms(x) for x in first_off],
            "overhead": round(statistics.median(first_on) / statistics.median(first_off) - 1, 4),
        },
        "steady": {
            "snapshots": len(steady_on),
            "events_per_snapshot_median": statistics.median(events[WARMUP:]),
            "events_per_snapshot_mean": round(statistics.mean(events[WARMUP:]), 1),
            "events_per_snapshot_max": max(events[WARMUP:]),
            "outbox_body_bytes_mean": round(statistics.mean(body_bytes), 1),
            "on_ms": _ms(med_on),
            "off_ms": _ms(med_off),
            "overhead_of_medians": round(med_on / med_off - 1, 4),
            "overhead_paired_median": round(statistics.median(ratios) - 1, 4),
            "relay_read_delete_ms": _ms(statistics.median(relay)),
            "on_cpu_ms": _ms(statistics.median(cpu_on)),
            "off_cpu_ms": _ms(statistics.median(cpu_off)),
            "cpu_overhead_of_medians": round(
                statistics.median(cpu_on) / statistics.median(cpu_off) - 1, 4
            ),
        },
    }


# 2. events/s through JetStream --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def nats_server() -> Iterator[str]:
    """A nats-server with JetStream of our own; stopped by its PID."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    with tempfile.TemporaryDirectory(prefix="vcbench-nats-") as tmp:
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("nats-server did not start") from None
                    time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def sample_events(n: int) -> list[Event]:
    """``n`` real events: those of the largest snapshot's first ingest, copied with new ids."""
    with fresh_database("sqlite") as engine:
        result = _ingestor(engine, False).ingest(LARGEST.read_bytes())
    base = result.events
    out = []
    while len(out) < n:
        for event in base[: n - len(out)]:
            out.append(
                Event.create(
                    event.payload,
                    time=event.time,
                    source=event.source,
                    correlation_id=event.correlation_id,
                )
            )
    return out


def _fill(db: DatabaseService, events: list[Event]) -> None:
    box = EventOutbox(PREFIX)
    for start in range(0, len(events), 5000):
        with db.write("bench.fill") as conn:
            box.write(conn, events[start : start + 5000], snapshot_id=None)


async def _raw_publish(url: str, events: list[Event]) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, StreamSpec("BENCH_RAW", ("raw.>",), duplicate_window_seconds=600))
        bodies = [(f"raw.{e.type}", encode_event(e), e.id) for e in events]
        started = time.perf_counter()
        for i in range(0, len(bodies), 500):
            futures = [
                await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
                for subject, body, msg_id in bodies[i : i + 500]
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await nc.close()


async def _relay(
    url: str, db: DatabaseService, spec: StreamSpec, expected: int
) -> tuple[float, float]:
    """Relay until ``expected`` events are out: seconds taken, and the wall time it started."""
    connection = NatsConnection(url, name="bench-relay")
    await connection.start()
    await connection.wait_connected(10)
    relay = OutboxRelay(db, connection, spec, batch_size=500, idle_interval=0.01)
    wall, started = time.time(), time.perf_counter()
    relay.start()
    try:
        while relay.published + relay.duplicates < expected:  # noqa: ASYNC110 (its counters)
            await asyncio.sleep(0.002)
        return time.perf_counter() - started, wall
    finally:
        await relay.stop(30)
        await connection.close()


async def consume(url: str, stream: str, durable: str, n: int, deliver_new: bool) -> float:
    """Fetch and ack ``n`` messages with a durable pull consumer; seconds from the first
    message to the last ack (flushed). Prints ``ready`` once subscribed and ``done <wall
    time>`` at the end, for the end-to-end run in another process."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        policy = DeliverPolicy.NEW if deliver_new else DeliverPolicy.ALL
        sub = await js.pull_subscribe(
            f"{PREFIX}.>",
            durable=durable,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=policy),
        )
        print("ready", flush=True)
        got = 0
        started: float | None = None
        while got < n:
            try:
                messages = await sub.fetch(batch=500, timeout=2)
            except nats.errors.TimeoutError:
                continue
            if started is None:
                started = time.perf_counter()
            for msg in messages:
                await msg.ack()
            got += len(messages)
        await nc.flush()
        print(f"done {time.time()!r}", flush=True)
        return time.perf_counter() - (started or 0.0)
    finally:
        await nc.close()


async def _create(url: str, spec: StreamSpec) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream(), spec)
    finally:
        await nc.close()


def _end_to_end(url: str, db: DatabaseService, spec: StreamSpec, events: list[Event]) -> float:
    _fill(db, events)
    consumer = subprocess.Popen(
        [sys.executable, __file__, "--consume", url, spec.name, "e2e", str(len(events))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert consumer.stdout is not None
        if consumer.stdout.readline().strip() != "ready":
            raise RuntimeError("the consumer did not start")
        _, relay_started = asyncio.run(_relay(url, db, spec, len(events)))
        out, _ = consumer.communicate(timeout=600)
        done = [line for line in out.splitlines() if line.startswith("done ")]
        if consumer.returncode != 0 or not done:
            raise RuntimeError("the consumer did not finish")
        return float(done[0].split()[1]) - relay_started
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait(timeout=10)


def stream_throughput(backend: str, n: int) -> dict[str, Any]:
    events = sample_events(2 * n)
    first, second = events[:n], events[n:]
    spec = StreamSpec("BENCH_EVENTS", (f"{PREFIX}.>",), duplicate_window_seconds=600)
    with nats_server() as url, fresh_database(backend) as engine:
        db = DatabaseService.for_engine(engine)
        raw = asyncio.run(_raw_publish(url, first))
        # The first round of the relay creates the stream; the consumer needs it before.
        asyncio.run(_create(url, spec))
        _fill(db, first)
        relay, _ = asyncio.run(_relay(url, db, spec, n))
        consumed = asyncio.run(consume(url, spec.name, "alone", n, deliver_new=False))
        both = _end_to_end(url, db, spec, second)
    body = statistics.mean(len(encode_event(e)) for e in first)
    return {
        "events": n,
        "body_bytes_mean": round(body, 1),
        "raw_publish_per_s": round(n / raw),
        "relay_per_s": round(n / relay),
        "consume_per_s": round(n / consumed),
        "end_to_end_per_s": round(n / both),
        "relay_over_raw": round(raw / relay, 3),
    }


# report -------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    for backend, cost in result.get("ingest", {}).items():
        f, s = cost["first"], cost["steady"]
        print(f"Ingest with the outbox on vs off, {backend} (medians)")
        print(
            f"  first snapshot ({f['events']} events, {f['reps']} pairs): on {f['on_ms']:.1f} ms,"
            f" off {f['off_ms']:.1f} ms, outbox +{f['overhead']:.1%}"
        )
        print(
            f"  steady ({s['snapshots']} snapshots, {s['events_per_snapshot_median']} events each,"
            f" max {s['events_per_snapshot_max']}): on {s['on_ms']:.1f} ms,"
            f" off {s['off_ms']:.1f} ms, outbox +{s['overhead_of_medians']:.1%} (paired median"
            f" +{s['overhead_paired_median']:.1%}); relay read+delete"
            f" {s['relay_read_delete_ms']:.2f} ms per snapshot"
        )
        print(
            f"  steady, this process's CPU: on {s['on_cpu_ms']:.1f} ms, off {s['off_cpu_ms']:.1f}"
            f" ms, outbox +{s['cpu_overhead_of_medians']:.1%}"
        )
        if backend == "postgresql":
            ok = s["overhead_paired_median"] <= TARGET_OUTBOX_OVERHEAD
            print(f"  target: outbox adds <= 15 % on PostgreSQL: {'met' if ok else 'MISSED'}")
    for backend, t in result.get("stream", {}).items():
        size = t["body_bytes_mean"]
        print(f"JetStream, {t['events']} events of {size:.0f} B, outbox on {backend}")
        print(
            f"  raw publish {t['raw_publish_per_s']:,}/s  relay {t['relay_per_s']:,}/s"
            f" ({t['relay_over_raw']:.0%} of raw)  consume {t['consume_per_s']:,}/s"
            f"  relay + consumer at once {t['end_to_end_per_s']:,}/s"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--consume":
        url, stream, durable, n = sys.argv[2:6]
        asyncio.run(consume(url, stream, durable, int(n), deliver_new=True))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="postgresql")
    parser.add_argument("--snapshots", type=int, default=60)
    parser.add_argument("--first-reps", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--skip", choices=("ingest", "stream"), action="append", default=[])
    parser.add_argument("--pg-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "machine": machine(args.pg_url if "postgresql" in backends else None),
        "source_sha256": source_fingerprint(),
        "settings": vars(args),
    }
    if "ingest" not in args.skip:
        docs = documents(args.snapshots + WARMUP)
        result["ingest"] = {b: ingest_cost(b, docs, args.first_reps) for b in backends}
    if "stream" not in args.skip:
        result["stream"] = {b: stream_throughput(b, args.events) for b in backends}
    result["load_average"] = os.getloadavg()
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"outbox-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
