"""The event bus: isolation, retries, dead letters, breakers and overflow, with a real DLQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine

from vatsim_collector.errors.breaker import BreakerConfig, BreakerState
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.bus import EventBus, ReplayOutcome
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import ControllerDisconnected, SnapshotReceived
from vatsim_collector.events.subscription import HandlerOptions, Overflow
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue

FAST_RETRY = RetryPolicy(attempts=3, initial=0.001, maximum=0.002, total=10.0)
ONE_TRY = RetryPolicy(attempts=1, initial=0.001, maximum=0.001, total=10.0)
NEVER_TRIPS = BreakerConfig(failure_threshold=10_000)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(n: int, kind: str = "controller") -> Event:
    if kind == "snapshot":
        payload: ControllerDisconnected | SnapshotReceived = SnapshotReceived(
            snapshot_id=n,
            update_timestamp=T0,
            outcome="ingested",
            pilots=n,
            controllers=0,
            atis=0,
            prefiles=0,
            transceivers=None,
        )
    else:
        payload = ControllerDisconnected(
            session_id=n, cid=n, callsign=f"C{n}", logon_time=T0, first_seen=T0, last_seen=T0
        )
    return Event.create(payload, time=T0, source="test")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that can be broken, gated, and remembers what it was given."""

    def __init__(self) -> None:
        self.broken = False
        self.calls = 0
        self.received: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, ev: Event) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise ValueError(f"cannot handle {ev.id}")
        self.received.append(ev.id)


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


@pytest.fixture
def dlq(db: DatabaseService) -> DeadLetterQueue:
    return DeadLetterQueue(db, max_entries=1000)


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    return FakeClock()


async def test_a_raising_handler_dead_letters_after_its_retries_and_replay_delivers_once(
    dlq: DeadLetterQueue,
) -> None:
    errors = ErrorManager(None)
    bus = EventBus(errors=errors, dead_letters=dlq)
    handler = Recorder()
    handler.broken = True
    bus.subscribe(
        "flaky",
        handler,
        "controller.*",
        options=HandlerOptions(retry=FAST_RETRY, breaker=NEVER_TRIPS),
    )
    await bus.start()
    events = [event(i) for i in range(5)]
    await bus.publish_many(events)
    await bus.join()

    assert handler.calls == 5 * 3
    metrics = bus.metrics.handler("flaky")
    assert (metrics.failures, metrics.retries, metrics.successes) == (5, 10, 0)
    assert bus.metrics.failed["controller.disconnected"] == 5
    total, letters = dlq.list(limit=10)
    assert total == 5
    assert {letter.event.id for letter in letters} == {e.id for e in events}
    assert all(letter.attempts == 3 and letter.handler == "flaky" for letter in letters)
    assert all(letter.error_type == "ValueError" for letter in letters)
    assert letters[0].first_failed_at <= letters[0].last_failed_at
    assert errors.counts()["by_service"]["events"] == 5
    assert errors.counts()["by_category"]["handler"] == 5
    assert letters[0].error_category == "handler"
    assert letters[0].error_message is not None
    assert "cannot handle" in letters[0].error_message

    handler.broken = False
    outcomes = [(await bus.replay_dead_letter(letter.id)).outcome for letter in letters]
    assert outcomes == [ReplayOutcome.DELIVERED] * 5
    assert sorted(handler.received) == sorted(e.id for e in events)  # each exactly once
    assert dlq.size() == 0
    again = await bus.replay_dead_letter(letters[0].id)
    assert again.outcome is ReplayOutcome.NOT_FOUND
    assert len(handler.received) == 5
    await bus.stop(timeout=5)


async def test_a_replay_that_fails_again_keeps_the_letter_with_its_attempts_added(
    dlq: DeadLetterQueue,
) -> None:
    bus = EventBus(dead_letters=dlq)
    handler = Recorder()
    handler.broken = True
    bus.subscribe("h", handler, "*", options=HandlerOptions(retry=FAST_RETRY, breaker=NEVER_TRIPS))
    await bus.start()
    await bus.publish(event(1))
    await bus.join()
    [letter] = dlq.list()[1]
    result = await bus.replay_dead_letter(letter.id)
    assert result.outcome is ReplayOutcome.FAILED
    assert result.failure is not None
    assert result.failure.attempts == 3
    kept = dlq.get(letter.id)
    assert kept is not None
    assert kept.attempts == 6
    assert kept.status == "pending"
    await bus.stop(timeout=5)


