"""What the event layer needs from durable storage, as interfaces ``store/`` implements.

The bus and its handlers must not depend on the database: the dead-letter queue
(``store.dead_letters.DeadLetterQueue``) and the event log (``store.event_log.EventLog``)
implement these, and the service wires them in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from vatsim_collector.events.event import Event
from vatsim_collector.events.letters import DeadLetter, NewDeadLetter


class DeadLetterStore(Protocol):
    """Failed deliveries, kept for replay; ``put`` never raises on a storage failure."""

    @property
    def bound(self) -> int: ...
    @property
    def evicted(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def unwritten(self) -> int: ...

    def put(self, letters: Sequence[NewDeadLetter]) -> int: ...
    def flush(self) -> int: ...
    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        handler: str | None = None,
        event_type: str | None = None,
    ) -> tuple[int, list[DeadLetter]]: ...
    def get(self, letter_id: int) -> DeadLetter | None: ...
    def size(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def claim(self, letter_id: int) -> DeadLetter | None: ...
    def release(
        self,
        letter_id: int,
        *,
        error_type: str,
        error_category: str,
        error_message: str,
        attempts: int,
        failed_at: datetime,
    ) -> None: ...
    def remove(self, letter_id: int) -> None: ...
    def discard(self, letter_id: int) -> bool: ...
    def release_stale_claims(self) -> int: ...


class EventLogStore(Protocol):
    """The event log: what the bus published, for audit and back-fill."""

    @property
    def types(self) -> tuple[str, ...]: ...

    def wants(self, event_type: str) -> bool: ...
    def write(self, events: Sequence[Event]) -> int: ...
    def read(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[Event]: ...
    def iterate(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
        page: int = 1000,
    ) -> Iterator[Event]: ...
    def count(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> int: ...
