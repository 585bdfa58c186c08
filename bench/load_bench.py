"""HTTP load on the running service while it ingests: wrk against /api/flights and /api/status.

    .venv/bin/python bench/load_bench.py [--database-url URL] [--snapshots 5760] [--reuse]
                                         [--duration 30] [--connections 16] [--warmup 45]
                                         [--gzip]

1. Builds (unless ``--reuse``) a day of simulated traffic -- 5,760 snapshots at 15 s, with
   transceivers, sector occupancy, ATC contact and summaries -- through the real ingest path.
2. Serves the same simulated network, one tick per second, and starts ``vatsim-collector run``
   on that database polling it every second, so the collector ingests throughout the load.
3. Runs ``wrk`` (Debian's package) against ``/api/flights`` and then ``/api/status`` with
   ``--latency``, and reports requests/s, p50/p90/p99 latency and every error wrk counted
   (socket errors and non-2xx answers), plus how many snapshots the collector stored meanwhile.
   Without wrk, ``bench/httpload.py`` (the same closed loop, in Python) does the load.
4. Counts, per endpoint and for an idle window as long, the simulator's ticks that fell in
   the window and were not stored: a gap of more than one tick between consecutive stored
   snapshots (the simulator skips the ticks nobody fetched), so "every tick stored" reads as
   ``ticks_missed: 0``; the idle window shows what the machine alone costs.

The rate limit is switched off for the run (``VATSIM_RATE_LIMIT_PER_MINUTE=0``): it is there to
stop abuse, and this measures the service. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx2
import orjson
from sqlalchemy import func, select

from dbsetup import machine
from httpload import run_load
from vatsim_collector.airspace.setup import build_airspace
from vatsim_collector.config import Settings
from vatsim_collector.events.payloads import ControllerDisconnected, PilotDisconnected
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.simulator.thread import running_simulator
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.summaries_store import SummaryWriter

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2026, 6, 1, tzinfo=UTC)
TICK = timedelta(seconds=15)


def build_day(url: str, snapshots: int) -> SimulatedNetwork:
    """Ingest a day of the simulator; summaries as the service's handler would write them."""
    settings = Settings(database_url=url)
    engine = create_db_engine(url)
    upgrade(engine)
    db = DatabaseService.for_engine(engine)
    airspace = build_airspace(settings)
    ingestor = Ingestor(db, IngestConfig(), airspace=airspace.engine)
    ingestor.restore()
    writer = SummaryWriter(db)
    network = SimulatedNetwork(seed=5, start=START)
    started = time.perf_counter()
    for i in range(snapshots):
        result = ingestor.ingest(
            orjson.dumps(network.data_document()),
            transceivers_raw=orjson.dumps(network.transceivers_document()),
        )
        # What the service's summaries handler does with these events.
        for event in result.events:
            if isinstance(event.payload, PilotDisconnected):
                writer.flight(event.payload.flight_id)
            elif isinstance(event.payload, ControllerDisconnected):
                writer.controller(event.payload.session_id)
        network.tick()
        if i % 500 == 0:
            print(
                f"  built {i}/{snapshots} in {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
    engine.dispose()
    return network


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    latency = {f"p{m[0]}_ms": float(m[1]) * _UNITS[m[2]] for m in _LATENCY.findall(text)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return {
        "requests_per_s": float(rps[1]) if rps else None,
        "requests": int(total[1]) if total else None,
        **latency,
        "non_2xx": int(non2xx[1]) if non2xx else 0,
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
    }


def snapshots_stored(url: str) -> int:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.snapshots)).scalar_one())
    finally:
        engine.dispose()


