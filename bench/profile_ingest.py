"""Flame graphs (py-spy) and per-snapshot figures of ingest as ``replay`` runs it.

    .venv/bin/python bench/profile_ingest.py [--backend sqlite|postgresql|both]
        [--snapshots N] [--backfill-files N] [--src DIR ...] [--no-profile] [--rounds R]

Two workloads, each in its own process, with the airspace analytics and movement detection
on (the defaults ``replay`` runs with):

- ``steady``: the busiest real snapshot ingested once (every session opened), then N
  successors (+15 s, every pilot moved) ingested one by one, each timed against
  ``orjson.loads`` of the same bytes: the table row "replay steady state per snapshot".
- ``backfill``: ``vatsim-collector replay`` of a folder of simulated files (data and
  transceivers documents, 15 s apart), the whole command.

With py-spy (default on) each process is recorded to ``bench/results/profile-*.speedscope.json``
(open at https://www.speedscope.app) and ``.svg``; ``--top`` prints the top self-time frames.
With several ``--src`` trees the steady workload alternates between them for ``--rounds``
rounds, so before/after figures come from one run on one (shared) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from dbsetup import BACKENDS, LARGEST_SNAPSHOT, RESULTS, fresh_database

HERE = Path(__file__).resolve().parent
PY_SPY = Path(sys.executable).with_name("py-spy")
WARMUP = 2


# -- the workloads, run in a child process -----------------------------------------------------


def _open(database_url: str) -> Any:
    from vatsim_collector.config import load_settings

    try:
        from vatsim_collector.pipeline.ingest_setup import open_ingestor
    except ImportError:  # a tree from before ingest_setup.py (the "before" of a comparison)
        from vatsim_collector.service import open_ingestor  # type: ignore[attr-defined,no-redef]
    ingestor, _ = open_ingestor(load_settings(database_url=database_url))
    ingestor.readers_on_other_threads = False  # as replay runs it (no API); ignored before
    return ingestor


def _attach_py_spy(out: Path, rate: int) -> subprocess.Popen[bytes]:
    """py-spy recording this very process from now on: the set-up (imports, the successors
    built, every session opened) stays out of the steady-state flame graph."""
    command = [str(PY_SPY), "record", "--nonblocking", "-r", str(rate), "--format", "speedscope"]
    command += ["-o", str(out), "--pid", str(os.getpid())]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached and sampling
    return spy


def steady_worker(
    database_url: str, count: int, profile: Path | None = None, rate: int = 100
) -> dict[str, Any]:
    from feeddocs import load_document, successors

    seed = load_document(LARGEST_SNAPSHOT)
    opening, series = orjson.dumps(seed), successors(seed, count + WARMUP)
    ingestor = _open(database_url)
    start = time.perf_counter()
    ingestor.ingest(opening)
    first = time.perf_counter() - start
    spy = _attach_py_spy(profile, rate) if profile is not None else None
    ingest_s: list[float] = []
    loads_s: list[float] = []
    for raw in series:
        start = time.perf_counter()
        orjson.loads(raw)
        loads_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = ingestor.ingest(raw)
        ingest_s.append(time.perf_counter() - start)
        if result.outcome.name != "INGESTED":
            raise RuntimeError(f"successor not ingested: {result.outcome}")
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=60)
    ingest_s, loads_s = ingest_s[WARMUP:], loads_s[WARMUP:]
    return {
        "pilots": len(seed["pilots"]),
        "first_ingest_ms": round(first * 1000, 2),
        "ingest_ms": [round(s * 1000, 3) for s in ingest_s],
        "loads_ms": [round(s * 1000, 3) for s in loads_s],
    }


# -- the parent ----------------------------------------------------------------------------------


def _url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=False))


def _spied(command: list[str], out: Path | None, rate: int) -> list[str]:
    if out is None:
        return command
    # --nonblocking: never pause the profiled process (its timings stay usable).
    spy = [str(PY_SPY), "record", "--nonblocking", "-r", str(rate), "--format", "speedscope"]
    return [*spy, "-o", str(out), "--", *command]


def run_child(
    command: list[str], src: Path, out: Path | None, rate: int, env: dict[str, str] | None = None
) -> str:
    environment = {**os.environ, "PYTHONPATH": f"{src}:{HERE}", **(env or {})}
    environment = {k: v for k, v in environment.items() if k != "VATSIM_DATABASE_URL"}
    done = subprocess.run(
        _spied(command, out, rate), env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{command[:4]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def top_frames(speedscope: Path, limit: int = 15) -> list[tuple[str, float]]:
    """The frames with the most self time (share of samples), over all threads."""
    doc = json.loads(speedscope.read_text())
    frames = doc["shared"]["frames"]
    counts: Counter[str] = Counter()
    total = 0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            leaf = frames[stack[-1]]
            where = f"{leaf['name']} ({Path(leaf.get('file', '?')).name}:{leaf.get('line', 0)})"
            counts[where] += weight
            total += weight
    return [(name, round(100.0 * n / total, 1)) for name, n in counts.most_common(limit)]


def inclusive(speedscope: Path, needles: list[str]) -> dict[str, float]:
    """Share of samples whose stack passes through a frame whose name contains each needle."""
    doc = json.loads(speedscope.read_text())
    frames = doc["shared"]["frames"]
    hits = dict.fromkeys(needles, 0)
    total = 0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            total += weight
            names = {frames[i]["name"] for i in stack}
            for needle in needles:
                if any(needle in n for n in names):
                    hits[needle] += weight
    return {k: round(100.0 * v / max(total, 1), 1) for k, v in hits.items()}


def simulated_files(folder: Path, count: int) -> None:
    from vatsim_collector.simulator.world import SimulatedNetwork

    seed = orjson.loads(LARGEST_SNAPSHOT.read_bytes())
    network = SimulatedNetwork(seed, seed=14, start=None)
    for _ in range(count):
        doc = network.data_document()
        stamp = doc["general"]["update"]
        (folder / f"vatsim-data-{stamp}.json").write_bytes(orjson.dumps(doc))
        tx = orjson.dumps(network.transceivers_document())
        (folder / f"transceivers-data-{stamp}.json").write_bytes(tx)
        network.tick()


NEEDLES = ["ingest", "decode", "_write", "execute", "step", "observe", "commit"]


def _profile_path(args: argparse.Namespace, stamp: str, tag: str) -> Path | None:
    return None if args.no_profile else RESULTS / f"profile-{stamp}-{tag}.speedscope.json"


def _findings(out: Path) -> dict[str, Any]:
    return {"file": out.name, "top_self": top_frames(out), "through": inclusive(out, NEEDLES)}


def steady_runs(args: argparse.Namespace, backend: str, sources: list[Path], stamp: str) -> Any:
    per_src = {str(s): {"ingest_ms": [], "loads_ms": []} for s in sources}
    profiles: dict[str, Any] = {}
    for rnd in range(args.rounds):
        for n, src in enumerate(sources):
            tag = f"{backend}-steady-src{n}-r{rnd}"
            out = _profile_path(args, stamp, tag)
            with fresh_database(backend) as engine:
                command = [sys.executable, str(Path(__file__).resolve()), "--worker", "steady"]
                command += ["--database-url", _url(engine), "--snapshots", str(args.snapshots)]
                command += ["--rate", str(args.rate)]
                if out is not None:
                    command += ["--profile-out", str(out)]
                engine.dispose()
                lines = run_child(command, src, None, args.rate).splitlines()
            result = json.loads(next(x for x in reversed(lines) if x.startswith("{")))
            per_src[str(src)]["ingest_ms"] += result["ingest_ms"]
            per_src[str(src)]["loads_ms"] += result["loads_ms"]
            if out is not None and rnd == 0:
                profiles[tag] = _findings(out)
    steady = {}
    for src, series in per_src.items():
        ingest = statistics.median(series["ingest_ms"])
        loads = statistics.median(series["loads_ms"])
        steady[src] = {
            "samples": len(series["ingest_ms"]),
            "ingest_ms": round(ingest, 2),
            "loads_ms": round(loads, 2),
            "ratio": round(ingest / loads, 2),
        }
        print(f"{backend} steady {src}: {steady[src]}", flush=True)
    return {"steady": steady, "profiles": profiles}


def backfill_runs(
    args: argparse.Namespace, backend: str, sources: list[Path], stamp: str
) -> dict[str, Any]:
    """Each tree replays the same folder into a fresh database, alternating for ``--rounds``."""
    runs: dict[str, Any] = {}
    seconds: dict[str, list[float]] = {str(s): [] for s in sources}
    with tempfile.TemporaryDirectory(prefix="vcprofile-") as tmp:
        folder = Path(tmp)
        simulated_files(folder, args.backfill_files)
        for rnd in range(args.rounds):
            for n, src in enumerate(sources):
                tag = f"{backend}-backfill-src{n}"
                out = _profile_path(args, stamp, tag) if rnd == 0 else None
                with fresh_database(backend) as engine:
                    url = _url(engine)
                    engine.dispose()
                    command = [sys.executable, "-m", "vatsim_collector", "replay", str(folder)]
                    command += ["--database-url", url, "--no-progress"]
                    start = time.perf_counter()
                    lines = run_child(command, src, out, args.rate).splitlines()
                    elapsed = time.perf_counter() - start
                seconds[str(src)].append(elapsed)
                summary = json.loads(next(x for x in reversed(lines) if x.startswith("{")))
                entry = runs.setdefault(tag, {"src": str(src), "files": args.backfill_files})
                entry["ingested"] = summary["snapshots_ingested"]
                entry["seconds_each"] = [round(x, 2) for x in seconds[str(src)]]
                entry["seconds"] = round(statistics.median(seconds[str(src)]), 2)
                if out is not None:
                    entry |= _findings(out)
                print(f"{backend} backfill {src}: {elapsed:.2f} s", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--snapshots", type=int, default=30, help="steady successors per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backfill-files", type=int, default=200)
    parser.add_argument("--src", type=Path, action="append")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "steady":
        found = steady_worker(args.database_url, args.snapshots, args.profile_out, args.rate)
        print(json.dumps(found))
        return
    sources = [s.resolve() for s in (args.src or [HERE.parent / "src"])]
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    report: dict[str, Any] = {"sources": [str(s) for s in sources], "backends": {}}
    for backend in backends:
        found: dict[str, Any] = {"steady": {}, "profiles": {}}
        if not args.skip_steady:
            found = steady_runs(args, backend, sources, stamp)
        if not args.skip_backfill:
            found["profiles"] |= backfill_runs(args, backend, sources, stamp)
        report["backends"][backend] = found
    out_json = RESULTS / f"profile-{stamp}.json"
    out_json.write_text(json.dumps(report, indent=2))
    for data in report["backends"].values():
        for tag, prof in data["profiles"].items():
            if "top_self" in prof:
                print(f"\n== {tag}: top self time (% of samples)")
                for name, share in prof["top_self"]:
                    print(f"  {share:5.1f}  {name}")
                print(f"  through: {prof['through']}")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
