"""Retry, circuit breakers and recovery strategies, driven by fake clocks and recording sleeps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import structlog.testing

from vatsim_collector.errors.breaker import (
    BreakerConfig,
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitOpenError,
)
from vatsim_collector.errors.recovery import LastGoodValue, RecoveryStrategy
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy, retry_async, retry_sync

WALL_START = datetime(2024, 5, 1, 18, 0, tzinfo=UTC)
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


class DecodeError(Exception):
    pass


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


class FakeClock:
    """A monotonic clock and a matching wall clock that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wall(self) -> datetime:
        return WALL_START + timedelta(seconds=self.now - 1000.0)


class RecordingSleep:
    """An async sleep that records each delay and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.sync(seconds)

    def sync(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


class Flaky:
    """An operation that raises the given errors in turn, then returns ``result``."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def sync(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result

    async def __call__(self) -> str:
        return self.sync()


class AlwaysFails:
    def __init__(self, make: Callable[[], Exception] = Transient) -> None:
        self.make = make
        self.calls = 0
        self.raised: list[Exception] = []

    async def __call__(self) -> str:
        self.calls += 1
        exc = self.make()
        self.raised.append(exc)
        raise exc


def make_breaker(
    clock: FakeClock,
    counts: Callable[[BaseException], bool] | None = None,
    *,
    failure_threshold: int = 3,
    failure_ratio: float | None = None,
    ratio_window: int = 20,
    ratio_min_calls: int = 10,
    probe_timeout: float = 60.0,
) -> CircuitBreaker:
    config = BreakerConfig(
        failure_threshold=failure_threshold,
        failure_ratio=failure_ratio,
        ratio_window=ratio_window,
        ratio_min_calls=ratio_min_calls,
        cooldown=30.0,
        probe_timeout=probe_timeout,
    )
    if counts is None:
        return CircuitBreaker("feed", config, clock=clock, wall_clock=clock.wall)
    return CircuitBreaker("feed", config, clock=clock, wall_clock=clock.wall, counts=counts)


async def ok() -> str:
    return "ok"


async def fail_with(exc: Exception) -> str:
    raise exc


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Transient):
            await breaker.call(lambda: fail_with(Transient()))


# -- retry -----------------------------------------------------------------------------------


async def test_retry_really_reinvokes_until_success() -> None:
    fn = Flaky(Transient("1"), Transient("2"))
    sleep = RecordingSleep()
    retries: list[tuple[int, str]] = []
    result = await retry_async(
        fn,
        RetryPolicy(attempts=5),
        is_transient=is_transient,
        on_retry=lambda n, exc: retries.append((n, str(exc))),
        sleep=sleep,
    )
    assert result == "ok"
    assert fn.calls == 3
    assert len(sleep.delays) == 2
    assert retries == [(1, "1"), (2, "2")]


async def test_retry_stops_at_attempts_and_raises_the_last_error() -> None:
    fn = AlwaysFails()
    sleep = RecordingSleep()
    with pytest.raises(Transient) as caught:
        await retry_async(fn, RetryPolicy(attempts=4), is_transient=is_transient, sleep=sleep)
    assert fn.calls == 4
    assert len(sleep.delays) == 3
    assert caught.value is fn.raised[-1]


async def test_retry_stops_by_total_time() -> None:
    clock = FakeClock()
    start = clock.now
    started: list[float] = []

    async def slow_failure() -> str:
        started.append(clock.now - start)
        clock.advance(3.0)  # each attempt takes 3 s
        raise Transient

    policy = RetryPolicy(attempts=100, initial=0.001, maximum=0.001, total=10.0)
    with pytest.raises(Transient):
        await retry_async(
            slow_failure,
            policy,
            is_transient=is_transient,
            sleep=RecordingSleep(clock),
            clock=clock,
        )
    # attempts start at ~0, 3, 6 and 9 s; a fifth would start past the 10 s budget.
    assert len(started) == 4
    assert all(at < policy.total for at in started)


