"""Circuit breakers: one per dependency (feeds, database) and one per bus handler.

A breaker is *closed* while its dependency works. After ``failure_threshold`` consecutive
counted failures -- or, when ``failure_ratio`` is set, once at least ``ratio_min_calls`` of the
last ``ratio_window`` outcomes are known and that share of them failed -- it *opens*: calls are
rejected at once with :class:`CircuitOpenError` and the dependency is left alone. When the
cooldown has elapsed the breaker is *half-open* and lets exactly one probe call through;
concurrent callers are rejected meanwhile. A successful probe closes the breaker (consecutive
failures and the ratio window start again from zero); a failed probe opens it again for a new
cooldown.

Decisions worth knowing:

* ``counts`` decides which exceptions are failures. An exception it rejects -- and any
  ``BaseException`` that is not an ``Exception``, such as cancellation -- is *neutral*: it
  neither trips nor closes the breaker, and if it ends a probe the probe slot is simply freed.
* Outcomes of calls that were let through while the breaker was closed but finish after it
  opened are counted in the totals, but never decide a half-open probe: :meth:`before_call`
  returns whether the caller holds the probe, and :meth:`on_success` / :meth:`on_failure`
  take that flag back (``probe=None`` -- the caller does not track it -- is treated as the
  probe's result).
* A probe slot that is never reported (a thread died between ``before_call`` and its outcome)
  is considered abandoned after ``probe_timeout``, so a breaker cannot stay half-open forever.
* Times are kept on the monotonic ``clock``; :meth:`CircuitBreaker.snapshot` converts them to
  wall-clock datetimes for the API. Transitions carry the wall-clock time they happened.
* State is guarded by a ``threading.Lock`` held only for a few attribute updates (never across
  an ``await``), so the sync trio works from worker threads as well as from the event loop. The
  closed-state check in :meth:`before_call` takes no lock at all; each state change is logged
  once and passed to the listeners after the lock has been released.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from vatsim_collector.errors.breaker_types import (
    BreakerConfig,
    BreakerListener,
    BreakerSnapshot,
    BreakerState,
    BreakerTransition,
    CircuitOpenError,
    count_all,
    now_utc,
)

__all__ = [
    "BreakerConfig",
    "BreakerListener",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "count_all",
    "now_utc",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_CLOSED = BreakerState.CLOSED  # a module global: the lock-free closed-state check is the hot path

_LOG_MESSAGE = {
    BreakerState.OPEN: "circuit breaker opened",
    BreakerState.HALF_OPEN: "circuit breaker half-open: next call probes",
    BreakerState.CLOSED: "circuit breaker closed",
}


class CircuitBreaker:
    """An async-native circuit breaker with a sync-friendly ``before_call``/``on_*`` trio."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = now_utc,
        counts: Callable[[BaseException], bool] = count_all,
    ) -> None:
        self.name = name
        self.config = config if config is not None else BreakerConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._counts = counts
        self._lock = threading.Lock()
        self._listeners: list[BreakerListener] = []
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._failures = 0
        self._successes = 0
        self._rejected = 0
        self._resets = 0
        self._last_failure: float | None = None
        self._last_success: float | None = None
        self._last_error_type: str | None = None
        self._opened: float | None = None
        self._probe_started: float | None = None  # set while a half-open probe is running
        ratio = self.config.failure_ratio is not None
        self._window: deque[bool] | None = deque(maxlen=self.config.ratio_window) if ratio else None
        self._window_failures = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # -- listeners ---------------------------------------------------------------------------

    def add_listener(self, listener: BreakerListener) -> None:
        self._listeners.append(listener)

    # -- the async path ----------------------------------------------------------------------

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` through the breaker; raise :class:`CircuitOpenError` while open."""
        probe = self.before_call()
        try:
            result = await fn()
        except BaseException as exc:
            self.on_failure(exc, probe=probe)
            raise
        self.on_success(probe=probe)
        return result

    # -- the sync trio -----------------------------------------------------------------------

    def before_call(self) -> bool:
        """Admit a call or raise :class:`CircuitOpenError`; return True if it is the probe."""
        if self._state is _CLOSED:
            return False
        transition: BreakerTransition | None = None
        rejection: CircuitOpenError | None = None
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.OPEN:
                transition = self._half_open_if_due(now)
            state = self._state
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.OPEN:
                self._rejected += 1
                rejection = CircuitOpenError(self.name, self._seconds_to_probe(now))
            elif (
                self._probe_started is not None
                and now - self._probe_started < self.config.probe_timeout
            ):
                self._rejected += 1
                rejection = CircuitOpenError(self.name, 0.0)
            else:
                self._probe_started = now
        if transition is not None:
            self._emit(transition)
        if rejection is not None:
            raise rejection
        return True

    def on_success(self, *, probe: bool | None = None) -> None:
        """Report a successful call admitted by :meth:`before_call`."""
        now = self._clock()
        lock = self._lock
        lock.acquire()  # explicit acquire/release: measurably cheaper than ``with`` on 3.11
        try:
            self._successes += 1
            self._last_success = now
            state = self._state
            if state is _CLOSED:  # the hot path: no transition possible
                if self._consecutive_failures:
                    self._consecutive_failures = 0
                if self._window is not None:
                    self._record_outcome(self._window, failed=False)
                return
            if state is BreakerState.OPEN or probe is False:
                return  # a late answer to a call admitted before the breaker opened
            transition = self._move(BreakerState.CLOSED, "probe succeeded")
        finally:
            lock.release()
        self._emit(transition)

    def on_failure(self, exc: BaseException, *, probe: bool | None = None) -> None:
        """Report a failed call admitted by :meth:`before_call`."""
        counted = isinstance(exc, Exception) and self._counts(exc)
        transition: BreakerTransition | None = None
        with self._lock:
            state = self._state
            decides = state is BreakerState.HALF_OPEN and probe is not False
            if not counted:
                if decides:
                    self._probe_started = None  # neutral outcome: free the probe slot
                return
            now = self._clock()
            self._failures += 1
            self._last_failure = now
            self._last_error_type = type(exc).__name__
            if state is BreakerState.CLOSED:
                self._consecutive_failures += 1
                reason = self._trip_reason()
                if reason is not None:
                    transition = self._move(BreakerState.OPEN, reason)
            elif decides:
                self._consecutive_failures += 1
                transition = self._move(BreakerState.OPEN, "probe failed")
        if transition is not None:
            self._emit(transition)

    # -- inspection and control --------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cooldown has elapsed becomes half-open."""
        if self._state is BreakerState.OPEN:
            with self._lock:
                transition = self._half_open_if_due(self._clock())
            if transition is not None:
                self._emit(transition)
        return self._state

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            now = self._clock()
            transition = self._half_open_if_due(now)
            state = self._state
            wall_now = self._wall_clock()

            def wall(mono: float | None) -> datetime | None:
                return None if mono is None else wall_now - timedelta(seconds=now - mono)

            opened_at = wall(self._opened) if state is not BreakerState.CLOSED else None
            next_probe_at: datetime | None = None
            if state is BreakerState.OPEN:
                next_probe_at = wall_now + timedelta(seconds=self._seconds_to_probe(now))
            elif state is BreakerState.HALF_OPEN and self._probe_started is None:
                next_probe_at = wall_now
            snapshot = BreakerSnapshot(
                name=self.name,
                state=state,
                consecutive_failures=self._consecutive_failures,
                failures=self._failures,
                successes=self._successes,
                rejected=self._rejected,
                last_failure_at=wall(self._last_failure),
                last_success_at=wall(self._last_success),
                opened_at=opened_at,
                next_probe_at=next_probe_at,
                last_error_type=self._last_error_type,
                resets=self._resets,
            )
        if transition is not None:
            self._emit(transition)
        return snapshot

    def reset(self) -> None:
        """Close the breaker now (operator action); lifetime totals are kept."""
        with self._lock:
            self._resets += 1
            if self._state is BreakerState.CLOSED:
                self._clear_failures()
                return
            transition = self._move(BreakerState.CLOSED, "reset")
        self._emit(transition)

    # -- internals (called with the lock held) -----------------------------------------------

    def _seconds_to_probe(self, now: float) -> float:
        opened = self._opened if self._opened is not None else now
        return max(0.0, opened + self.config.cooldown - now)

    def _half_open_if_due(self, now: float) -> BreakerTransition | None:
        if self._state is BreakerState.OPEN and self._seconds_to_probe(now) <= 0.0:
            return self._move(BreakerState.HALF_OPEN, "cooldown elapsed")
        return None

    def _record_outcome(self, window: deque[bool], *, failed: bool) -> None:
        if len(window) == window.maxlen and window[0]:
            self._window_failures -= 1
        window.append(failed)
        if failed:
            self._window_failures += 1

    def _trip_reason(self) -> str | None:
        window = self._window
        if window is not None:
            self._record_outcome(window, failed=True)
        if self._consecutive_failures >= self.config.failure_threshold:
            return f"{self._consecutive_failures} consecutive failures"
        ratio = self.config.failure_ratio
        if window is not None and ratio is not None and len(window) >= self.config.ratio_min_calls:
            observed = self._window_failures / len(window)
            if observed >= ratio:
                return f"failure ratio {observed:.2f} over the last {len(window)} calls"
        return None

    def _clear_failures(self) -> None:
        self._consecutive_failures = 0
        if self._window is not None:
            self._window.clear()
        self._window_failures = 0

    def _move(self, current: BreakerState, reason: str) -> BreakerTransition:
        previous = self._state
        self._state = current
        self._probe_started = None
        if current is BreakerState.OPEN:
            self._opened = self._clock()
        elif current is BreakerState.CLOSED:
            self._opened = None
            self._clear_failures()
        return BreakerTransition(self.name, previous, current, self._wall_clock(), reason)

    # -- outside the lock --------------------------------------------------------------------

    def _emit(self, transition: BreakerTransition) -> None:
        level = log.warning if transition.current is BreakerState.OPEN else log.info
        level(
            _LOG_MESSAGE[transition.current],
            breaker=transition.name,
            previous=transition.previous.value,
            state=transition.current.value,
            reason=transition.reason,
        )
        for listener in list(self._listeners):
            try:
                listener(transition)
            except Exception:
                log.exception("circuit breaker listener failed", breaker=self.name)
