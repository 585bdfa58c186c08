"""Retry with exponential backoff and full jitter, built on tenacity.

``retry_async`` / ``retry_sync`` call ``fn`` again -- for real, each attempt is a new call --
while it raises an error that ``is_transient`` accepts, up to ``policy.attempts`` calls and
within ``policy.total`` seconds. The wait before retry *n* (n = 1 for the first retry) is drawn
uniformly from ``[0, min(maximum, initial * 2 ** (n - 1))]`` ("full jitter",
``tenacity.wait_random_exponential``). A permanent error is raised after its one call, and the
last transient error is raised unchanged once the budget is spent (``reraise=True``).

The time budget uses the injected ``clock`` rather than tenacity's ``stop_after_delay``
(which reads ``time.monotonic`` directly, so it cannot be tested with a fake clock), and it
stops *before* a wait that would end past the budget instead of after overrunning it: no retry
starts later than ``total`` seconds after the first call. ``CancelledError``, ``KeyboardInterrupt``
and other non-``Exception`` errors are never retried, whatever ``is_transient`` says.

The first attempt runs outside tenacity, so a call that succeeds at once costs little more than
calling ``fn`` directly (``bench/breaker_bench.py``). Only when it fails transiently is a
tenacity loop built; it replays that failure as its attempt 1 and then calls ``fn`` again, so
attempt numbers, waits and the time budget (measured from before the first call) are exactly
those of a loop that tenacity had run from the start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

__all__ = ["RetryCallback", "RetryPolicy", "retry_async", "retry_sync"]

T = TypeVar("T")

#: Called before each wait with the number of the attempt that failed (1-based) and its error.
RetryCallback = Callable[[int, BaseException], None]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    initial: float = 0.5
    maximum: float = 10.0
    total: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial <= 0:
            raise ValueError("initial must be positive")
        if self.maximum < self.initial:
            raise ValueError("maximum must be at least initial")
        if self.total <= 0:
            raise ValueError("total must be positive")


class _StopBeforeTotal(stop_base):
    """Stop when the next wait would end ``total`` seconds or more after the first call."""

    def __init__(self, total: float, clock: Callable[[], float], start: float) -> None:
        self.total = total
        self.clock = clock
        self.start = start

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() - self.start + retry_state.upcoming_sleep >= self.total


def _retryable(is_transient: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and is_transient(exc)

    return check


def _before_sleep(on_retry: RetryCallback) -> Callable[[RetryCallState], None]:
    def report(state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if exc is not None:
            on_retry(state.attempt_number, exc)

    return report


class _Strategy(NamedTuple):
    stop: stop_base
    wait: wait_random_exponential
    retry: retry_if_exception
    before_sleep: Callable[[RetryCallState], None] | None


def _strategy(
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    on_retry: RetryCallback | None,
    clock: Callable[[], float],
    start: float,
) -> _Strategy:
    return _Strategy(
        stop=stop_after_attempt(policy.attempts) | _StopBeforeTotal(policy.total, clock, start),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        retry=retry_if_exception(_retryable(is_transient)),
        before_sleep=_before_sleep(on_retry) if on_retry is not None else None,
    )


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    is_transient: Callable[[BaseException], bool],
    on_retry: RetryCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Await ``fn()`` and retry it while it fails transiently, within ``policy``."""
    start = clock()
    try:
        return await fn()
    except Exception as exc:
        if policy.attempts == 1 or not is_transient(exc):
            raise
        first = exc
    replay = [first]

    async def attempt() -> T:
        if replay:
            raise replay.pop()
        return await fn()

    how = _strategy(policy, is_transient, on_retry, clock, start)
    retrying = AsyncRetrying(
        sleep=sleep,
        stop=how.stop,
        wait=how.wait,
        retry=how.retry,
        before_sleep=how.before_sleep,
        reraise=True,
    )
    return cast(T, await retrying(attempt))


def retry_sync(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    is_transient: Callable[[BaseException], bool],
    on_retry: RetryCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn()`` and retry it while it fails transiently, within ``policy`` (blocking)."""
    start = clock()
    try:
        return fn()
    except Exception as exc:
        if policy.attempts == 1 or not is_transient(exc):
            raise
        first = exc
    replay = [first]

    def attempt() -> T:
        if replay:
            raise replay.pop()
        return fn()

    how = _strategy(policy, is_transient, on_retry, clock, start)
    retrying = Retrying(
        sleep=sleep,
        stop=how.stop,
        wait=how.wait,
        retry=how.retry,
        before_sleep=how.before_sleep,
        reraise=True,
    )
    return retrying(attempt)