async def test_retry_does_not_sleep_past_the_total_budget() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    fn = AlwaysFails()
    policy = RetryPolicy(attempts=1000, initial=1.0, maximum=5.0, total=20.0)
    with pytest.raises(Transient):
        await retry_async(fn, policy, is_transient=is_transient, sleep=sleep, clock=clock)
    assert sum(sleep.delays) < policy.total
    assert 1 < fn.calls < 1000


async def test_retry_delays_are_full_jitter_within_the_exponential_bound() -> None:
    policy = RetryPolicy(attempts=7, initial=0.5, maximum=4.0, total=1e9)
    per_retry: list[list[float]] = [[] for _ in range(policy.attempts - 1)]
    for _ in range(60):
        sleep = RecordingSleep()
        with pytest.raises(Transient):
            await retry_async(AlwaysFails(), policy, is_transient=is_transient, sleep=sleep)
        assert len(sleep.delays) == policy.attempts - 1
        for n, delay in enumerate(sleep.delays):
            per_retry[n].append(delay)
    for n, delays in enumerate(per_retry):
        bound = min(policy.maximum, policy.initial * 2**n)
        assert all(0.0 <= d <= bound for d in delays), (n, bound, delays)
        # Full jitter: the whole interval is used, not a fixed or near-fixed backoff.
        assert min(delays) < bound * 0.4
        assert max(delays) > bound * 0.6


async def test_permanent_errors_are_raised_after_one_call() -> None:
    fn = AlwaysFails(Permanent)
    sleep = RecordingSleep()
    with pytest.raises(Permanent):
        await retry_async(fn, RetryPolicy(attempts=5), is_transient=is_transient, sleep=sleep)
    assert fn.calls == 1
    assert sleep.delays == []


async def test_cancellation_is_never_retried() -> None:
    fn = Flaky(asyncio.CancelledError())
    sleep = RecordingSleep()
    with pytest.raises(asyncio.CancelledError):
        await retry_async(fn, RetryPolicy(attempts=5), is_transient=lambda e: True, sleep=sleep)
    assert fn.calls == 1


def test_retry_sync_reinvokes_and_stops() -> None:
    clock = FakeClock()
    sleep = RecordingSleep(clock)
    fn = Flaky(Transient(), Transient())
    assert retry_sync(fn.sync, RetryPolicy(), is_transient=is_transient, sleep=sleep.sync) == "ok"
    assert fn.calls == 3
    assert len(sleep.delays) == 2

    failing = Flaky(*(Transient() for _ in range(10)))
    with pytest.raises(Transient):
        retry_sync(
            failing.sync,
            RetryPolicy(attempts=4),
            is_transient=is_transient,
            sleep=sleep.sync,
            clock=clock,
        )
    assert failing.calls == 4

    permanent = Flaky(Permanent())
    with pytest.raises(Permanent):
        retry_sync(permanent.sync, RetryPolicy(), is_transient=is_transient, sleep=sleep.sync)
    assert permanent.calls == 1


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="maximum"):
        RetryPolicy(initial=2.0, maximum=1.0)


