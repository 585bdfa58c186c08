"""Commit → worker-done latency through the outbox, the relay, JetStream and a worker.

    .venv/bin/python bench/stream_latency_bench.py [--ticks 60] [--poll 0.5]
        [--pg-admin-url postgresql+psycopg://postgres@127.0.0.1/postgres]

Starts a NATS server of its own, a throwaway PostgreSQL database, the simulator (a new document
every 0.8 s), ``vatsim-collector run`` with ``VATSIM_NATS_URL`` and the ``latency`` handler of
``bench/latency_handler.py`` left to workers (``VATSIM_REMOTE_HANDLERS``), and one
``vatsim-collector worker --handler latency``. Each event's latency is the time the worker's
handler finished with it minus the millisecond in its UUIDv7 id (made in the snapshot's
transaction, just before the commit). Reports p50/p90/p99/max over every event, and over the
``snapshot.received`` events alone (one per snapshot). Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

import httpx2  # noqa: E402

from cluster_nodes import (  # noqa: E402 (the tests' process helpers, on the path above)
    SERVER_ENV,
    Feed,
    NodeProcess,
    NodeSet,
    Ticker,
    extra_postgresql_database,
    wait_until,
)
from natsworker import running_nats  # noqa: E402
from vatsim_collector.simulator.server import SimulatedNetwork  # noqa: E402
from vatsim_collector.simulator.thread import running_simulator  # noqa: E402

RESULTS = BENCH / "results"


def made_at(event_id: str) -> float:
    """The Unix time, in seconds, in a UUIDv7's first 48 bits."""
    return (uuid.UUID(event_id).int >> 80) / 1000.0


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "n": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument(
        "--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    os.environ[SERVER_ENV] = args.pg_admin_url
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    with (
        tempfile.TemporaryDirectory() as folder,
        running_nats(Path(folder)) as nats,
        extra_postgresql_database() as url,
        running_simulator(network=SimulatedNetwork(seed=9, start=start), speed=0) as base,
    ):
        latency_file = Path(folder) / "latency.txt"
        env = {
            "VATSIM_NATS_URL": nats.url,
            "VATSIM_NATS_STREAM": "BENCH_EVENTS",
            "VATSIM_HANDLER_MODULES": "latency_handler",
            "VATSIM_REMOTE_HANDLERS": "latency",
            "VATSIM_FEED_CADENCE_SECONDS": "15",
            "LATENCY_FILE": str(latency_file),
            "PYTHONPATH": os.pathsep.join(
                [str(BENCH), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        feed = Feed(base)
        feed.tick()
        nodes = NodeSet()
        worker: subprocess.Popen[bytes] | None = None
        try:
            collector = nodes.add(
                NodeProcess("leader", url, feed.status_url, Path(folder), args.poll, env)
            )
            collector.start()
            collector.wait_up()
            with (Path(folder) / "worker.log").open("ab") as log:
                worker = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "vatsim_collector",
                        "worker",
                        "--handler",
                        "latency",
                        "--database-url",
                        url,
                    ],
                    env={**os.environ, **env, "VATSIM_NODE_NAME": "worker"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            # The first snapshot opens every session at once: a burst of thousands of events,
            # measured apart from the steady state after it.
            with Ticker(feed):
                time.sleep(args.ticks * 0.8)
            wait_until(lambda: _quiet(latency_file), timeout=60)
            time.sleep(6)  # the consumer figures on /metrics are read at most every 5 s
            scraped = httpx2.get(f"{collector.url}/metrics", timeout=10).text
            consumer_metrics = [
                line for line in scraped.splitlines() if line.startswith("vatsim_consumer_")
            ]
        finally:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
            nodes.close()
        lines = [line.split() for line in latency_file.read_text().splitlines()]
    latencies = [float(done) - made_at(event_id) for event_id, done in lines]
    first_ms = min(made_at(event_id) for event_id, _ in lines)
    # Events of the first second of the run (the first snapshot's burst) apart.
    steady = [
        float(done) - made_at(event_id)
        for event_id, done in lines
        if made_at(event_id) > first_ms + 1.0
    ]
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "poll_interval": args.poll,
        "snapshots": args.ticks,
        "all_events": spread(latencies),
        "after_the_first_snapshot": spread(steady),
        "collector_metrics_of_the_consumer": consumer_metrics,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"stream-latency-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


def _quiet(path: Path) -> bool:
    """Whether the worker has handled nothing new for two seconds: the backlog is done."""
    if not path.exists() or not path.read_text():
        return False
    return time.time() - path.stat().st_mtime > 2.0


if __name__ == "__main__":
    main()
