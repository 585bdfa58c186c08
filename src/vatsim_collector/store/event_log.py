"""The persisted event log: what the bus published, kept for audit and for back-filling handlers.

Events are written as they are published, in one transaction per batch; an id already stored is
ignored, so publishing the same event again (a replay, a restarted ingest) writes nothing twice.
Reads walk the ``(time, id)`` index with a keyset cursor, which stays cheap however deep the
page is, unlike an offset.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, and_, false, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from vatsim_collector.events.event import (
    KNOWN_TYPES,
    Event,
    EventCodecError,
    decode_payload,
    encode_payload,
)
from vatsim_collector.events.payloads import EventType
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

__all__ = ["EventLog", "TypeFilter"]

_WILDCARDS = frozenset("*?[")


class TypeFilter:
    """fnmatch-style type patterns, matched in Python and translated to SQL.

    An exact name becomes ``IN``; a prefix followed by one trailing ``*`` becomes a
    case-sensitive prefix match (as fnmatch is); any other pattern is expanded against the
    known event types, since nothing else could be decoded anyway.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._cache: dict[str, bool] = {}

    def matches(self, event_type: str) -> bool:
        answer = self._cache.get(event_type)
        if answer is None:
            answer = any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)
            self._cache[event_type] = answer
        return answer

    def clause(self, backend: str) -> ColumnElement[bool]:
        column = t.events.c.type
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in self.patterns:
            head = pattern[:-1] if pattern.endswith("*") else None
            if not _WILDCARDS & set(pattern):
                exact.add(pattern)
            elif head is not None and not _WILDCARDS & set(head):
                prefixes.append(head)
            else:
                exact.update(k for k in KNOWN_TYPES if fnmatch.fnmatchcase(k, pattern))
        if "" in prefixes:
            return column.is_not(None)
        terms: list[ColumnElement[bool]] = []
        if exact:
            terms.append(column.in_(sorted(exact)))
        for head in prefixes:
            if backend == "sqlite":
                # SQLite's LIKE ignores case; GLOB does not (and the head has no metacharacters).
                terms.append(column.op("GLOB", is_comparison=True)(head + "*"))
            else:
                terms.append(column.startswith(head, autoescape=True))
        return or_(*terms) if terms else false()


class EventLog:
    def __init__(self, db: DatabaseService, *, types: Sequence[str] = ("*",)) -> None:
        self.db = db
        self._types = TypeFilter(types)

    @property
    def types(self) -> tuple[str, ...]:
        return self._types.patterns

    def wants(self, event_type: str) -> bool:
        # A gap marker is about the log itself: kept whatever types a log that is on keeps.
        if event_type == EventType.EVENTLOG_GAP:
            return bool(self._types.patterns)
        return self._types.matches(event_type)

    def write(self, events: Sequence[Event]) -> int:
        """Store the wanted ``events`` in one transaction; the number of rows offered.

        Raises what the database raises: the caller (the bus) decides whether a lost log write
        is worth more than the delivery it accompanies.
        """
        rows = [_row(e) for e in events if self.wants(e.type)]
        if not rows:
            return 0
        with self.db.write("events.log") as conn:
            conn.execute(self._insert_ignoring_duplicates(), rows)
        return len(rows)

    def write_in(self, conn: Connection, events: Sequence[Event]) -> int:
        """Store the wanted ``events`` in the caller's transaction: a bulk replay logs each
        batch's events with its snapshots, so both are committed or neither is."""
        rows = [_row(e) for e in events if self.wants(e.type)]
        if rows:
            conn.execute(self._insert_ignoring_duplicates(), rows)
        return len(rows)

    def _insert_ignoring_duplicates(self) -> Insert:
        if self.db.backend == "postgresql":
            return postgresql.insert(t.events).on_conflict_do_nothing(index_elements=["id"])
        return sqlite.insert(t.events).on_conflict_do_nothing(index_elements=["id"])

    def read(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Events in ``[start, end)`` of the given type patterns, by ``(time, id)``.

        ``after`` is the ``(time, id)`` of the last event of the previous page.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where = self._where(start, end, types)
        if after is not None:
            at, last_id = after
            where.append(
                or_(t.events.c.time > at, and_(t.events.c.time == at, t.events.c.id > last_id))
            )
        statement = (
            select(t.events).where(*where).order_by(t.events.c.time, t.events.c.id).limit(limit)
        )
        with self.db.read("events.read") as conn:
            rows = conn.execute(statement).all()
        return [_event(row._mapping) for row in rows]

    def iterate(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
        page: int = 1000,
    ) -> Iterator[Event]:
        """Every matching event, ``page`` at a time; no connection is held between pages."""
        after: tuple[datetime, str] | None = None
        while True:
            batch = self.read(start=start, end=end, types=types, after=after, limit=page)
            yield from batch
            if len(batch) < page:
                return
            after = (batch[-1].time, batch[-1].id)

    def count(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> int:
        statement = (
            select(func.count()).select_from(t.events).where(*self._where(start, end, types))
        )
        with self.db.read("events.count") as conn:
            return int(conn.execute(statement).scalar_one())

    def _where(
        self, start: datetime | None, end: datetime | None, types: Sequence[str] | None
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if start is not None:
            where.append(t.events.c.time >= start)
        if end is not None:
            where.append(t.events.c.time < end)
        if types is not None:
            where.append(TypeFilter(types).clause(self.db.backend))
        return where


def _row(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "time": event.time,
        "source": event.source,
        "correlation_id": event.correlation_id,
        "payload": encode_payload(event.payload).decode(),
    }


def _event(row: Any) -> Event:
    try:
        payload = decode_payload(row["payload"])
    except EventCodecError as exc:
        raise EventCodecError(f"event {row['id']}: {exc}") from exc
    event = Event(
        id=row["id"],
        time=row["time"],
        source=row["source"],
        payload=payload,
        correlation_id=row["correlation_id"],
    )
    if event.type != row["type"]:
        raise EventCodecError(
            f"event {row['id']}: stored as {row['type']!r} but its payload is {event.type!r}"
        )
    return event