def stored_times(url: str, after: datetime | None) -> list[datetime]:
    """Update times of the snapshots stored after ``after``, in order."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            query = select(t.snapshots.c.update_timestamp).order_by(t.snapshots.c.update_timestamp)
            if after is not None:
                query = query.where(t.snapshots.c.update_timestamp > after)
            return [row[0] for row in conn.execute(query)]
    finally:
        engine.dispose()


def ticks_missed(times: list[datetime]) -> int:
    """Simulator ticks between the first and last of ``times`` that no snapshot holds."""
    return sum(round((b - a) / TICK) - 1 for a, b in pairwise(times))


def load(base: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    """One endpoint under load: wrk when installed, else bench/httpload.py."""
    headers = ["Accept-Encoding: gzip"] if args.gzip else []
    if shutil.which("wrk") is None:
        return run_load(
            base + path,
            threads=2,
            connections=args.connections,
            duration=args.duration,
            headers=headers,
        )
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            *(arg for header in headers for arg in ("-H", header)),
            base + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(out)
    return parse_wrk(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=f"sqlite:///{RESULTS}/load-day.db")
    parser.add_argument("--snapshots", type=int, default=5760)
    parser.add_argument("--reuse", action="store_true", help="load the day built before")
    parser.add_argument("--build-only", action="store_true", help="build the day and stop")
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--gzip", action="store_true", help="ask for gzip (Accept-Encoding), as browsers do"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=45,
        help="seconds of collecting before the load: the first snapshot of a --reuse run ends"
        " every session of the day, and the summaries handler works through them",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: bench/httpload.py does the load", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    url = args.database_url
    if args.reuse:
        # After the latest stored snapshot: an earlier run went on past the built day, and
        # the collector refuses a document older than the latest it stored.
        network = SimulatedNetwork(seed=5, start=stored_times(url, None)[-1] + TICK)
    else:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        network = build_day(url, args.snapshots)
        if args.build_only:
            return 0
    before = snapshots_stored(url)
    port = free_port()
    env = {
        **os.environ,
        "VATSIM_DATABASE_URL": url,
        "VATSIM_RATE_LIMIT_PER_MINUTE": "0",
        # Nor may live collection quarantine the simulated day's documents for their age.
        "VATSIM_MAX_DOCUMENT_AGE_SECONDS": str(10 * 365 * 86_400),
        "VATSIM_LOG_LEVEL": "WARNING",
        "VATSIM_SPOOL_DIR": str(RESULTS / "load-spool"),
        # The simulated day is dated in the past: retention must not prune it during the run.
        "VATSIM_RETENTION_POSITIONS_DAYS": "0",
        "VATSIM_RETENTION_TRANSCEIVERS_DAYS": "0",
        "VATSIM_RETENTION_EVENTS_DAYS": "0",
    }
    report: dict[str, Any] = {
        "bench": "load",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(None),
        "database": url.split("://")[0],
        "day_snapshots": before,
        "duration_s": args.duration,
        "connections": args.connections,
        "accept_gzip": args.gzip,
    }
    with running_simulator(network=network, speed=15.0) as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vatsim_collector",
                "run",
                "--status-url",
                f"{sim}/status.json",
                "--port",
                str(port),
                "--poll-interval",
                "1",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx2.get(f"{base}/api/status").status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                time.sleep(0.2)
            time.sleep(args.warmup)
            # "idle": the same window without load, for the ticks the machine alone costs.
            for path in ("idle", "/api/flights", "/api/status"):
                # Wait for a snapshot stored after the start: the window is then measured
                # from a tick the collector did store.
                last = stored_times(url, None)[-1]
                for _ in range(100):
                    if stored_times(url, last):
                        break
                    time.sleep(0.2)
                start = stored_times(url, None)[-1]
                if path == "idle":
                    time.sleep(args.duration)
                    report[path] = {}
                else:
                    report[path] = load(base, path, args)
                time.sleep(3)  # the tick due at the end of the window, fetched and stored
                times = [start, *stored_times(url, start)]
                report[path]["snapshots_stored"] = len(times) - 1
                report[path]["ticks_missed"] = ticks_missed(times)
                print(path, json.dumps(report[path]), file=sys.stderr)
        finally:
            proc.terminate()
            # A clean stop drains the event handlers (30 s) after the poller (30 s).
            proc.wait(timeout=150)
    report["snapshots_ingested_during_load"] = snapshots_stored(url) - before
    out_path = RESULTS / f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out_path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
