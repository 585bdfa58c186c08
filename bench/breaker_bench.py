"""What a call through the error-management layer costs when nothing goes wrong.

    .venv/bin/python bench/breaker_bench.py [--calls 20000] [--repeats 15] [--quick]

In one event loop, and interleaved round by round so that drift hits every variant alike, it
times ``--calls`` awaits of a coroutine that returns at once:

* ``direct``          -- ``await noop()``
* ``breaker``         -- ``await breaker.call(noop)`` on a closed breaker
* ``breaker_ratio``   -- the same with ratio mode on (the outcome window is updated per call)
* ``breaker_sync``    -- ``before_call()`` + ``await noop()`` + ``on_success()`` (the thread API)
* ``retry``           -- ``await retry_async(noop, RetryPolicy())`` (tenacity, first try succeeds)
* ``recovery``        -- ``await RecoveryStrategy(retry, breaker, fallback).run(noop)``
* ``retry_1_failure`` -- ``retry_async`` of an operation that fails once, with a no-op sleep:
  what the tenacity loop itself costs once a retry is needed (for scale, not a hot path)

and reports, per variant, the median over ``--repeats`` rounds of the time per call, the
overhead over ``direct`` and the ratio to it. Prints a table and writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbsetup import machine, source_fingerprint
from vatsim_collector.errors.breaker import BreakerConfig, CircuitBreaker
from vatsim_collector.errors.recovery import LastGoodValue, RecoveryStrategy
from vatsim_collector.errors.retry import RetryPolicy, retry_async

RESULTS = Path(__file__).resolve().parent / "results"

SLOW_DIVISOR = 10  # retry_1_failure runs --calls / 10 calls per round

Batch = Callable[[int], Awaitable[None]]


async def noop() -> int:
    return 1


def _never(exc: BaseException) -> bool:
    return False


def _always(exc: BaseException) -> bool:
    return True


def _variants() -> dict[str, tuple[Batch, int]]:
    """name -> (coroutine running n calls, divisor of --calls for slow variants)."""
    breaker = CircuitBreaker("bench", BreakerConfig())
    ratio_breaker = CircuitBreaker("bench-ratio", BreakerConfig(failure_ratio=0.5))
    sync_breaker = CircuitBreaker("bench-sync", BreakerConfig())
    policy = RetryPolicy()
    last = LastGoodValue[int]()
    strategy = RecoveryStrategy[int](
        "bench",
        retry=policy,
        breaker=CircuitBreaker("bench-recovery", BreakerConfig()),
        fallback=last.fallback,
        is_transient=_never,
    )

    async def direct(n: int) -> None:
        for _ in range(n):
            await noop()

    async def through_breaker(n: int) -> None:
        call = breaker.call
        for _ in range(n):
            await call(noop)

    async def through_ratio_breaker(n: int) -> None:
        call = ratio_breaker.call
        for _ in range(n):
            await call(noop)

    async def through_sync_trio(n: int) -> None:
        before, success = sync_breaker.before_call, sync_breaker.on_success
        for _ in range(n):
            probe = before()
            await noop()
            success(probe=probe)

    async def through_retry(n: int) -> None:
        for _ in range(n):
            await retry_async(noop, policy, is_transient=_never)

    async def no_sleep(seconds: float) -> None:
        return None

    async def retry_after_one_failure(n: int) -> None:
        for _ in range(n):
            failed = False

            async def flaky() -> int:
                nonlocal failed
                if not failed:
                    failed = True
                    raise ConnectionError
                return 1

            await retry_async(flaky, policy, is_transient=_always, sleep=no_sleep)

    async def through_recovery(n: int) -> None:
        run = strategy.run
        for _ in range(n):
            await run(noop)

    return {
        "direct": (direct, 1),
        "breaker": (through_breaker, 1),
        "breaker_ratio": (through_ratio_breaker, 1),
        "breaker_sync": (through_sync_trio, 1),
        "retry": (through_retry, 1),
        "recovery": (through_recovery, 1),
        "retry_1_failure": (retry_after_one_failure, SLOW_DIVISOR),
    }


async def measure(calls: int, repeats: int) -> dict[str, Any]:
    variants = _variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for batch, div in variants.values():  # warm-up
        await batch(max(1, calls // div // 10))
    for _ in range(repeats):
        for name, (batch, div) in variants.items():
            n = max(1, calls // div)
            gc.collect()
            started = time.perf_counter_ns()
            await batch(n)
            samples[name].append((time.perf_counter_ns() - started) / n)
    direct = statistics.median(samples["direct"])
    results: dict[str, Any] = {}
    for name, per_call in samples.items():
        median = statistics.median(per_call)
        results[name] = {
            "calls_per_round": max(1, calls // variants[name][1]),
            "ns_per_call": round(median, 1),
            "ns_per_call_min": round(min(per_call), 1),
            "overhead_ns": round(median - direct, 1),
            "ratio_to_direct": round(median / direct, 2),
        }
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'variant':16} {'ns/call':>10} {'min':>10} {'overhead ns':>12} {'x direct':>9}")
    for name, r in results.items():
        print(
            f"{name:16} {r['ns_per_call']:10.0f} {r['ns_per_call_min']:10.0f}"
            f" {r['overhead_ns']:12.0f} {r['ratio_to_direct']:9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round (fast paths)")
    parser.add_argument("--repeats", type=int, default=15, help="rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="2,000 calls x 5 rounds")
    args = parser.parse_args()
    calls, repeats = (2_000, 5) if args.quick else (args.calls, args.repeats)

    results = asyncio.run(measure(calls, repeats))
    slow = calls // SLOW_DIVISOR
    print(f"{calls} calls x {repeats} rounds (retry_1_failure: {slow} calls); medians")
    print_table(results)

    stamp = datetime.now(UTC)
    report = {
        "benchmark": "breaker",
        "at": stamp.isoformat(),
        "calls": calls,
        "repeats": repeats,
        "machine": machine(None),
        "source_sha256": source_fingerprint(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"breaker-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
