"""Back-fill: ``replay --no-bulk`` against ``replay --bulk`` on the same files, as a user runs
them (the CLI in a subprocess, whole process timed), on SQLite and PostgreSQL.

The files are a simulated stretch of the busiest shared snapshot with transceivers (the day
bench's ``SimulatedNetwork(largest snapshot, seed=20210103, start=2021-01-03T14:30Z)``), written
once before any timing. Each replay goes into a fresh, migrated database; airspace analytics are
on (the CLI's default). The day figure is the measured seconds per snapshot times 5,760: an
extrapolation, said as such wherever it is quoted.

    .venv/bin/python bench/bulk_replay_bench.py --snapshots 240 --backend both
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from dbsetup import (
    BACKENDS,
    LARGEST_SNAPSHOT,
    PG_ADMIN_URL,
    RESULTS,
    fresh_database,
    machine,
    source_fingerprint,
)
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot
from vatsim_collector.store import schema as t

SEED = 20210103
START = datetime(2021, 1, 3, 14, 30, tzinfo=UTC)
DAY = 5_760
TARGET_DAY_S = {"sqlite": 300.0, "postgresql": 480.0}


def write_files(folder: Path, count: int) -> None:
    network = SimulatedNetwork(load_seed_snapshot(LARGEST_SNAPSHOT), seed=SEED, start=START)
    for _ in range(count):
        stamp = network.now.strftime("%Y%m%dT%H%M%SZ")
        (folder / f"vatsim-data-{stamp}.json").write_bytes(orjson.dumps(network.data_document()))
        radios = orjson.dumps(network.transceivers_document())
        (folder / f"transceivers-data-{stamp}.json").write_bytes(radios)
        network.tick()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def replay(backend: str, folder: Path, mode: str, batch: int, pg_url: str) -> dict[str, Any]:
    with fresh_database(backend, pg_url) as engine:
        url = engine.url.render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
        env["VATSIM_DATABASE_URL"] = url
        command = [sys.executable, "-m", "vatsim_collector", "replay", str(folder)]
        command += [f"--{mode}", "--no-progress", "--batch-size", str(batch)]
        cpu, began = _children_cpu(), time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - began, _children_cpu() - cpu
        if done.returncode != 0:
            raise SystemExit(f"replay --{mode} failed: {done.stderr[-2000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        with engine.connect() as conn:
            rows = {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("positions", t.positions), ("transceivers", t.transceivers))
            }
    snapshots = summary["snapshots_ingested"]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "snapshots": snapshots,
        "ms_per_snapshot": 1000 * wall / snapshots,
        "snapshots_per_s": snapshots / wall,
        "day_s_extrapolated": wall / snapshots * DAY,
        "rows": rows,
        "bulk": summary.get("bulk"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--snapshots", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="admin URL for CREATE DATABASE")
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "started": started.isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(args.pg_url if "postgresql" in backends else None),
        "source_sha256": source_fingerprint(),
        "settings": {"snapshots": args.snapshots, "batch_size": args.batch_size, "seed": SEED},
        "load_average_at_start": os.getloadavg(),
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="vcbench-bulk-") as tmp:
        folder = Path(tmp)
        write_files(folder, args.snapshots)
        for backend in backends:
            runs = {
                mode: replay(backend, folder, mode, args.batch_size, args.pg_url)
                for mode in ("no-bulk", "bulk")
            }
            one, bulk = runs["no-bulk"], runs["bulk"]
            assert one["rows"] == bulk["rows"], "both replays stored the same rows"
            runs["speed_up"] = one["wall_s"] / bulk["wall_s"]
            report["results"][backend] = runs
            print(
                f"{backend}: {args.snapshots} snapshots; one by one {one['wall_s']:.1f} s"
                f" ({one['ms_per_snapshot']:.0f} ms each), bulk {bulk['wall_s']:.1f} s"
                f" ({bulk['ms_per_snapshot']:.0f} ms each): {runs['speed_up']:.2f}x;"
                f" a day extrapolated: {one['day_s_extrapolated']:.0f} s ->"
                f" {bulk['day_s_extrapolated']:.0f} s (target {TARGET_DAY_S[backend]:.0f} s)",
                flush=True,
            )
    report["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bulk-replay-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
