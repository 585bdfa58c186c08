"""Takeover time of a hot standby: two ``vatsim-collector run`` processes on one PostgreSQL
database, the leader killed (``kill -9``) or frozen (``SIGSTOP``) again and again.

    .venv/bin/python bench/failover_bench.py [--server postgresql+psycopg://postgres@127.0.0.1/postgres]
                                             [--kills 10] [--freezes 3] [--poll 1.0] [--lease 5]

For each kill it measures, from the signal: the standby's claim of the next epoch, and the
first snapshot stored under it (the next feed document the new leader stores). For a freeze,
the claim only: a frozen leader's lock lasts until its session's lease runs out. Every figure
is also given in poll intervals, the issue's unit ("takeover within 2 poll intervals"). The
simulator publishes a new document every 1.5 poll intervals. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster_nodes import (
    SERVER_ENV,
    Feed,
    NodeProcess,
    NodeSet,
    extra_postgresql_database,
)
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.simulator.thread import running_simulator
from vatsim_collector.store import cluster as sql
from vatsim_collector.store import schema as t

RESULTS = Path(__file__).resolve().parent / "results"


def quantiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--freezes", type=int, default=3)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=5.0)
    args = parser.parse_args()
    os.environ[SERVER_ENV] = args.server
    tick = 1.5 * args.poll
    env = {"VATSIM_LEADER_LEASE_SECONDS": str(args.lease), "VATSIM_FEED_CADENCE_SECONDS": "15"}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    chance = random.Random(7)
    claims: list[float] = []
    first_stores: list[float] = []
    freezes: list[float] = []
    with (
        extra_postgresql_database() as url,
        tempfile.TemporaryDirectory() as folder,
        running_simulator(network=SimulatedNetwork(seed=5, start=start), speed=0) as base,
    ):
        engine = create_engine(url)
        feed = Feed(base)
        feed.tick()
        nodes = NodeSet()

        def leadership() -> sql.Leadership:
            with engine.connect() as conn:
                return sql.read_leadership(conn)

        def stored_under(epoch: int) -> bool:
            with engine.connect() as conn:
                return (
                    conn.execute(
                        select(t.snapshots.c.id).where(t.snapshots.c.leader_epoch == epoch)
                    ).first()
                    is not None
                )

        try:
            for name in ("a", "b"):
                node = nodes.add(
                    NodeProcess(name, url, feed.status_url, Path(folder), args.poll, env)
                )
                node.start()
                node.wait_up()
            last_tick = time.monotonic()

            def ticking(seconds: float) -> None:
                nonlocal last_tick
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    if time.monotonic() - last_tick >= tick:
                        feed.tick()
                        last_tick = time.monotonic()
                    time.sleep(0.02)

            def wait_ticking(predicate: object, timeout: float) -> float:
                assert callable(predicate)
                began = time.monotonic()
                while time.monotonic() - began < timeout:
                    if predicate():
                        return time.monotonic()
                    ticking(0.02)
                raise SystemExit("timed out: no takeover")

            for index in range(args.kills + args.freezes):
                ticking(chance.uniform(2 * tick, 4 * tick))
                before = leadership()
                leader = nodes.nodes[str(before.leader_node)]
                frozen = index >= args.kills
                signalled = time.monotonic()
                if frozen:
                    leader.signal(signal.SIGSTOP)
                else:
                    leader.kill9()
                claimed = wait_ticking(lambda e=before.epoch: leadership().epoch > e, 120)
                (freezes if frozen else claims).append(claimed - signalled)
                if not frozen:
                    epoch = leadership().epoch
                    done = wait_ticking(lambda e=epoch: stored_under(e), 120)
                    first_stores.append(done - signalled)
                    leader.start()
                    leader.wait_up()
                else:
                    leader.signal(signal.SIGCONT)
                    ticking(args.lease)
        finally:
            nodes.close()
            engine.dispose()
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "poll_interval": args.poll,
        "lease": args.lease,
        "kill_to_claim_seconds": quantiles(claims),
        "kill_to_first_store_seconds": quantiles(first_stores),
        "freeze_to_claim_seconds": quantiles(freezes),
        "kill_to_first_store_poll_intervals": {
            k: round(v / args.poll, 2) if k != "n" else v
            for k, v in quantiles(first_stores).items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"failover-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
