"""Events shed from full handler queues: tallied during one publish, reported once for it.

The poller publishes each snapshot's events in one call, so one report says what one snapshot
lost, per handler and per event type, instead of one line per lost event -- a flood of events
would otherwise become a flood of error records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from vatsim_collector.events.event import Event

__all__ = ["HandlerShed", "ShedReport", "ShedTally", "correlation_of"]


def correlation_of(event: Event) -> str:
    """The snapshot an event belongs to: its correlation id, or its own id when it has none
    (a ``snapshot.received`` event *is* the correlation id of its snapshot's events)."""
    return event.correlation_id or event.id


@dataclass(frozen=True)
class HandlerShed:
    """What one handler lost in one publish."""

    events: int
    by_type: dict[str, int]
    first_time: datetime  # network time of the earliest lost event
    last_time: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "by_type": dict(sorted(self.by_type.items())),
            "first_time": self.first_time,
            "last_time": self.last_time,
        }


@dataclass(frozen=True)
class ShedReport:
    """One publish call's losses. ``correlation_id`` and ``snapshot_time`` come from the call's
    first event (for the poller: its snapshot's ``snapshot.received``)."""

    reported_at: datetime
    correlation_id: str | None
    snapshot_time: datetime | None
    handlers: dict[str, HandlerShed]

    @property
    def total(self) -> int:
        return sum(loss.events for loss in self.handlers.values())

    def counts(self) -> dict[str, int]:
        return {name: loss.events for name, loss in sorted(self.handlers.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "reported_at": self.reported_at,
            "correlation_id": self.correlation_id,
            "snapshot_time": self.snapshot_time,
            "total": self.total,
            "handlers": {name: loss.as_dict() for name, loss in sorted(self.handlers.items())},
        }


_time = attrgetter("time")


def _frozen(types: list[str], events: list[Event]) -> HandlerShed:
    return HandlerShed(
        events=len(events),
        by_type=dict(Counter(types)),
        first_time=min(map(_time, events)),
        last_time=max(map(_time, events)),
    )


class ShedTally:
    """Collects the events shed during one publish call; costs nothing while nothing is shed.

    A shed event costs two list appends here: a flood is exactly when the publisher (the
    poller) can least afford more, so the counting waits for :meth:`report`.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[list[str], list[Event]]] = {}

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def add(self, handler: str, event_type: str, event: Event) -> None:
        found = self._handlers.get(handler)
        if found is None:
            found = self._handlers[handler] = ([], [])
        found[0].append(event_type)
        found[1].append(event)

    def report(self, *, at: datetime, first: Event | None) -> ShedReport:
        return ShedReport(
            reported_at=at,
            correlation_id=None if first is None else correlation_of(first),
            snapshot_time=None if first is None else first.time,
            handlers={name: _frozen(*found) for name, found in self._handlers.items()},
        )
