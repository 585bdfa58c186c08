"""One delivery of events to one handler: its timeout, retries, breaker and dead letters.

A delivery is one call of the handler under its timeout, retried with backoff within the
handler's retry policy, behind the handler's own circuit breaker. A delivery that fails every
attempt -- or is refused by an open breaker -- is recorded with the error manager and goes to
the dead-letter queue, from which it can be replayed once the handler is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from vatsim_collector.errors.breaker import CircuitOpenError
from vatsim_collector.errors.exceptions import Category, CollectorError, HandlerFailed, Severity
from vatsim_collector.errors.manager import ErrorManager, error_type_name
from vatsim_collector.errors.retry import retry_async
from vatsim_collector.errors.taxonomy import UNKNOWN, classify
from vatsim_collector.events.event import Event
from vatsim_collector.events.letters import NewDeadLetter
from vatsim_collector.events.metrics import EventMetrics
from vatsim_collector.events.sinks import DeadLetterStore
from vatsim_collector.events.subscription import Subscription

__all__ = ["BusStopped", "Delivery", "Failure", "HandlerTimeout"]

log = structlog.get_logger(__name__)


class HandlerTimeout(CollectorError, TimeoutError):
    category = Category.TIMEOUT
    severity = Severity.MEDIUM
    transient = True

    def __init__(self, handler: str, seconds: float) -> None:
        super().__init__(f"handler {handler} did not finish within {seconds:g} s")


class BusStopped(CollectorError, wrapper=True):
    """The bus stopped before the event could be delivered; replay delivers it."""


@dataclass(frozen=True)
class Failure:
    """Why a delivery failed, already scrubbed by the error manager."""

    error_type: str
    error_category: str
    error_message: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


def _any_error(exc: BaseException) -> bool:
    # A handler's failures are unknown to the bus: every ``Exception`` gets its retries.
    return True


def _category(exc: BaseException) -> str:
    found = classify(exc)
    return (Category.HANDLER if found is UNKNOWN else found.category).value


def _now() -> datetime:
    return datetime.now(UTC)


class Delivery:
    def __init__(
        self,
        metrics: EventMetrics,
        errors: ErrorManager,
        dead_letters: DeadLetterStore | None,
    ) -> None:
        self.metrics = metrics
        self.errors = errors
        self.dead_letters = dead_letters

    async def attempt(self, sub: Subscription, events: Sequence[Event]) -> None:
        started = time.perf_counter()
        timeout = sub.options.timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                await sub.call(events)
        except TimeoutError:
            if scope.expired():
                sub.metrics.timeouts += 1
                raise HandlerTimeout(sub.name, timeout) from None
            raise
        sub.metrics.latencies.append(time.perf_counter() - started)

    async def deliver(
        self,
        sub: Subscription,
        events: Sequence[Event],
        *,
        guarded: bool = True,
        dead_letter: bool = True,
    ) -> Failure | None:
        """One delivery with retries; None on success, else why it failed (and, unless
        ``dead_letter`` is False, the events are in the dead-letter queue)."""
        metrics = sub.metrics
        probe: bool | None = None
        if guarded:
            try:
                probe = sub.breaker.before_call()
            except CircuitOpenError as exc:
                metrics.rejected += len(events)
                failure = self.failure(sub, events, exc, attempts=0, first=_now())
                await self.fail(sub, events, failure, dead_letter=dead_letter)
                return failure
        attempts = 0
        first: datetime | None = None

        async def attempt() -> None:
            nonlocal attempts, first
            attempts += 1
            try:
                await self.attempt(sub, events)
            except Exception:
                if first is None:
                    first = _now()
                raise

        def count_retry(_attempt: int, _exc: BaseException) -> None:
            metrics.retries += 1

        try:
            await retry_async(
                attempt, sub.options.retry, is_transient=_any_error, on_retry=count_retry
            )
        except Exception as exc:
            if guarded:
                sub.breaker.on_failure(exc, probe=probe)
            failure = self.failure(sub, events, exc, attempts=attempts, first=first or _now())
            await self.fail(sub, events, failure, dead_letter=dead_letter)
            return failure
        if guarded:
            sub.breaker.on_success(probe=probe)
        metrics.successes += len(events)
        delivered = self.metrics.delivered
        for event in events:
            delivered[event.type] += 1
        return None

    def failure(
        self,
        sub: Subscription,
        events: Sequence[Event],
        exc: BaseException,
        *,
        attempts: int,
        first: datetime,
    ) -> Failure:
        # Recorded as a handler failure (its own category in the analytics), the real error as
        # its cause; the dead letter keeps the real error's type and, if known, category.
        wrapped = HandlerFailed(sub.name, f"{type(exc).__name__}: {exc}")
        wrapped.__cause__ = exc
        record = self.errors.record(
            wrapped,
            service="events",
            operation=f"handler.{sub.name}",
            context={
                "handler": sub.name,
                "event_type": events[0].type,
                "event_id": events[0].id,
                "events": len(events),
                "attempts": attempts,
            },
        )
        return Failure(
            error_type=error_type_name(exc),
            error_category=_category(exc),
            error_message=record.message,
            attempts=attempts,
            first_failed_at=first,
            last_failed_at=record.occurred_at,
        )

    async def fail(
        self, sub: Subscription, events: Sequence[Event], failure: Failure, *, dead_letter: bool
    ) -> None:
        sub.metrics.failures += len(events)
        failed = self.metrics.failed
        for event in events:
            failed[event.type] += 1
        if dead_letter:
            await self.dead_letter(sub, events, failure)

    async def dead_letter(
        self, sub: Subscription, events: Sequence[Event], failure: Failure
    ) -> None:
        sub.metrics.dead_lettered += len(events)
        if self.dead_letters is None:
            log.error("no dead-letter queue: failed events lost", handler=sub.name, n=len(events))
            return
        letters = [
            NewDeadLetter(
                event=event,
                handler=sub.name,
                error_type=failure.error_type,
                error_category=failure.error_category,
                error_message=failure.error_message,
                attempts=failure.attempts,
                first_failed_at=failure.first_failed_at,
                last_failed_at=failure.last_failed_at,
            )
            for event in events
        ]
        await asyncio.to_thread(self.dead_letters.put, letters)