async def test_a_hanging_handler_is_cut_off_while_the_others_and_the_publisher_go_on(
    dlq: DeadLetterQueue,
) -> None:
    bus = EventBus(dead_letters=dlq)
    cut_at: list[float] = []
    started = asyncio.Event()

    async def hangs(ev: Event) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cut_at.append(time.perf_counter())

    fast_done = asyncio.Event()
    fast_times: list[float] = []

    async def fast(ev: Event) -> None:
        fast_times.append(time.perf_counter())
        if len(fast_times) == 8:
            fast_done.set()

    bus.subscribe("hangs", hangs, "*", options=HandlerOptions(timeout=0.5, retry=ONE_TRY))
    bus.subscribe("fast", fast, "*")
    await bus.start()
    await bus.publish_many(event(i) for i in range(8))
    # The publisher is back before the hanging handler has even been cut off once.
    assert cut_at == []
    await fast_done.wait()
    assert started.is_set()
    assert cut_at == []
    await bus.join()
    assert max(fast_times) < min(cut_at)
    hang = bus.metrics.handler("hangs")
    # Five timeouts in a row open its breaker (the default threshold); the rest are refused.
    assert (len(cut_at), hang.timeouts, hang.rejected, hang.failures) == (5, 5, 3, 8)
    assert bus.metrics.handler("fast").successes == 8
    total, letters = dlq.list(handler="hangs")
    assert total == 8
    assert letters[0].error_category == "timeout"
    await bus.stop(timeout=5)


async def test_a_flapping_handlers_breaker_opens_and_closes(
    dlq: DeadLetterQueue, fake_clock: FakeClock
) -> None:
    breakers = BreakerRegistry(BreakerConfig(failure_threshold=3, cooldown=10.0), clock=fake_clock)
    bus = EventBus(breakers=breakers, dead_letters=dlq)
    handler = Recorder()
    bus.subscribe("flappy", handler, "*", options=HandlerOptions(retry=ONE_TRY))
    breaker = breakers.get("handler.flappy")
    assert breaker is not None
    await bus.start()

    handler.broken = True
    await bus.publish_many(event(i) for i in range(3))
    await bus.join()
    assert breaker.state is BreakerState.OPEN
    calls = handler.calls
    await bus.publish_many(event(i) for i in range(3, 5))
    await bus.join()
    assert handler.calls == calls  # refused without a call while open
    assert bus.metrics.handler("flappy").rejected == 2
    assert dlq.size() == 5

    fake_clock.now += 11.0
    handler.broken = False
    probe = event(5)
    await bus.publish(probe)
    await bus.join()
    assert breaker.state is BreakerState.CLOSED
    assert handler.received == [probe.id]

    handler.broken = True
    await bus.publish_many(event(i) for i in range(6, 9))
    await bus.join()
    assert breaker.state is BreakerState.OPEN
    report = bus.handlers_report()["flappy"]
    assert report["breaker"]["state"] == "open"
    await bus.stop(timeout=5)


async def test_shed_overflow_drops_and_counts_what_does_not_fit(
    dlq: DeadLetterQueue,
) -> None:
    errors = ErrorManager(None)
    bus = EventBus(errors=errors, dead_letters=dlq)
    handler = Recorder()
    handler.gate = asyncio.Event()
    bus.subscribe(
        "small", handler, "*", options=HandlerOptions(queue_size=2, overflow=Overflow.SHED)
    )
    await bus.start()
    await bus.publish_many(event(i) for i in range(10))  # no await inside: nothing taken yet
    metrics = bus.metrics.handler("small")
    assert metrics.shed == 8
    assert bus.metrics.published["controller.disconnected"] == 10
    [record] = [r for r in errors.recent() if r.operation == "publish"]
    assert record.context["shed"] == 8
    assert record.category.value == "resource"
    handler.gate.set()
    await bus.join()
    assert len(handler.received) == 2
    await bus.stop(timeout=5)


