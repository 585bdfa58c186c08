"""Builds the collector's event layer from settings: bus, dead-letter queue, event log.

The service, the ``replay`` command and the ``events`` commands all build it here, so a dead
letter written by one can be replayed by another: handlers are known by name.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.config import Settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.bus import EventBus
from vatsim_collector.events.event import Event
from vatsim_collector.events.loggaps import EventLogWriter
from vatsim_collector.events.payloads import ControllerDisconnected, EventType, PilotDisconnected
from vatsim_collector.events.subscription import HandlerOptions, Overflow
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.summaries_store import SummaryWriter

__all__ = [
    "EVENT_LOG_HANDLER",
    "SUMMARIES_HANDLER",
    "EventLayer",
    "build_event_layer",
    "handler_options",
]

logger = structlog.get_logger(__name__)

EVENT_LOG_HANDLER = "event-log"
SUMMARIES_HANDLER = "summaries"
# Rows per event-log transaction: the first snapshot of a session brings thousands of events.
EVENT_LOG_BATCH = 500


def handler_options(settings: Settings, **overrides: Any) -> HandlerOptions:
    """The configured defaults for a handler, with its own choices on top."""
    options = HandlerOptions(
        timeout=settings.event_handler_timeout,
        queue_size=settings.event_queue_size,
        block_timeout=settings.event_block_timeout,
        retry=RetryPolicy(
            attempts=settings.event_handler_retries,
            initial=0.2,
            maximum=5.0,
            total=max(settings.event_handler_timeout * settings.event_handler_retries, 1.0),
        ),
    )
    return replace(options, **overrides)


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


def _summariser(writer: SummaryWriter) -> Any:
    async def summarise(event: Event) -> None:
        payload = event.payload
        if isinstance(payload, PilotDisconnected):
            await asyncio.to_thread(writer.flight, payload.flight_id)
        elif isinstance(payload, ControllerDisconnected):
            await asyncio.to_thread(writer.controller, payload.session_id)

    return summarise


def build_event_layer(
    settings: Settings,
    db: DatabaseService,
    *,
    errors: ErrorManager | None = None,
    breakers: BreakerRegistry | None = None,
) -> EventLayer:
    dead_letters = DeadLetterQueue(db, max_entries=settings.dead_letter_max)
    bus = EventBus(breakers=breakers, errors=errors, dead_letters=dead_letters)
    types = settings.event_log_type_list
    log = EventLog(db, types=types)
    writer: EventLogWriter | None = None
    if types:
        # The log is the history every other handler can be back-filled from: it waits for
        # room rather than shedding, within the configured bound, and marks what it still lost.
        writer = EventLogWriter(log, EVENT_LOG_HANDLER)
        bus.subscribe_batch(
            EVENT_LOG_HANDLER,
            writer,
            *types,
            options=handler_options(settings, overflow=Overflow.BLOCK, batch_size=EVENT_LOG_BATCH),
        )
        bus.on_shed(writer.on_shed)
    # Summaries are written once their flight or controller session has ended; a failure is
    # dead-lettered like any other, and replaying it rewrites the same row.
    bus.subscribe(
        SUMMARIES_HANDLER,
        _summariser(SummaryWriter(db)),
        EventType.PILOT_DISCONNECTED.value,
        EventType.CONTROLLER_DISCONNECTED.value,
        options=handler_options(settings),
    )
    return EventLayer(bus=bus, dead_letters=dead_letters, log=log, log_writer=writer)
