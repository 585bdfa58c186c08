"""Failed deliveries as the bus hands them over and as the dead-letter store gives them back."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from vatsim_collector.errors.exceptions import CollectorError
from vatsim_collector.events.event import Event

# A stored letter's status: waiting, or claimed by a replay in progress.
PENDING = "pending"
REPLAYING = "replaying"


@dataclass(frozen=True)
class NewDeadLetter:
    """A failed delivery as the bus hands it over."""

    event: Event
    handler: str
    error_type: str
    error_category: str
    error_message: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    """A stored letter."""

    id: int
    event: Event
    handler: str
    error_type: str | None
    error_category: str | None
    error_message: str | None
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str

    def summary(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601, the event as ``Event.summary()``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["first_failed_at"] = self.first_failed_at.isoformat()
        out["last_failed_at"] = self.last_failed_at.isoformat()
        out["event"] = self.event.summary()
        return out


class DeadLetterBusy(CollectorError, wrapper=True):
    """A replay of that letter is already in progress."""
