"""ErrorManager.record() benchmark: cost per call against a trivial baseline in the same run.

    .venv/bin/python bench/errors_bench.py [--rounds N] [--calls N]

The baseline is what any error path pays anyway: construct the exception and ``str()`` it.
``record()`` is measured on the same exceptions (construction included, so the ratio is
"error path with the manager / error path without"), interleaved round by round with the
baseline, in two set-ups:

- ``logged``: structlog configured as in production (JSON lines, INFO) into /dev/null, so the
  one log line per error is rendered and written;
- ``unlogged``: the log line filtered out (level CRITICAL; the mix has no critical error):
  classification, scrubbing, counting and queueing only.

The manager has a real SQLite database; queued records are flushed between rounds (not
timed), and the cost of ``flush()`` per record is reported separately. Medians over rounds.
Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.feed.client import FeedHTTPStatusError, FeedTimeout
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
URL = "https://data.vatsim.net/v3/vatsim-data.json"


def _exceptions() -> list[Callable[[], BaseException]]:
    """A realistic mix: feed timeouts and HTTP errors, a wrapped DB error, a handler bug."""

    def wrapped() -> BaseException:
        try:
            raise RuntimeError("ingest failed for snapshot 1740830400000") from OSError(
                111, "Connection refused"
            )
        except RuntimeError as exc:
            return exc

    return [
        lambda: FeedTimeout(f"{URL}: timed out after 10s (ReadTimeout)"),
        lambda: FeedHTTPStatusError(f"{URL}: HTTP 503 Service Unavailable", 503),
        wrapped,
        lambda: ValueError("summaries: unexpected None for field 'arrival'"),
    ]


def _configure_logging(logged: bool, sink: Any) -> None:
    level = logging.INFO if logged else logging.CRITICAL
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )


def _round(calls: int, action: Callable[[int], object]) -> float:
    started = time.perf_counter_ns()
    for i in range(calls):
        action(i)
    return (time.perf_counter_ns() - started) / calls / 1000


def measure(manager: ErrorManager, rounds: int, calls: int) -> dict[str, float]:
    makers = _exceptions()
    context = {"url": URL, "attempt": 2, "headers": {"Accept": "application/json"}}

    def baseline(i: int) -> object:
        return str(makers[i % len(makers)]())

    def record(i: int) -> object:
        return manager.record(
            makers[i % len(makers)](), service="poller", operation="fetch", context=context
        )

    base: list[float] = []
    rec: list[float] = []
    flush: list[float] = []
    for _ in range(rounds):
        base.append(_round(calls, baseline))
        rec.append(_round(calls, record))
        started = time.perf_counter_ns()
        written = manager.flush()
        flush.append((time.perf_counter_ns() - started) / max(written, 1) / 1000)
    baseline_us = statistics.median(base)
    record_us = statistics.median(rec)
    return {
        "baseline_us": baseline_us,
        "record_us": record_us,
        "ratio": record_us / baseline_us,
        "record_minus_baseline_us": record_us - baseline_us,
        "flush_us_per_record": statistics.median(flush),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as sink:
        engine = create_db_engine(f"sqlite:///{tmp}/errors.db")
        try:
            upgrade(engine)
            db = DatabaseService.for_engine(engine)
            for name, logged in (("logged", True), ("unlogged", False)):
                _configure_logging(logged, sink)
                manager = ErrorManager(ErrorRecordStore(db), window_size=10_000)
                measure(manager, 3, args.calls)  # warm-up
                results[name] = measure(manager, args.rounds, args.calls)
        finally:
            engine.dispose()
    print(f"ErrorManager.record(): medians of {args.rounds} rounds x {args.calls} calls")
    print(f"{'':10} {'baseline µs':>12} {'record µs':>10} {'ratio':>7} {'flush µs/rec':>13}")
    for name, r in results.items():
        print(
            f"{name:10} {r['baseline_us']:12.2f} {r['record_us']:10.2f} {r['ratio']:7.1f}"
            f" {r['flush_us_per_record']:13.2f}"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "benchmark": "errors",
        "at": stamp,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"errors-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