# -- circuit breaker -------------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 2)
    assert await breaker.call(ok) == "ok"  # a success resets the consecutive count
    await trip(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.snapshot().consecutive_failures == 2
    await trip(breaker, 1)
    assert breaker.state is OPEN
    snap = breaker.snapshot()
    assert (snap.consecutive_failures, snap.failures, snap.successes) == (3, 5, 1)


async def test_open_breaker_rejects_without_calling() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(10.0)
    fn = Flaky()
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(fn)
    assert fn.calls == 0
    assert caught.value.name == "feed"
    assert caught.value.retry_after == pytest.approx(20.0)
    assert breaker.snapshot().rejected == 1
    assert breaker.state is OPEN


async def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(30.0)
    assert breaker.state is HALF_OPEN

    release = asyncio.Event()
    probe_calls = 0

    async def probe() -> str:
        nonlocal probe_calls
        probe_calls += 1
        await release.wait()
        return "probed"

    first = asyncio.create_task(breaker.call(probe))
    await asyncio.sleep(0)  # the first call is now inside the probe
    second = Flaky()
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(second)
    assert caught.value.retry_after == 0.0
    assert "probe is still running" in str(caught.value)
    assert second.calls == 0
    release.set()
    assert await first == "probed"
    assert probe_calls == 1
    assert breaker.state is CLOSED


async def test_probe_success_closes_and_the_breaker_stays_closed() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(31.0)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    snap = breaker.snapshot()
    assert snap.consecutive_failures == 0
    assert snap.opened_at is None
    assert snap.next_probe_at is None
    for _ in range(50):
        clock.advance(1.0)
        assert await breaker.call(ok) == "ok"
        assert breaker.state is CLOSED
    await trip(breaker, 2)  # counters were reset: two failures are not enough
    assert breaker.state is CLOSED


async def test_probe_failure_reopens_with_a_new_cooldown() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    first_open = breaker.snapshot().opened_at
    clock.advance(30.0)
    await trip(breaker, 1)  # the probe fails
    assert breaker.state is OPEN
    snap = breaker.snapshot()
    assert snap.opened_at == clock.wall()
    assert first_open is not None
    assert snap.opened_at is not None
    assert snap.opened_at - first_open == timedelta(seconds=30)
    assert snap.next_probe_at == clock.wall() + timedelta(seconds=30)
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    clock.advance(1.0)
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


async def test_ratio_mode_opens_at_the_ratio_once_min_calls_is_reached() -> None:
    clock = FakeClock()
    breaker = make_breaker(
        clock, failure_threshold=100, failure_ratio=0.5, ratio_window=10, ratio_min_calls=6
    )
    # 1 failure in 3 never reaches the ratio, however long it goes on.
    for _ in range(10):
        await breaker.call(ok)
        await breaker.call(ok)
        await trip(breaker, 1)
    assert breaker.state is CLOSED

    breaker = make_breaker(
        clock, failure_threshold=100, failure_ratio=0.5, ratio_window=10, ratio_min_calls=6
    )
    await trip(breaker, 2)  # 2 of 2 failed, but fewer than min calls
    assert breaker.state is CLOSED
    for _ in range(3):
        await breaker.call(ok)
    assert breaker.state is CLOSED  # 2 of 5
    await trip(breaker, 1)  # 3 of 6 = 0.5
    assert breaker.state is OPEN


async def test_ratio_window_slides() -> None:
    clock = FakeClock()
    breaker = make_breaker(
        clock, failure_threshold=100, failure_ratio=0.6, ratio_window=5, ratio_min_calls=5
    )
    await trip(breaker, 2)
    for _ in range(5):
        await breaker.call(ok)  # the two failures slide out of the window
    await trip(breaker, 2)
    assert breaker.state is CLOSED  # 2 of the last 5
    await trip(breaker, 1)
    assert breaker.state is OPEN  # 3 of the last 5


async def test_counts_predicate_excludes_exceptions() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, counts=lambda e: not isinstance(e, DecodeError))
    for _ in range(10):
        with pytest.raises(DecodeError):
            await breaker.call(lambda: fail_with(DecodeError()))
    assert breaker.state is CLOSED
    snap = breaker.snapshot()
    assert (snap.failures, snap.consecutive_failures, snap.last_error_type) == (0, 0, None)

    await trip(breaker, 3)
    clock.advance(30.0)
    # A non-counted error from the probe neither closes nor re-opens: the slot is freed.
    with pytest.raises(DecodeError):
        await breaker.call(lambda: fail_with(DecodeError()))
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


async def test_cancelled_probe_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker, 3)
    clock.advance(30.0)
    task = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok) == "ok"


