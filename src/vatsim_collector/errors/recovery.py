"""Recovery strategies: retry -> breaker -> fallback, each strategy counting its own outcomes.

``RecoveryStrategy.run(fn)`` works in this order:

1. The breaker (if any) guards the whole retried operation. While it is open, ``fn`` is not
   called at all and the run goes straight to the fallback.
2. Inside the breaker, every attempt of ``fn`` is retried while its error is transient
   (:func:`~vatsim_collector.errors.retry.retry_async` with the strategy's policy).
3. The final failure -- retries spent, or a permanent error -- is recorded on the breaker once
   (not once per attempt: a run is one outcome of the dependency), and then the fallback
   answers if there is one; otherwise the error propagates unchanged.

Cancellation is never recovered from. The optional ``on_outcome(name, succeeded)`` hook (where
the ``ErrorManager`` plugs in its ``record_recovery``) is called once per run in which recovery
was *needed* -- an attempt failed or the breaker rejected the call -- with ``succeeded`` telling
whether the caller still got a value (by a later attempt or by the fallback). Runs whose first
attempt succeeds are counted in :meth:`RecoveryStrategy.stats` but not reported to the hook.

:class:`LastGoodValue` is the "keep serving the last good snapshot and mark data stale"
fallback: wrap the primary operation with :meth:`LastGoodValue.track` so every good result is
remembered, and pass :meth:`LastGoodValue.fallback` as the strategy's fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from vatsim_collector.errors.breaker import CircuitBreaker, CircuitOpenError, now_utc
from vatsim_collector.errors.retry import RetryPolicy, retry_async

__all__ = ["LastGoodValue", "OutcomeHook", "RecoveryStrategy"]

T = TypeVar("T")

OutcomeHook = Callable[[str, bool], None]


class RecoveryStrategy(Generic[T]):
    def __init__(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        fallback: Callable[[BaseException], Awaitable[T]] | None = None,
        is_transient: Callable[[BaseException], bool] | None = None,
        on_outcome: OutcomeHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry is not None and is_transient is None:
            raise ValueError("a retry policy needs is_transient to tell which errors to retry")
        self.name = name
        self.retry = retry
        self.breaker = breaker
        self.fallback = fallback
        self.on_outcome = on_outcome
        self._is_transient = is_transient
        self._sleep = sleep
        self._clock = clock
        self.runs = 0
        self.attempts = 0
        self.successes = 0
        self.recovered = 0
        self.failures = 0
        self.rejected_by_breaker = 0
        self.fallbacks_used = 0
        self.fallback_failures = 0

    def stats(self) -> dict[str, Any]:
        """Counters since start: ``successes`` and ``failures`` are runs whose operation
        finally succeeded or failed (``recovered``: succeeded after a failed attempt);
        runs rejected by the breaker are counted apart from both."""
        return {
            "name": self.name,
            "runs": self.runs,
            "attempts": self.attempts,
            "successes": self.successes,
            "recovered": self.recovered,
            "failures": self.failures,
            "rejected_by_breaker": self.rejected_by_breaker,
            "fallbacks_used": self.fallbacks_used,
            "fallback_failures": self.fallback_failures,
        }

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        self.runs += 1
        calls = 0  # attempts of this run (``self.attempts`` is shared by concurrent runs)

        async def attempt() -> T:
            nonlocal calls
            calls += 1
            self.attempts += 1
            return await fn()

        async def retried() -> T:
            if self.retry is None or self._is_transient is None:
                return await attempt()
            return await retry_async(
                attempt,
                self.retry,
                is_transient=self._is_transient,
                sleep=self._sleep,
                clock=self._clock,
            )

        try:
            result = await (self.breaker.call(retried) if self.breaker else retried())
        except CircuitOpenError as exc:
            if calls == 0:  # rejected by this strategy's breaker, not raised by fn
                self.rejected_by_breaker += 1
            else:
                self.failures += 1
            return await self._fall_back(exc)
        except Exception as exc:
            self.failures += 1
            return await self._fall_back(exc)
        self.successes += 1
        if calls > 1:
            self.recovered += 1
            self._report(True)
        return result

    async def _fall_back(self, exc: Exception) -> T:
        if self.fallback is None:
            self._report(False)
            raise exc
        try:
            value = await self.fallback(exc)
        except Exception:
            self.fallback_failures += 1
            self._report(False)
            raise
        self.fallbacks_used += 1
        self._report(True)
        return value

    def _report(self, succeeded: bool) -> None:
        if self.on_outcome is not None:
            self.on_outcome(self.name, succeeded)


class LastGoodValue(Generic[T]):
    """The last good result of an operation, served (and marked stale) when it fails.

    ``stale`` is True from the first time the fallback serves the value until a fresh value
    is recorded; ``stale_since`` says since when, ``served_stale`` counts stale answers. With
    nothing recorded yet there is nothing to serve, and the fallback re-raises the error.
    """

    def __init__(self, *, wall_clock: Callable[[], datetime] = now_utc) -> None:
        self._wall_clock = wall_clock
        self._value: T | None = None
        self._has_value = False
        self.updated_at: datetime | None = None
        self.stale = False
        self.stale_since: datetime | None = None
        self.served_stale = 0
        self.last_error: BaseException | None = None

    @property
    def has_value(self) -> bool:
        return self._has_value

    @property
    def value(self) -> T | None:
        return self._value

    def record(self, value: T) -> T:
        """Remember a fresh good value; data is no longer stale."""
        self._value = value
        self._has_value = True
        self.updated_at = self._wall_clock()
        self.stale = False
        self.stale_since = None
        return value

    def track(self, fn: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """Wrap ``fn`` so that each value it returns is recorded."""

        async def tracked() -> T:
            return self.record(await fn())

        return tracked

    async def fallback(self, exc: BaseException) -> T:
        self.last_error = exc
        if not self._has_value:
            raise exc
        if not self.stale:
            self.stale = True
            self.stale_since = self._wall_clock()
        self.served_stale += 1
        return cast(T, self._value)  # set together with _has_value

    def status(self) -> dict[str, Any]:
        return {
            "has_value": self._has_value,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "stale": self.stale,
            "stale_since": self.stale_since.isoformat() if self.stale_since else None,
            "served_stale": self.served_stale,
            "last_error_type": type(self.last_error).__name__ if self.last_error else None,
        }
