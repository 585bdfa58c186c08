"""The event-log handler, which also marks in the log where events are missing.

When the log's queue is full the bus sheds events before they reach the log: a reader of the
log (``GET /api/events``, a back-fill) would see history with a hole and no sign of it. The bus
tells this writer what was shed (:meth:`EventBus.on_shed`); the writer cannot write then -- the
publisher is waiting, and the database is most likely the reason the queue is full -- so the
marker waits in memory and goes into the same transaction as the log's next batch. Markers not
yet written when the bus stops are written directly by :meth:`EventLogWriter.flush_gaps`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import EventLogGap
from vatsim_collector.events.shedding import HandlerShed, ShedReport
from vatsim_collector.events.sinks import EventLogStore

__all__ = ["GAP_SOURCE", "MAX_PENDING_GAPS", "EventLogWriter", "gap_marker"]

log = structlog.get_logger(__name__)

GAP_SOURCE = "event-log"
# One marker per shedding snapshot: a thousand is over four hours of 15-second snapshots with
# the log unable to write, long past the point where the dead-letter queue and the breaker say
# so. Beyond it the oldest markers go, and are counted.
MAX_PENDING_GAPS = 1000


def gap_marker(report: ShedReport, loss: HandlerShed) -> Event:
    """The row that stands in the log for what ``loss`` is missing from it. It sorts where the
    missing events would have (at the earliest one's time) and carries their snapshot's
    correlation id, so a reader following one snapshot finds it too."""
    return Event.create(
        EventLogGap(
            snapshot_time=report.snapshot_time,
            first_time=loss.first_time,
            last_time=loss.last_time,
            events=loss.events,
            lost=dict(sorted(loss.by_type.items())),
        ),
        time=loss.first_time,
        source=GAP_SOURCE,
        correlation_id=report.correlation_id,
    )


class EventLogWriter:
    """The bus handler (a batch handler) that writes events, with any pending gap markers."""

    def __init__(self, event_log: EventLogStore, handler: str) -> None:
        self.log = event_log
        self.handler = handler
        self._pending: list[Event] = []
        self.gaps_marked = 0  # markers written
        self.gaps_dropped = 0  # markers given up: over the bound, or unwritable at stop

    @property
    def pending_gaps(self) -> int:
        return len(self._pending)

    def on_shed(self, report: ShedReport) -> None:
        """Bus listener: remember a marker if this log lost events. Runs on the event loop."""
        loss = report.handlers.get(self.handler)
        if loss is None:
            return
        self._pending.append(gap_marker(report, loss))
        if len(self._pending) > MAX_PENDING_GAPS:
            del self._pending[0]
            self.gaps_dropped += 1
            log.error("event-log gap markers over their bound: the oldest was dropped")

    async def __call__(self, events: Sequence[Event]) -> None:
        markers = list(self._pending)
        await asyncio.to_thread(self.log.write, [*markers, *events])
        # Only once written: a failed write leaves them pending for the next batch (the events
        # themselves go to the dead-letter queue as for any handler).
        self._forget(markers)

    def flush_gaps(self) -> int:
        """Write the pending markers on their own (blocking; the bus has stopped). Raises what
        the database raises; the markers then stay pending."""
        markers = list(self._pending)
        if markers:
            self.log.write(markers)
            self._forget(markers)
        return len(markers)

    def _forget(self, written: list[Event]) -> None:
        if not written:
            return
        ids = {marker.id for marker in written}
        self._pending = [m for m in self._pending if m.id not in ids]
        self.gaps_marked += len(written)