async def test_transitions_reach_listeners_once_and_are_logged_once() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    seen: list[BreakerTransition] = []
    breaker.add_listener(seen.append)
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):
            await breaker.call(ok)
        await trip(breaker, 3)  # -> open
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                await breaker.call(ok)
        clock.advance(30.0)
        assert breaker.state is HALF_OPEN  # -> half-open (seen through the property)
        assert breaker.state is HALF_OPEN
        await trip(breaker, 1)  # -> open
        clock.advance(30.0)
        await breaker.call(ok)  # -> half-open, -> closed
        for _ in range(20):
            await breaker.call(ok)
    moves = [(t.previous, t.current) for t in seen]
    assert moves == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert [t.reason for t in seen][2] == "probe failed"
    assert all(t.name == "feed" for t in seen)
    assert seen[0].at == WALL_START
    assert len(logs) == len(seen)
    assert [(e["previous"], e["state"]) for e in logs] == [(a.value, b.value) for a, b in moves]
    assert all(e["breaker"] == "feed" for e in logs)
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["event"] == "circuit breaker opened"


async def test_a_failing_listener_does_not_break_the_breaker() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)

    def bad(transition: BreakerTransition) -> None:
        raise RuntimeError("listener bug")

    seen: list[BreakerTransition] = []
    breaker.add_listener(bad)
    breaker.add_listener(seen.append)
    with structlog.testing.capture_logs():
        await trip(breaker, 3)
    assert breaker.state is OPEN
    assert len(seen) == 1


async def test_snapshot_times() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    snap = breaker.snapshot()
    assert snap.last_success_at is None
    assert snap.last_failure_at is None
    assert snap.opened_at is None
    assert snap.next_probe_at is None

    clock.advance(5.0)
    success_at = clock.wall()
    await breaker.call(ok)
    clock.advance(5.0)
    await trip(breaker, 3)
    failure_at = clock.wall()
    clock.advance(12.0)
    snap = breaker.snapshot()
    assert snap.state is OPEN
    assert snap.last_success_at == success_at
    assert snap.last_failure_at == failure_at
    assert snap.opened_at == failure_at
    assert snap.next_probe_at == failure_at + timedelta(seconds=30)
    assert snap.last_error_type == "Transient"
    as_dict = snap.as_dict()
    assert as_dict["state"] == "open"
    assert as_dict["next_probe_at"] == (failure_at + timedelta(seconds=30)).isoformat()

    clock.advance(18.0)
    snap = breaker.snapshot()
    assert snap.state is HALF_OPEN
    assert snap.next_probe_at == clock.wall()


def test_breaker_config_is_validated() -> None:
    with pytest.raises(ValueError, match="failure_ratio"):
        BreakerConfig(failure_ratio=1.5)
    with pytest.raises(ValueError, match="ratio_min_calls"):
        BreakerConfig(ratio_window=5, ratio_min_calls=6)


# -- registry --------------------------------------------------------------------------------


async def test_registry_creates_lists_resets_and_shares_listeners() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(
        BreakerConfig(failure_threshold=2), clock=clock, wall_clock=clock.wall
    )
    seen: list[tuple[str, BreakerState]] = []
    feed = registry.get_or_create("feed")
    registry.add_listener(lambda t: seen.append((t.name, t.current)))  # after "feed" exists
    database = registry.get_or_create("database", BreakerConfig(failure_threshold=1))
    assert registry.get_or_create("feed") is feed
    assert registry.get("feed") is feed
    assert registry.get("nope") is None
    assert registry.names() == ["database", "feed"]
    with pytest.raises(ValueError, match="already exists"):
        registry.get_or_create("feed", BreakerConfig(failure_threshold=9))

    await trip(feed, 2)
    await trip(database, 1)
    assert [s.state for s in registry.snapshots()] == [OPEN, OPEN]
    assert registry.reset("feed") is True
    assert registry.reset("nope") is False
    assert feed.state is CLOSED
    assert await feed.call(ok) == "ok"
    assert seen == [("feed", OPEN), ("database", OPEN), ("feed", CLOSED)]
    assert [(s.name, s.state) for s in registry.snapshots()] == [
        ("database", OPEN),
        ("feed", CLOSED),
    ]


