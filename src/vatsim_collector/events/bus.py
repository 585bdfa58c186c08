"""The event bus: async publish, handlers isolated from each other and from the publisher.

Each subscription has its own bounded queue and worker tasks, so a slow or failing handler
only ever fills its own queue; how one delivery is made (timeout, retries, breaker, dead
letters) is :mod:`vatsim_collector.events.delivery`.

All bus state is touched only on the event loop; the dead-letter queue's database work runs in
a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from vatsim_collector.errors.exceptions import ResourceExhausted
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.events.delivery import BusStopped, Delivery, Failure, HandlerTimeout
from vatsim_collector.events.event import Event
from vatsim_collector.events.letters import DeadLetterBusy
from vatsim_collector.events.metrics import EventMetrics
from vatsim_collector.events.shedding import ShedReport, ShedTally
from vatsim_collector.events.sinks import DeadLetterStore
from vatsim_collector.events.subscription import (
    BatchHandler,
    Handler,
    HandlerOptions,
    Overflow,
    Subscription,
)

__all__ = ["EventBus", "HandlerTimeout", "ReplayOutcome", "ReplayResult", "ShedListener"]

log = structlog.get_logger(__name__)

BREAKER_PREFIX = "handler."

ShedListener = Callable[[ShedReport], None]


class ReplayOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    NOT_FOUND = "not_found"
    BUSY = "busy"
    UNKNOWN_HANDLER = "unknown_handler"


@dataclass(frozen=True)
class ReplayResult:
    outcome: ReplayOutcome
    failure: Failure | None = None


class EventBus:
    def __init__(
        self,
        *,
        breakers: BreakerRegistry | None = None,
        errors: ErrorManager | None = None,
        dead_letters: DeadLetterStore | None = None,
    ) -> None:
        self.breakers = breakers if breakers is not None else BreakerRegistry()
        self.errors = errors if errors is not None else ErrorManager(None)
        self.dead_letters = dead_letters
        self.metrics = EventMetrics()
        self._delivery = Delivery(self.metrics, self.errors, dead_letters)
        self._subs: dict[str, Subscription] = {}
        self._routes: dict[str, list[Subscription]] = {}
        self._running = False
        self._shed_listeners: list[ShedListener] = []
        self.last_shed: ShedReport | None = None

    # -- subscribing -------------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        handler: Handler,
        *patterns: str,
        options: HandlerOptions | None = None,
        remote: bool = False,
    ) -> Subscription:
        """Deliver each event whose type matches one of ``patterns`` (fnmatch: ``pilot.*``,
        ``*``) to ``handler``, one event per call.

        ``remote``: the handler runs in worker processes that consume the event stream; this
        bus delivers it no published event, only its dead-letter replays and back-fills."""
        options = options or HandlerOptions()
        if options.batch_size != 1:
            raise ValueError("batch_size is for subscribe_batch")
        return self._add(name, handler, patterns, options, batch=False, remote=remote)

    def subscribe_batch(
        self,
        name: str,
        handler: BatchHandler,
        *patterns: str,
        options: HandlerOptions | None = None,
        remote: bool = False,
    ) -> Subscription:
        """Like :meth:`subscribe`, but ``handler`` gets lists of up to ``batch_size`` events
        that were waiting together; a batch succeeds or fails (and is dead-lettered) whole."""
        return self._add(
            name, handler, patterns, options or HandlerOptions(), batch=True, remote=remote
        )

    def _add(
        self,
        name: str,
        handler: Handler | BatchHandler,
        patterns: Sequence[str],
        options: HandlerOptions,
        *,
        batch: bool,
        remote: bool,
    ) -> Subscription:
        if name in self._subs:
            raise ValueError(f"a handler called {name!r} is already subscribed")
        sub = Subscription(
            name,
            patterns,
            handler,
            batch=batch,
            options=options,
            breaker=self.breakers.get_or_create(BREAKER_PREFIX + name, options.breaker),
            metrics=self.metrics.handler(name),
            remote=remote,
        )
        self._subs[name] = sub
        self._routes.clear()
        if self._running:
            self._start_workers(sub)
        return sub

    def handler_names(self) -> list[str]:
        return sorted(self._subs)

    def _route(self, event_type: str) -> list[Subscription]:
        subs = [s for s in self._subs.values() if not s.remote and s.matches(event_type)]
        self._routes[event_type] = subs
        return subs

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        await self.publish_many((event,))

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Queue each event for every matching handler; returns once all are queued (or shed).

        Never raises because of a handler: a full queue sheds (or, for ``block`` handlers,
        waits a bounded time first), and delivery happens on the handlers' own workers.
        """
        published = self.metrics.published
        routes = self._routes
        deadlines: dict[str, float] | None = None
        shed = ShedTally()
        first: Event | None = None
        for event in events:
            if first is None:
                first = event
            event_type = event.type
            subs = routes.get(event_type)
            if subs is None:
                subs = self._route(event_type)
            published[event_type] += 1
            for sub in subs:
                try:
                    sub.queue.put_nowait(event)
                    continue
                except asyncio.QueueFull:
                    pass
                if sub.options.overflow is Overflow.BLOCK:
                    if deadlines is None:
                        deadlines = {}
                    if await self._wait_for_room(sub, event, deadlines):
                        continue
                sub.metrics.shed += 1
                shed.add(sub.name, event_type, event)
        if shed:
            self._report_shed(shed.report(at=datetime.now(UTC), first=first))

    async def _wait_for_room(
        self, sub: Subscription, event: Event, deadlines: dict[str, float]
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = deadlines.setdefault(sub.name, loop.time() + sub.options.block_timeout)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        sub.metrics.blocked += 1
        try:
            async with asyncio.timeout(remaining):
                await sub.queue.put(event)
        except TimeoutError:
            deadlines[sub.name] = loop.time()  # given up: shed the rest of this call at once
            return False
        return True

    def on_shed(self, listener: ShedListener) -> None:
        """Call ``listener`` with every shed report, on the event loop, right after the
        publish that shed; it must not block (the publisher is waiting)."""
        self._shed_listeners.append(listener)

    def _report_shed(self, report: ShedReport) -> None:
        # Once per publish call -- for the poller, once per snapshot -- whatever the number of
        # events or handlers: a 100k-pilot snapshot must not become 100k error records.
        counts = report.counts()
        for name in counts:
            self._subs[name].metrics.snapshots_with_shed_events += 1
        self.last_shed = report
        lost = ", ".join(f"{name} {count}" for name, count in counts.items())
        self.errors.record(
            ResourceExhausted(
                f"handler queues full: {report.total} events of snapshot"
                f" {report.correlation_id} shed ({lost})"
            ),
            service="events",
            operation="publish",
            context={
                "correlation_id": report.correlation_id,
                "snapshot_time": report.snapshot_time,
                "shed": report.total,
                "handlers": counts,
                "by_type": {n: dict(loss.by_type) for n, loss in report.handlers.items()},
                "queue_sizes": {n: self._subs[n].options.queue_size for n in counts},
            },
        )
        for listener in self._shed_listeners:
            try:
                listener(report)
            except Exception:
                # A listener's bug must not fail the publisher (the poller).
                log.exception("shed listener failed", correlation_id=report.correlation_id)

    # -- delivering --------------------------------------------------------------------------

    def _start_workers(self, sub: Subscription) -> None:
        if sub.remote:
            return  # nothing is queued for it: replays and back-fills deliver directly
        for index in range(sub.options.concurrency):
            sub.workers.append(
                asyncio.create_task(self._work(sub, index), name=f"handler:{sub.name}:{index}")
            )

    async def _work(self, sub: Subscription, worker: int) -> None:
        queue = sub.queue
        limit = sub.options.batch_size
        while True:
            batch = [await queue.get()]
            while len(batch) < limit:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            sub.in_flight[worker] = batch
            try:
                await self._delivery.deliver(sub, batch)
                del sub.in_flight[worker]
            except Exception:
                del sub.in_flight[worker]
                # The bus's own bug must not end the worker: the handler would starve.
                log.exception("event delivery failed inside the bus", handler=sub.name)
            finally:
                for _ in batch:
                    queue.task_done()

    # -- replay and back-fill ----------------------------------------------------------------

    async def replay_dead_letter(self, letter_id: int) -> ReplayResult:
        """Deliver one dead letter to its handler again, bypassing the queue and the breaker
        (replaying is the operator saying the handler works now). Delivered: the letter is
        removed, so a second replay finds nothing. Failed again: it stays, with the attempts
        added. A letter being replayed is claimed, so two replays never run at once."""
        dlq = self._require_dead_letters()
        try:
            letter = await asyncio.to_thread(dlq.claim, letter_id)
        except DeadLetterBusy:
            return ReplayResult(ReplayOutcome.BUSY)
        if letter is None:
            return ReplayResult(ReplayOutcome.NOT_FOUND)
        sub = self._subs.get(letter.handler)
        if sub is None:
            await asyncio.to_thread(
                dlq.release,
                letter_id,
                error_type=letter.error_type or "",
                error_category=letter.error_category or "",
                error_message=letter.error_message or "",
                attempts=0,
                failed_at=letter.last_failed_at,
            )
            return ReplayResult(ReplayOutcome.UNKNOWN_HANDLER)
        failure = await self._delivery.deliver(
            sub, [letter.event], guarded=False, dead_letter=False
        )
        if failure is None:
            await asyncio.to_thread(dlq.remove, letter_id)
            return ReplayResult(ReplayOutcome.DELIVERED)
        await asyncio.to_thread(
            dlq.release,
            letter_id,
            error_type=failure.error_type,
            error_category=failure.error_category,
            error_message=failure.error_message,
            attempts=failure.attempts,
            failed_at=failure.last_failed_at,
        )
        return ReplayResult(ReplayOutcome.FAILED, failure)

    async def deliver_to(self, name: str, events: Iterable[Event]) -> tuple[int, int]:
        """Back-fill: deliver ``events`` (say, from the event log) to the one handler ``name``
        that matches them, in order, with its timeout and retries; failures are dead-lettered.
        Returns (delivered, failed)."""
        sub = self._subs.get(name)
        if sub is None:
            raise KeyError(f"no handler called {name!r}")
        delivered = failed = 0
        batch: list[Event] = []

        async def flush() -> None:
            nonlocal delivered, failed
            if await self._delivery.deliver(sub, batch, guarded=False) is None:
                delivered += len(batch)
            else:
                failed += len(batch)
            batch.clear()

        for event in events:
            if sub.matches(event.type):
                batch.append(event)
                if len(batch) >= sub.options.batch_size:
                    await flush()
        if batch:
            await flush()
        return delivered, failed

    def _require_dead_letters(self) -> DeadLetterStore:
        if self.dead_letters is None:
            raise RuntimeError("this bus has no dead-letter queue")
        return self.dead_letters

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        if self.dead_letters is not None:
            reset = await asyncio.to_thread(self.dead_letters.release_stale_claims)
            if reset:
                log.warning("dead letters left mid-replay by a crash are pending again", n=reset)
        self._running = True
        for sub in self._subs.values():
            self._start_workers(sub)

    async def stop(self, timeout: float = 30.0) -> bool:  # noqa: ASYNC109 (drain deadline)
        """Let the handlers finish what is queued (within ``timeout``), then stop them.

        Whatever is still queued at the deadline is dead-lettered as ``BusStopped``, so a stop
        loses nothing: the next start can replay it. True when everything was delivered."""
        drained = True
        try:
            async with asyncio.timeout(timeout):
                for sub in self._subs.values():
                    await sub.queue.join()
        except TimeoutError:
            drained = False
            log.error(
                "event handlers did not drain in time",
                timeout=timeout,
                queued={s.name: s.queue.qsize() for s in self._subs.values()},
            )
        for sub in self._subs.values():
            for task in sub.workers:
                task.cancel()
        await asyncio.gather(
            *(t for s in self._subs.values() for t in s.workers), return_exceptions=True
        )
        for sub in self._subs.values():
            sub.workers.clear()
            await self._dead_letter_queued(sub)
        self._running = False
        if self.dead_letters is not None:
            await asyncio.to_thread(self.dead_letters.flush)
        return drained

    async def _dead_letter_queued(self, sub: Subscription) -> None:
        # In-flight batches were cut off by the cancellation: they were not delivered either.
        left: list[Event] = [e for batch in sub.in_flight.values() for e in batch]
        sub.in_flight.clear()
        while True:
            try:
                left.append(sub.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
            sub.queue.task_done()
        if left:
            exc = BusStopped(f"bus stopped with {len(left)} events queued for {sub.name}")
            failure = self._delivery.failure(sub, left, exc, attempts=0, first=datetime.now(UTC))
            await self._delivery.fail(sub, left, failure, dead_letter=True)

    async def join(self) -> None:
        """Wait until every queued event has been delivered or dead-lettered."""
        for sub in list(self._subs.values()):
            await sub.queue.join()

    # -- reporting ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def queued(self) -> int:
        return sum(s.queue.qsize() for s in self._subs.values())

    def handlers_report(self) -> dict[str, dict[str, Any]]:
        report: dict[str, dict[str, Any]] = {}
        for name in sorted(self._subs):
            sub = self._subs[name]
            report[name] = {
                "patterns": list(sub.patterns),
                "remote": sub.remote,
                **sub.metrics.as_dict(),
                "queue_depth": sub.queue.qsize(),
                "queue_size": sub.options.queue_size,
                "overflow": sub.options.overflow.value,
                "concurrency": sub.options.concurrency,
                "timeout_seconds": sub.options.timeout,
                "breaker": sub.breaker.snapshot().as_dict(),
            }
        return report

    def health(self) -> dict[str, Any]:
        open_breakers = [
            name for name, sub in self._subs.items() if sub.breaker.state.value != "closed"
        ]
        return {"running": self._running, "queued": self.queued(), "open_breakers": open_breakers}
