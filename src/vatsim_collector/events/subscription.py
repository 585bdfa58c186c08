"""A handler's subscription: what it receives, and the limits it runs within."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from vatsim_collector.errors.breaker import BreakerConfig, CircuitBreaker
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.event import Event
from vatsim_collector.events.metrics import HandlerMetrics

__all__ = ["BatchHandler", "Handler", "HandlerOptions", "Overflow", "Subscription"]

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]


class Overflow(StrEnum):
    """What a publish does when a handler's queue is full.

    ``block``: the publisher waits for room, at most ``block_timeout`` seconds per publish call
    and handler; after that the rest of that call's events for the handler are shed, so even
    a stuck handler delays the collector by a bounded time only. ``shed``: the event is dropped
    for that handler at once. Either way each shed event is counted, and the publish reports
    its losses once, for all handlers, to the error manager (see ``events.shedding``); the event
    log still holds the event for a back-fill, or, if the log itself shed it, an
    ``eventlog.gap`` row says what is missing.
    """

    BLOCK = "block"
    SHED = "shed"


def _default_retry() -> RetryPolicy:
    return RetryPolicy(attempts=3, initial=0.1, maximum=2.0, total=60.0)


@dataclass(frozen=True)
class HandlerOptions:
    timeout: float = 10.0  # seconds per attempt
    concurrency: int = 1  # workers; above 1 a handler may see events out of order
    queue_size: int = 10_000
    overflow: Overflow = Overflow.SHED
    block_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=_default_retry)
    # Above 1, the handler is called with lists of up to this many queued events.
    batch_size: int = 1
    breaker: BreakerConfig | None = None  # None: the registry's default

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.block_timeout < 0:
            raise ValueError("block_timeout must not be negative")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


class Subscription:
    def __init__(
        self,
        name: str,
        patterns: Sequence[str],
        handler: Handler | BatchHandler,
        *,
        batch: bool,
        options: HandlerOptions,
        breaker: CircuitBreaker,
        metrics: HandlerMetrics,
        remote: bool = False,
    ) -> None:
        if not patterns:
            raise ValueError(f"handler {name!r} subscribes to nothing")
        self.name = name
        self.patterns = tuple(patterns)
        self.handler = handler
        self.batch = batch
        self.options = options
        self.breaker = breaker
        self.metrics = metrics
        # Run by worker processes on the event stream: no live events are queued for it here.
        self.remote = remote
        self.queue: asyncio.Queue[Event] = asyncio.Queue(options.queue_size)
        self.workers: list[asyncio.Task[None]] = []
        # What each worker is delivering right now, so a stop that cancels it can keep it.
        self.in_flight: dict[int, list[Event]] = {}

    def matches(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)

    async def call(self, events: Sequence[Event]) -> None:
        if self.batch:
            await self.handler(events)  # type: ignore[arg-type]
        else:
            await self.handler(events[0])  # type: ignore[arg-type]