# -- the sync path from threads --------------------------------------------------------------


def _guarded(breaker: CircuitBreaker, fn: Callable[[], str]) -> str:
    probe = breaker.before_call()
    try:
        result = fn()
    except Exception as exc:
        breaker.on_failure(exc, probe=probe)
        raise
    breaker.on_success(probe=probe)
    return result


def _in_thread(target: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_sync_path_from_a_thread() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    outcomes: list[str] = []

    def failing_work() -> None:
        for _ in range(3):
            try:
                _guarded(breaker, Flaky(Transient()).sync)
            except Transient:
                outcomes.append("failed")
        try:
            _guarded(breaker, Flaky().sync)
        except CircuitOpenError:
            outcomes.append("rejected")

    _in_thread(failing_work)
    assert outcomes == ["failed", "failed", "failed", "rejected"]
    assert breaker.state is OPEN

    clock.advance(30.0)
    _in_thread(lambda: outcomes.append(_guarded(breaker, Flaky(result="probed").sync)))
    assert outcomes[-1] == "probed"
    assert breaker.state is CLOSED


def test_sync_counters_are_exact_under_threads() -> None:
    breaker = CircuitBreaker("db", BreakerConfig())
    per_thread = 2000

    def work() -> None:
        for _ in range(per_thread):
            breaker.before_call()
            breaker.on_success()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.snapshot().successes == 8 * per_thread


def test_an_abandoned_sync_probe_is_replaced_after_probe_timeout() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_timeout=60.0)
    for _ in range(3):
        breaker.before_call()
        breaker.on_failure(Transient())
    clock.advance(30.0)
    assert breaker.before_call() is True  # this probe is never reported
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.advance(60.0)
    assert breaker.before_call() is True
    breaker.on_success(probe=True)
    assert breaker.state is CLOSED


async def test_late_success_of_a_call_from_before_the_opening_does_not_close() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    early = breaker.before_call()  # admitted while closed
    await trip(breaker, 3)
    clock.advance(30.0)
    probe = breaker.before_call()
    assert (early, probe) == (False, True)
    breaker.on_success(probe=early)  # the slow early call finally answers
    assert breaker.state is HALF_OPEN
    breaker.on_failure(Transient(), probe=probe)
    assert breaker.state is OPEN


# -- recovery strategies ---------------------------------------------------------------------


def _strategy(
    clock: FakeClock,
    breaker: CircuitBreaker | None,
    fallback: Callable[[BaseException], Awaitable[str]] | None,
    outcomes: list[tuple[str, bool]],
    attempts: int = 3,
) -> RecoveryStrategy[str]:
    return RecoveryStrategy(
        "feed",
        retry=RetryPolicy(attempts=attempts),
        breaker=breaker,
        fallback=fallback,
        is_transient=is_transient,
        on_outcome=lambda name, succeeded: outcomes.append((name, succeeded)),
        sleep=RecordingSleep(clock),
        clock=clock,
    )


async def test_strategy_retries_inside_the_breaker() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    outcomes: list[tuple[str, bool]] = []
    strategy = _strategy(clock, breaker, None, outcomes)
    fn = Flaky(Transient(), Transient())
    assert await strategy.run(fn) == "ok"
    assert fn.calls == 3
    # The breaker saw one successful operation, not two failures and a success.
    snap = breaker.snapshot()
    assert (snap.failures, snap.successes) == (0, 1)
    assert outcomes == [("feed", True)]
    assert await strategy.run(Flaky()) == "ok"
    assert outcomes == [("feed", True)]  # a first-try success needs no recovery
    stats = strategy.stats()
    assert (stats["runs"], stats["attempts"], stats["successes"], stats["recovered"]) == (
        2,
        4,
        2,
        1,
    )
    assert stats["failures"] == 0