async def test_block_overflow_makes_the_publisher_wait_for_room(dlq: DeadLetterQueue) -> None:
    bus = EventBus(dead_letters=dlq)
    handler = Recorder()
    handler.gate = asyncio.Event()
    options = HandlerOptions(queue_size=2, overflow=Overflow.BLOCK, block_timeout=30.0)
    bus.subscribe("patient", handler, "*", options=options)
    await bus.start()
    publishing = asyncio.create_task(bus.publish_many(event(i) for i in range(6)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not publishing.done()
    assert bus.metrics.handler("patient").blocked >= 1
    handler.gate.set()
    await publishing
    await bus.join()
    assert len(handler.received) == 6
    assert bus.metrics.handler("patient").shed == 0
    await bus.stop(timeout=5)


async def test_block_overflow_sheds_after_its_bounded_wait_and_a_stop_keeps_the_rest(
    dlq: DeadLetterQueue,
) -> None:
    bus = EventBus(dead_letters=dlq)
    handler = Recorder()
    handler.gate = asyncio.Event()  # never opened: the handler is stuck
    options = HandlerOptions(
        queue_size=2, overflow=Overflow.BLOCK, block_timeout=0.2, timeout=60.0, retry=ONE_TRY
    )
    bus.subscribe("stuck", handler, "*", options=options)
    await bus.start()
    await bus.publish_many(event(i) for i in range(5))
    metrics = bus.metrics.handler("stuck")
    # One event in the handler, two queued, and after the bounded wait the last two shed.
    assert metrics.shed == 2
    drained = await bus.stop(timeout=0.2)
    assert not drained
    total, letters = dlq.list(handler="stuck")
    assert total == 3
    assert {letter.error_type.rsplit(".", 1)[-1] for letter in letters} == {"BusStopped"}


async def test_dead_letters_survive_a_restart(database_url: str, engine: Engine) -> None:
    first = EventBus(dead_letters=DeadLetterQueue(DatabaseService.for_engine(engine)))
    handler = Recorder()
    handler.broken = True
    first.subscribe("h", handler, "*", options=HandlerOptions(retry=ONE_TRY, breaker=NEVER_TRIPS))
    await first.start()
    events = [event(i) for i in range(3)]
    await first.publish_many(events)
    await first.stop(timeout=5)
    engine.dispose()

    again = create_engine(database_url)
    try:
        dlq = DeadLetterQueue(DatabaseService.for_engine(again))
        second = EventBus(dead_letters=dlq)
        fixed = Recorder()
        second.subscribe("h", fixed, "*")
        await second.start()
        total, letters = dlq.list()
        assert total == 3
        assert [letter.event for letter in letters] == events
        for letter in letters:
            assert (await second.replay_dead_letter(letter.id)).outcome is ReplayOutcome.DELIVERED
        assert fixed.received == [e.id for e in events]
        await second.stop(timeout=5)
    finally:
        again.dispose()


async def test_replay_of_an_unknown_handlers_letter_keeps_it(dlq: DeadLetterQueue) -> None:
    bus = EventBus(dead_letters=dlq)
    handler = Recorder()
    handler.broken = True
    bus.subscribe("gone", handler, "*", options=HandlerOptions(retry=ONE_TRY))
    await bus.start()
    await bus.publish(event(1))
    await bus.stop(timeout=5)
    other = EventBus(dead_letters=dlq)
    [letter] = dlq.list()[1]
    assert (await other.replay_dead_letter(letter.id)).outcome is ReplayOutcome.UNKNOWN_HANDLER
    kept = dlq.get(letter.id)
    assert kept is not None
    assert kept.status == "pending"
    assert kept.attempts == 1


async def test_patterns_route_by_type_and_backfill_reaches_only_the_named_handler(
    dlq: DeadLetterQueue,
) -> None:
    bus = EventBus(dead_letters=dlq)
    snapshots, controllers, everything = Recorder(), Recorder(), Recorder()
    bus.subscribe("snapshots", snapshots, "snapshot.received")
    bus.subscribe("controllers", controllers, "controller.*")
    bus.subscribe("everything", everything, "*")
    await bus.start()
    mixed = [event(1), event(2, "snapshot"), event(3)]
    await bus.publish_many(mixed)
    await bus.join()
    assert snapshots.received == [mixed[1].id]
    assert controllers.received == [mixed[0].id, mixed[2].id]
    assert everything.received == [e.id for e in mixed]
    assert await bus.deliver_to("controllers", mixed) == (2, 0)
    assert controllers.received == [mixed[0].id, mixed[2].id] * 2
    assert len(everything.received) == 3
    with pytest.raises(KeyError):
        await bus.deliver_to("nobody", mixed)
    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscribe("snapshots", snapshots, "*")
    await bus.stop(timeout=5)


async def test_batch_handlers_get_what_was_waiting_together(dlq: DeadLetterQueue) -> None:
    bus = EventBus(dead_letters=dlq)
    batches: list[int] = []

    async def store(events: object) -> None:
        assert isinstance(events, list)
        batches.append(len(events))

    bus.subscribe_batch("log", store, "*", options=HandlerOptions(batch_size=100))
    await bus.start()
    await bus.publish_many(event(i) for i in range(250))
    await bus.join()
    assert batches == [100, 100, 50]
    assert bus.metrics.handler("log").successes == 250
    await bus.stop(timeout=5)


async def test_concurrency_bounds_the_calls_in_flight(dlq: DeadLetterQueue) -> None:
    bus = EventBus(dead_letters=dlq)
    gate = asyncio.Event()
    in_flight = peak = 0

    async def slow(ev: Event) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await gate.wait()
        in_flight -= 1

    bus.subscribe("wide", slow, "*", options=HandlerOptions(concurrency=3))
    await bus.start()
    await bus.publish_many(event(i) for i in range(10))
    for _ in range(20):
        await asyncio.sleep(0)
    assert (peak, in_flight) == (3, 3)
    assert bus.handlers_report()["wide"]["queue_depth"] == 7
    gate.set()
    await bus.join()
    assert peak == 3
    assert bus.metrics.handler("wide").successes == 10
    await bus.stop(timeout=5)
