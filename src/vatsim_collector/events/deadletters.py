"""The dead-letter queue: deliveries that exhausted their retries, kept durably for replay.

It is bounded by number, not by age: a handler that fails on everything must not fill the disk,
and the most recent failures are the ones worth replaying, so beyond ``max_entries`` the oldest
letters are evicted (and counted). One row per (event, handler): failing again adds attempts to
that row rather than queueing the event twice.

The bus dead-letters from its delivery path, so ``put`` never raises on a database failure: the
letters wait in memory (under the same bound) and are written, oldest first, by the next
successful ``put`` or ``flush``. A replay claims its row first (``pending`` → ``replaying``) so
two replays of one letter cannot run at once; claims left behind by a crash are released at
start-up.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Insert, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from vatsim_collector.errors.exceptions import CollectorError
from vatsim_collector.errors.scrub import scrub_text
from vatsim_collector.events.event import Event, EventCodecError, decode_event, encode_event
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

__all__ = ["DeadLetter", "DeadLetterBusy", "DeadLetterQueue", "NewDeadLetter"]

log = structlog.get_logger(__name__)

PENDING = "pending"
REPLAYING = "replaying"
_dl = t.dead_letters
# What a later failure of the same delivery replaces (its attempts are added).
_LATEST = ("last_failed_at", "error_type", "error_category", "error_message")


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


class DeadLetterQueue:
    def __init__(
        self,
        db: DatabaseService,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.db = db
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()  # guards the backlog and the counters
        self._write_lock = threading.Lock()  # one writer at a time keeps the backlog in order
        self._backlog: deque[NewDeadLetter] = deque()
        self._evicted = 0
        self._rejected = 0
        self._down_since: datetime | None = None

    @property
    def bound(self) -> int:
        return self._max

    @property
    def evicted(self) -> int:
        """Letters dropped by the bound since start-up, from the table or from memory."""
        return self._evicted

    @property
    def rejected(self) -> int:
        """Letters the database refused for their content (so never writable), dropped."""
        return self._rejected

    @property
    def unwritten(self) -> int:
        """Letters waiting in memory for the database."""
        return len(self._backlog)

    # ----- writing ------------------------------------------------------------------------

    def put(self, letters: Sequence[NewDeadLetter]) -> int:
        """Store ``letters`` after any waiting ones; the number written now (0 if the database
        failed: they are then kept in memory). Never raises on a database failure."""
        self._enqueue(letters)
        return self.flush()

    def flush(self) -> int:
        """Write the letters waiting in memory, oldest first; the number written."""
        with self._write_lock:
            with self._lock:
                batch = list(self._backlog)
                self._backlog.clear()
            if not batch:
                return 0
            try:
                written = self._write(batch)
            except BaseException:
                self._enqueue(batch, front=True)
                raise
            if self._down_since is not None and not self._backlog:
                down = (self._clock() - self._down_since).total_seconds()
                log.info("dead letters written again", written=written, seconds_down=down)
                self._down_since = None
            return written

    def _write(self, batch: list[NewDeadLetter]) -> int:
        """Write ``batch`` in one transaction, or letter by letter if some letter is refused;
        what the database failed to take goes back to the backlog."""
        try:
            self._transaction(batch)
            return len(batch)
        except SQLAlchemyError as exc:
            if not _refused(exc):
                self._outage(batch, exc)
                return 0
        # A letter refused for what it holds would be refused on every retry: only it is lost,
        # and the letters behind it do not stall.
        written = 0
        for position, letter in enumerate(batch):
            try:
                self._transaction([letter])
            except SQLAlchemyError as exc:
                if not _refused(exc):
                    self._outage(batch[position:], exc)
                    return written
                self._rejected += 1
                log.error(
                    "dead letter refused by the database; dropped",
                    handler=letter.handler,
                    event_id=letter.event.id,
                    error=_describe(exc),
                )
            else:
                written += 1
        return written

    def _transaction(self, letters: list[NewDeadLetter]) -> None:
        with self.db.write("dead_letters.put") as conn:
            evicted = self._store(conn, letters)
        if evicted:
            with self._lock:
                self._evicted += evicted
            log.warning("dead letters evicted by the bound", evicted=evicted, bound=self._max)

    def _outage(self, letters: list[NewDeadLetter], exc: SQLAlchemyError) -> None:
        self._enqueue(letters, front=True)
        if self._down_since is None:
            self._down_since = self._clock()
            log.warning(
                "dead letters not written; kept in memory",
                unwritten=self.unwritten,
                error=_describe(exc),
            )

    def _enqueue(self, letters: Sequence[NewDeadLetter], *, front: bool = False) -> None:
        """Add to the backlog (older letters at the front), evicting its oldest beyond the
        bound."""
        with self._lock:
            if front:
                self._backlog.extendleft(reversed(letters))
            else:
                self._backlog.extend(letters)
            excess = max(len(self._backlog) - self._max, 0)
            for _ in range(excess):
                self._backlog.popleft()
            self._evicted += excess
        if excess:
            log.warning("unwritten dead letters evicted by the bound", evicted=excess)

    def _store(self, conn: Connection, letters: list[NewDeadLetter]) -> int:
        """Upsert ``letters`` and trim the table to the bound; the number of rows evicted."""
        conn.execute(self._upsert(), _merged_rows(letters))
        size = int(conn.execute(select(func.count()).select_from(_dl)).scalar_one())
        excess = size - self._max
        if excess <= 0:
            return 0
        oldest = select(_dl.c.id).order_by(_dl.c.id).limit(excess)
        return int(conn.execute(delete(_dl).where(_dl.c.id.in_(oldest))).rowcount)

    def _upsert(self) -> Insert:
        """Insert, or add to the letter already there for that event and handler."""
        statement: postgresql.Insert | sqlite.Insert = (
            postgresql.insert(_dl) if self.db.backend == "postgresql" else sqlite.insert(_dl)
        )
        new = statement.excluded
        changes: dict[str, Any] = {name: new[name] for name in _LATEST}
        # The status stays: a letter claimed by a replay remains claimed by it.
        changes["attempts"] = _dl.c.attempts + new.attempts
        return statement.on_conflict_do_update(index_elements=["event_id", "handler"], set_=changes)

    # ----- reading ------------------------------------------------------------------------

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        handler: str | None = None,
        event_type: str | None = None,
    ) -> tuple[int, list[DeadLetter]]:
        """The number of matching letters, and one page of them by id."""
        where = []
        if handler is not None:
            where.append(_dl.c.handler == handler)
        if event_type is not None:
            where.append(_dl.c.event_type == event_type)
        total = select(func.count()).select_from(_dl).where(*where)
        page = (
            select(_dl).where(*where).order_by(_dl.c.id).limit(max(limit, 0)).offset(max(offset, 0))
        )
        with self.db.read("dead_letters.list") as conn:
            count = int(conn.execute(total).scalar_one())
            rows = conn.execute(page).all()
        return count, [_letter(r._mapping) for r in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        with self.db.read("dead_letters.get") as conn:
            row = conn.execute(select(_dl).where(_dl.c.id == letter_id)).first()
        return None if row is None else _letter(row._mapping)

    def size(self) -> int:
        with self.db.read("dead_letters.size") as conn:
            return int(conn.execute(select(func.count()).select_from(_dl)).scalar_one())

    def stats(self) -> dict[str, int]:
        return {
            "size": self.size(),
            "bound": self.bound,
            "evicted": self.evicted,
            "unwritten": self.unwritten,
            "rejected": self.rejected,
        }

    # ----- replay -------------------------------------------------------------------------

    def claim(self, letter_id: int) -> DeadLetter | None:
        """Mark the letter as being replayed and return it; None if there is no such letter.

        Raises ``DeadLetterBusy`` if another replay holds it.
        """
        mine = _dl.c.id == letter_id
        with self.db.write("dead_letters.claim") as conn:
            claimed = conn.execute(
                update(_dl).where(mine, _dl.c.status == PENDING).values(status=REPLAYING)
            ).rowcount
            row = conn.execute(select(_dl).where(mine)).first()
        if row is None:
            return None
        if not claimed:
            raise DeadLetterBusy(f"dead letter {letter_id} is being replayed")
        return _letter(row._mapping)

    def release(
        self,
        letter_id: int,
        *,
        error_type: str,
        error_category: str,
        error_message: str,
        attempts: int,
        failed_at: datetime,
    ) -> None:
        """A replay failed: the letter is pending again, with this failure added to it."""
        with self.db.write("dead_letters.release") as conn:
            conn.execute(
                update(_dl)
                .where(_dl.c.id == letter_id)
                .values(
                    status=PENDING,
                    attempts=_dl.c.attempts + attempts,
                    last_failed_at=failed_at,
                    error_type=error_type,
                    error_category=error_category,
                    error_message=error_message,
                )
            )

    def remove(self, letter_id: int) -> None:
        """A replay succeeded: the letter is done."""
        with self.db.write("dead_letters.remove") as conn:
            conn.execute(delete(_dl).where(_dl.c.id == letter_id))

    def discard(self, letter_id: int) -> bool:
        """Give up on a letter; False if there is none. Raises ``DeadLetterBusy`` while it is
        being replayed, so a replay in flight is not silently orphaned."""
        mine = _dl.c.id == letter_id
        with self.db.write("dead_letters.discard") as conn:
            deleted = conn.execute(delete(_dl).where(mine, _dl.c.status == PENDING)).rowcount
            if deleted:
                return True
            exists = conn.execute(select(_dl.c.id).where(mine)).first() is not None
        if exists:
            raise DeadLetterBusy(f"dead letter {letter_id} is being replayed")
        return False

    def release_stale_claims(self) -> int:
        """Claims a crashed process left behind become pending again; call before replaying."""
        with self.db.write("dead_letters.release_stale") as conn:
            released = int(
                conn.execute(
                    update(_dl).where(_dl.c.status == REPLAYING).values(status=PENDING)
                ).rowcount
            )
        if released:
            log.info("stale dead-letter claims released", released=released)
        return released


def _refused(exc: SQLAlchemyError) -> bool:
    """True when the database (or the driver) refused the data itself, not when it failed.

    Only these are not retried: anything else, from a lost connection to a missing table, is
    taken for an outage and the letters wait.
    """
    if isinstance(exc, DBAPIError):
        return isinstance(exc, IntegrityError | DataError) and not exc.connection_invalidated
    return isinstance(exc, StatementError)  # a value that could not even be bound


def _describe(exc: BaseException) -> str:
    return scrub_text(f"{type(exc).__name__}: {exc}")[:500]


def _merged_rows(batch: list[NewDeadLetter]) -> list[dict[str, Any]]:
    """One row per (event, handler), in order of first appearance: one statement may not
    update the same row twice (PostgreSQL refuses), so repeats are merged here as the upsert
    merges them with the stored row."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for letter in batch:
        row = {f.name: getattr(letter, f.name) for f in fields(letter)}
        event = row.pop("event")
        row.update(
            event_id=event.id,
            event_type=event.type,
            event_time=event.time,
            event=encode_event(event).decode(),
        )
        seen = rows.setdefault((event.id, letter.handler), row)
        if seen is not row:
            seen.update({k: row[k] for k in _LATEST}, attempts=seen["attempts"] + row["attempts"])
    return list(rows.values())


def _letter(row: Any) -> DeadLetter:
    try:
        event = decode_event(row["event"])
    except EventCodecError as exc:
        raise EventCodecError(f"dead letter {row['id']}: {exc}") from exc
    return DeadLetter(
        event=event, **{f.name: row[f.name] for f in fields(DeadLetter) if f.name != "event"}
    )