async def test_strategy_records_the_final_failure_once_then_falls_back() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    outcomes: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    async def fallback(exc: BaseException) -> str:
        errors.append(exc)
        return "fallback"

    strategy = _strategy(clock, breaker, fallback, outcomes)
    fn = AlwaysFails()
    assert await strategy.run(fn) == "fallback"
    assert fn.calls == 3
    assert errors == [fn.raised[-1]]
    assert breaker.snapshot().consecutive_failures == 1
    assert outcomes == [("feed", True)]

    permanent = AlwaysFails(Permanent)
    assert await strategy.run(permanent) == "fallback"
    assert permanent.calls == 1  # permanent: no retry, straight to the fallback
    assert breaker.snapshot().consecutive_failures == 2

    await strategy.run(AlwaysFails())  # third failed operation opens the breaker
    assert breaker.state is OPEN
    untouched = Flaky()
    assert await strategy.run(untouched) == "fallback"
    assert untouched.calls == 0  # open breaker: fn is not called at all
    assert isinstance(errors[-1], CircuitOpenError)
    assert strategy.stats() == {
        "name": "feed",
        "runs": 4,
        "attempts": 7,
        "successes": 0,
        "recovered": 0,
        "failures": 3,
        "rejected_by_breaker": 1,
        "fallbacks_used": 4,
        "fallback_failures": 0,
    }


async def test_strategy_without_fallback_reraises() -> None:
    clock = FakeClock()
    outcomes: list[tuple[str, bool]] = []
    strategy = _strategy(clock, None, None, outcomes)
    fn = AlwaysFails()
    with pytest.raises(Transient) as caught:
        await strategy.run(fn)
    assert caught.value is fn.raised[-1]
    assert fn.calls == 3
    assert outcomes == [("feed", False)]
    assert strategy.stats()["failures"] == 1


async def test_last_good_value_serves_stale_data_and_reports_it() -> None:
    clock = FakeClock()
    last = LastGoodValue[str](wall_clock=clock.wall)
    breaker = make_breaker(clock)
    outcomes: list[tuple[str, bool]] = []
    strategy = _strategy(clock, breaker, last.fallback, outcomes, attempts=2)

    # Nothing good yet: the fallback has nothing to serve and the error comes through.
    with pytest.raises(Transient):
        await strategy.run(last.track(AlwaysFails()))
    assert strategy.stats()["fallback_failures"] == 1
    assert outcomes == [("feed", False)]

    assert await strategy.run(last.track(Flaky(result="snapshot-1"))) == "snapshot-1"
    assert last.updated_at == clock.wall()
    assert not last.stale

    clock.advance(15.0)
    assert await strategy.run(last.track(AlwaysFails())) == "snapshot-1"
    assert last.stale
    first_stale = last.stale_since
    assert first_stale == clock.wall()  # (the retry's sleep moved the fake clock too)
    clock.advance(15.0)
    assert await strategy.run(last.track(AlwaysFails())) == "snapshot-1"
    assert last.served_stale == 2
    assert last.stale_since == first_stale  # stale since the first stale answer
    status = last.status()
    assert status["stale"] is True
    assert status["served_stale"] == 2
    assert status["last_error_type"] == "Transient"

    assert await strategy.run(last.track(Flaky(result="snapshot-2"))) == "snapshot-2"
    assert not last.stale
    assert last.stale_since is None
    assert last.value == "snapshot-2"
    assert strategy.stats()["fallbacks_used"] == 2


def test_strategy_with_retry_needs_is_transient() -> None:
    with pytest.raises(ValueError, match="is_transient"):
        RecoveryStrategy[str]("feed", retry=RetryPolicy())
