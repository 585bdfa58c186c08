"""Builds the collector's event layer from settings: bus, dead-letter queue, event log.

The service, the ``replay`` command and the ``events`` commands all build it here, so a dead
letter written by one can be replayed by another: handlers are known by name, from the one
registry (``pipeline.handlers``) the ``worker`` command runs them from as well.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.config import Settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.loggaps import EventLogWriter
from vatsim_collector.events.subscription import BatchHandler, Handler
from vatsim_collector.pipeline.handlers import (
    EVENT_LOG_HANDLER,
    SUMMARIES_HANDLER,
    HandlerContext,
    HandlerRegistry,
    build_registry,
    handler_options,
)
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue
from vatsim_collector.store.event_log import EventLog

__all__ = [
    "EVENT_LOG_HANDLER",
    "STOP_TIMEOUT_SECONDS",
    "SUMMARIES_HANDLER",
    "EventLayer",
    "build_event_layer",
    "handler_options",
    "remote_handlers",
]

logger = structlog.get_logger(__name__)

# How long stopping waits for the handlers to drain (the service stops its poller and relay
# within the same bound).
STOP_TIMEOUT_SECONDS = 30.0


def remote_handlers(settings: Settings, registry: HandlerRegistry) -> frozenset[str]:
    """The handlers this process leaves to workers: ``VATSIM_REMOTE_HANDLERS``, with NATS on.

    Each must be registered here too, so its dead letters can still be replayed in-process.
    """
    names = settings.remote_handler_list
    for name in names:
        registry.get(name)  # raises UnknownHandler, listing the registered ones
    if names and not settings.nats_enabled:
        logger.warning(
            "VATSIM_REMOTE_HANDLERS is ignored without VATSIM_NATS_URL: they run in-process",
            handlers=names,
        )
        return frozenset()
    return frozenset(names)


@dataclass
class EventLayer:
    bus: EventBus
    dead_letters: DeadLetterQueue
    log: EventLog
    log_writer: EventLogWriter | None = None  # None when the event log is off

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self, timeout: float) -> bool:  # noqa: ASYNC109 (drain deadline)
        drained = await self.bus.stop(timeout)
        writer = self.log_writer
        if writer is not None and writer.pending_gaps:
            try:
                await asyncio.to_thread(writer.flush_gaps)
            except SQLAlchemyError as exc:
                writer.gaps_dropped += writer.pending_gaps
                logger.error(
                    "event-log gap markers could not be written at stop",
                    markers=writer.pending_gaps,
                    error=type(exc).__name__,
                )
        return drained

    async def analytics(self) -> dict[str, Any]:
        """Everything ``/api/events/analytics`` shows. The bus's counters are read on the event
        loop that updates them; the dead-letter count is one small query in a thread."""
        last_shed = self.bus.last_shed
        report = {
            "running": self.bus.running,
            "types": self.bus.metrics.by_type(),
            "handlers": self.bus.handlers_report(),
            "last_shed": None if last_shed is None else last_shed.as_dict(),
            "event_log_gaps": None
            if self.log_writer is None
            else {
                "marked": self.log_writer.gaps_marked,
                "pending": self.log_writer.pending_gaps,
                "dropped": self.log_writer.gaps_dropped,
            },
        }
        try:
            report["dead_letters"] = await asyncio.to_thread(self.dead_letters.stats)
        except SQLAlchemyError:
            # The bus's own figures matter most while the database is down: still show them.
            report["dead_letters"] = {
                "size": None,
                "bound": self.dead_letters.bound,
                "evicted": self.dead_letters.evicted,
                "unwritten": self.dead_letters.unwritten,
                "rejected": self.dead_letters.rejected,
            }
        return report

    async def backfill(
        self,
        handler: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> tuple[int, int]:
        """Deliver logged history to one handler (say, one added after the fact), oldest first:
        (delivered, failed); failures are dead-lettered like live ones."""
        loop = asyncio.get_running_loop()
        pages = self.log.iterate(start=start, end=end, types=types)
        delivered = failed = 0
        while True:
            # Each page is read in a thread; delivery runs here, on the bus's loop.
            page = await loop.run_in_executor(None, _next_page, pages)
            if not page:
                return delivered, failed
            ok, bad = await self.bus.deliver_to(handler, page)
            delivered, failed = delivered + ok, failed + bad


BACKFILL_PAGE = 1000


def _next_page(events: Iterator[Event]) -> list[Event]:
    return list(itertools.islice(events, BACKFILL_PAGE))


def build_event_layer(
    settings: Settings,
    db: DatabaseService,
    *,
    errors: ErrorManager | None = None,
    breakers: BreakerRegistry | None = None,
    registry: HandlerRegistry | None = None,
) -> EventLayer:
    """The bus with every registered handler (``pipeline.handlers``): those named in
    ``VATSIM_REMOTE_HANDLERS`` (with NATS on) only for replays and back-fills."""
    registry = registry if registry is not None else build_registry(settings)
    remote = remote_handlers(settings, registry)
    dead_letters = DeadLetterQueue(db, max_entries=settings.dead_letter_max)
    bus = EventBus(breakers=breakers, errors=errors, dead_letters=dead_letters)
    log = EventLog(db, types=settings.event_log_type_list)
    context = HandlerContext(settings, db)
    writer: EventLogWriter | None = None
    for spec in registry:
        handler = spec.build(context)
        options = spec.options(settings)
        elsewhere = spec.name in remote
        if spec.batch:
            bus.subscribe_batch(
                spec.name,
                cast(BatchHandler, handler),
                *spec.patterns,
                options=options,
                remote=elsewhere,
            )
        else:
            bus.subscribe(
                spec.name,
                cast(Handler, handler),
                *spec.patterns,
                options=options,
                remote=elsewhere,
            )
        if isinstance(handler, EventLogWriter) and not elsewhere:
            # Shed events are marked in the log; a worker's stream sheds nothing.
            writer = handler
            bus.on_shed(writer.on_shed)
    return EventLayer(bus=bus, dead_letters=dead_letters, log=log, log_writer=writer)
