"""Whole-process cost of ``vatsim-collector replay`` of one tiny file, as a user meets it.

    .venv/bin/python bench/startup_bench.py [--runs N] [--src DIR ...]

Times ``python -m vatsim_collector replay FILE`` end to end (interpreter start, imports,
settings, migrations, the ingest, exit) on SQLite, three ways:

- ``fresh``: a new database file each run (every migration applied);
- ``existing``: a database already at the current revision (the usual re-run);
- ``ingested``: as ``existing``, but with ``VATSIM_SANITY_MIN_PILOTS=0`` so the file's two
  pilots are stored: the sectors and the airport reference are then loaded, because they are
  used.

Bytecode is cached as an installed package has it (pip compiles it at install): the children
write and read it under a temporary ``PYTHONPYCACHEPREFIX``, warmed by one untimed run of each
mode per tree, even if ``PYTHONDONTWRITEBYTECODE`` is set here, and without writing
``__pycache__`` into the trees. ``--no-bytecode-cache`` keeps this environment's setting (with
``PYTHONDONTWRITEBYTECODE=1``, every run compiles the project's modules again: ≈ 0.15 s more).

With several ``--src`` trees (say the main worktree and this one), their runs are interleaved
so that the ratio holds on a shared machine. Uses hyperfine's idea without needing it: N runs,
median and min. Writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dbsetup import RESULTS, machine

HERE = Path(__file__).resolve().parent
TINY = HERE.parents[1] / "shared" / "data" / "feeds" / "fixture-small-handmade.json"
MODES = ("fresh", "existing", "ingested")


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run(src: Path, tiny: Path, db: Path, extra_env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run: on a shared machine the CPU time
    swings less than the wall time, which waits for the other sessions' processes too."""
    env = {**os.environ, "PYTHONPATH": str(src), **extra_env}
    env.pop("VATSIM_DATABASE_URL", None)
    if "PYTHONPYCACHEPREFIX" in extra_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "vatsim_collector", "replay", str(tiny)]
    command += ["--database-url", f"sqlite:///{db}", "--no-progress"]
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode not in (0, 1):  # 1: the tiny file was quarantined (the point of it)
        raise RuntimeError(f"{src}: replay exited {done.returncode}: {done.stderr.decode()}")
    return elapsed, cpu


def measure(
    sources: list[Path], tiny: Path, runs: int, *, bytecode_cache: bool = True
) -> dict[str, Any]:
    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        str(s): {m: [] for m in MODES} for s in sources
    }
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        base = Path(tmp)
        env = {"PYTHONPYCACHEPREFIX": str(base / "pycache")} if bytecode_cache else {}
        ingest_env = {**env, "VATSIM_SANITY_MIN_PILOTS": "0"}
        for src in sources:  # one warm database per tree, at its own revision; bytecode cached
            _run(src, tiny, base / f"{abs(hash(str(src)))}.db", env)
            shutil.copyfile(base / f"{abs(hash(str(src)))}.db", base / "copy.db")
            _run(src, tiny, base / "copy.db", ingest_env)
        for _ in range(runs):
            for src in sources:
                warm = base / f"{abs(hash(str(src)))}.db"
                fresh = base / "fresh.db"
                fresh.unlink(missing_ok=True)
                times[str(src)]["fresh"].append(_run(src, tiny, fresh, env))
                times[str(src)]["existing"].append(_run(src, tiny, warm, env))
                copy = base / "copy.db"
                shutil.copyfile(warm, copy)
                times[str(src)]["ingested"].append(_run(src, tiny, copy, ingest_env))
    return {
        src: {
            mode: {
                "median_s": round(statistics.median(w for w, _ in values), 3),
                "min_s": round(min(w for w, _ in values), 3),
                "cpu_median_s": round(statistics.median(c for _, c in values), 3),
                "cpu_min_s": round(min(c for _, c in values), 3),
                "runs": len(values),
            }
            for mode, values in by_mode.items()
        }
        for src, by_mode in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--src", type=Path, action="append", help="source tree (src/) to time")
    parser.add_argument("--file", type=Path, default=TINY, help="the tiny snapshot")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep this environment's bytecode setting (PYTHONDONTWRITEBYTECODE) for the runs",
    )
    args = parser.parse_args()
    sources = [s.resolve() for s in (args.src or [HERE.parent / "src"])]
    figures = measure(sources, args.file, args.runs, bytecode_cache=not args.no_bytecode_cache)
    for src, by_mode in figures.items():
        print(src)
        for mode, f in by_mode.items():
            print(
                f"  {mode:9} median {f['median_s']:.3f} s  min {f['min_s']:.3f} s"
                f"  cpu median {f['cpu_median_s']:.3f} s  min {f['cpu_min_s']:.3f} s  ({f['runs']})"
            )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"startup-{time.strftime('%Y%m%dT%H%M%S')}.json"
    record = {
        "machine": machine(None),
        "bytecode_cache": not args.no_bytecode_cache,
        "load_average": os.getloadavg(),
        "figures": figures,
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
