"""The dead-letter queue on a real database: upserts, the bound, claims, restarts, outages."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from tcpproxy import TcpProxy
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import AtisChanged, PilotConnected
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import (
    DeadLetter,
    DeadLetterBusy,
    DeadLetterQueue,
    NewDeadLetter,
)
from vatsim_collector.store.engine import create_db_engine

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def pilot_event(n: int) -> Event:
    at = T0 + timedelta(seconds=15 * n)
    payload = PilotConnected(
        session_id=n,
        flight_id=n,
        cid=1_000_000 + n,
        callsign=f"TST{n}",
        logon_time=at,
        latitude=51.5,
        longitude=-0.1,
        altitude=3000,
        departure="EGLL",
        arrival=None,
    )
    return Event.create(payload, time=at, source="test")


def atis_event(n: int) -> Event:
    payload = AtisChanged(
        session_id=n,
        cid=2_000_000 + n,
        callsign="EGLL_ATIS",
        frequency="128.075",
        atis_code="K",
        text=("HEATHROW INFORMATION K",),
    )
    return Event.create(payload, time=T0 + timedelta(seconds=15 * n), source="test")


def letter(
    event: Event,
    handler: str = "stats",
    *,
    attempts: int = 3,
    failed_at: datetime = T0,
    message: str = "boom",
) -> NewDeadLetter:
    return NewDeadLetter(
        event=event,
        handler=handler,
        error_type="builtins.RuntimeError",
        error_category="handler",
        error_message=message,
        attempts=attempts,
        first_failed_at=failed_at - timedelta(seconds=1),
        last_failed_at=failed_at,
    )


def stored(queue: DeadLetterQueue) -> list[DeadLetter]:
    total, letters = queue.list(limit=1000)
    assert total == len(letters)
    return letters


def test_put_list_get_and_summary(db: DatabaseService) -> None:
    queue = DeadLetterQueue(db)
    events = [pilot_event(1), atis_event(2), pilot_event(3)]
    assert queue.put([letter(events[0]), letter(events[1], "archive"), letter(events[2])]) == 3

    letters = stored(queue)
    assert [x.event for x in letters] == events
    assert [x.id for x in letters] == sorted(x.id for x in letters)
    first = letters[0]
    assert first.handler == "stats"
    assert first.status == "pending"
    assert first.attempts == 3
    assert first.error_message == "boom"
    assert first.first_failed_at == T0 - timedelta(seconds=1)
    assert first.last_failed_at.tzinfo == UTC
    assert queue.get(first.id) == first
    assert queue.get(first.id + 1000) is None

    summary = first.summary()
    assert summary["event"] == events[0].summary()
    assert summary["event"]["payload"]["type"] == "pilot.connected"
    assert summary["last_failed_at"] == T0.isoformat()
    assert summary["status"] == "pending"

    assert queue.list(handler="archive") == (1, [letters[1]])
    assert queue.list(event_type="pilot.connected") == (2, [letters[0], letters[2]])
    assert queue.list(limit=1, offset=1) == (3, [letters[1]])
    assert queue.list(handler="stats", event_type="atis.changed") == (0, [])
    assert queue.size() == 3
    assert queue.stats() == {
        "size": 3,
        "bound": 10_000,
        "evicted": 0,
        "unwritten": 0,
        "rejected": 0,
    }


def test_failing_again_adds_to_the_same_letter(db: DatabaseService) -> None:
    queue = DeadLetterQueue(db)
    event = pilot_event(1)
    queue.put([letter(event, attempts=3)])
    (before,) = stored(queue)
    assert queue.claim(before.id) is not None
    later = T0 + timedelta(minutes=5)
    # Once more on its own, and twice in one batch (beside another handler's letter).
    queue.put([letter(event, attempts=2, failed_at=later, message="again")])
    queue.put(
        [
            letter(event, attempts=1, failed_at=later),
            letter(event, "archive", attempts=4),
            letter(event, attempts=5, failed_at=later + timedelta(seconds=1), message="last"),
        ]
    )
    mine, other = stored(queue)
    assert mine.id == before.id
    assert mine.attempts == 3 + 2 + 1 + 5
    assert mine.first_failed_at == before.first_failed_at
    assert mine.last_failed_at == later + timedelta(seconds=1)
    assert mine.error_message == "last"
    assert mine.status == "replaying"  # the replay that claimed it still holds it
    assert (other.handler, other.attempts) == ("archive", 4)


def test_claim_release_remove_and_discard(db: DatabaseService) -> None:
    queue = DeadLetterQueue(db)
    queue.put([letter(pilot_event(1)), letter(pilot_event(2))])
    one, two = stored(queue)

    claimed = queue.claim(one.id)
    assert claimed is not None
    assert claimed.status == "replaying"
    assert claimed.event == one.event
    with pytest.raises(DeadLetterBusy):
        queue.claim(one.id)
    with pytest.raises(DeadLetterBusy):
        queue.discard(one.id)
    assert queue.claim(9999) is None

    failed_at = T0 + timedelta(hours=1)
    queue.release(
        one.id,
        error_type="builtins.TimeoutError",
        error_category="timeout",
        error_message="too slow",
        attempts=2,
        failed_at=failed_at,
    )
    released = queue.get(one.id)
    assert released is not None
    assert (released.status, released.attempts) == ("pending", 5)
    assert (released.error_type, released.error_category) == ("builtins.TimeoutError", "timeout")
    assert (released.error_message, released.last_failed_at) == ("too slow", failed_at)
    assert released.first_failed_at == one.first_failed_at

    assert queue.claim(one.id) is not None
    queue.remove(one.id)
    assert queue.get(one.id) is None
    assert queue.discard(one.id) is False
    assert queue.discard(two.id) is True
    assert queue.size() == 0


def test_the_bound_evicts_the_oldest_and_counts_them(db: DatabaseService) -> None:
    queue = DeadLetterQueue(db, max_entries=3)
    events = [pilot_event(n) for n in range(6)]
    queue.put([letter(e) for e in events[:2]])
    with structlog.testing.capture_logs() as logs:
        queue.put([letter(e) for e in events[2:5]])
        queue.put([letter(events[5])])
    assert [x.event for x in stored(queue)] == events[3:]
    assert queue.evicted == 3
    assert queue.stats() == {"size": 3, "bound": 3, "evicted": 3, "unwritten": 0, "rejected": 0}
    warnings = [e for e in logs if e["event"] == "dead letters evicted by the bound"]
    assert [w["evicted"] for w in warnings] == [2, 1]
    assert all(w["log_level"] == "warning" for w in warnings)
    # Failing again for an event already queued does not grow the table.
    queue.put([letter(events[4])])
    assert queue.size() == 3
    assert queue.evicted == 3


def test_letters_and_claims_survive_a_restart(database_url: str, engine: Engine) -> None:
    before = DeadLetterQueue(DatabaseService.for_engine(engine))
    before.put([letter(pilot_event(1)), letter(atis_event(2), "archive")])
    one, two = stored(before)
    assert before.claim(one.id) is not None
    engine.dispose()  # the process ends in the middle of a replay

    after_engine = create_db_engine(database_url)
    try:
        after = DeadLetterQueue(DatabaseService.for_engine(after_engine))
        assert [(x.id, x.event, x.handler) for x in stored(after)] == [
            (one.id, one.event, one.handler),
            (two.id, two.event, two.handler),
        ]
        with pytest.raises(DeadLetterBusy):
            after.claim(one.id)
        assert after.release_stale_claims() == 1
        assert after.release_stale_claims() == 0
        assert {x.status for x in stored(after)} == {"pending"}
        assert after.claim(one.id) is not None
    finally:
        after_engine.dispose()


def test_a_letter_the_database_refuses_does_not_hold_up_the_others(db: DatabaseService) -> None:
    queue = DeadLetterQueue(db)
    good = [letter(pilot_event(1)), letter(pilot_event(3))]
    naive = T0.replace(tzinfo=None)  # refused by the column type on every attempt
    bad = NewDeadLetter(**{**letter(pilot_event(2)).__dict__, "last_failed_at": naive})
    with structlog.testing.capture_logs() as logs:
        assert queue.put([good[0], bad, good[1]]) == 2
    assert [x.event for x in stored(queue)] == [good[0].event, good[1].event]
    assert queue.stats()["rejected"] == 1
    assert queue.unwritten == 0
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert error["event_id"] == bad.event.id


# ----- outages ----------------------------------------------------------------------------


@dataclass
class Switch:
    """Makes the queue's database fail for real, and recover."""

    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture
def outage(database_url: str, engine: Engine) -> Iterator[tuple[DatabaseService, Switch]]:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        db = DatabaseService.for_engine(create_db_engine(proxied))
        try:
            yield db, Switch(proxy.cut, proxy.restore)
        finally:
            db.dispose()
            proxy.close()
        return
    # SQLite: another connection holds the write lock and the queue waits only briefly for it,
    # as when some other writer hogs the file.
    holder = sqlite3.connect(str(url.database), isolation_level=None)
    db = DatabaseService.for_engine(create_engine(database_url, connect_args={"timeout": 0.05}))

    def cut() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def restore() -> None:
        holder.execute("ROLLBACK")

    try:
        yield db, Switch(cut, restore)
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        db.dispose()


def test_an_outage_keeps_letters_in_memory_until_a_flush(
    outage: tuple[DatabaseService, Switch],
) -> None:
    db, switch = outage
    queue = DeadLetterQueue(db, max_entries=100)
    events = [pilot_event(n) for n in range(5)]
    assert queue.put([letter(events[0])]) == 1

    switch.cut()
    with structlog.testing.capture_logs() as logs:
        assert queue.put([letter(events[1]), letter(events[2])]) == 0
        assert queue.put([letter(events[3])]) == 0
        assert queue.flush() == 0
    assert queue.unwritten == 3
    kept = [e for e in logs if e["event"] == "dead letters not written; kept in memory"]
    assert len(kept) == 1, "an outage is logged once, not per attempt"

    switch.restore()
    with structlog.testing.capture_logs() as logs:
        assert queue.flush() == 3
    assert queue.unwritten == 0
    assert [e["written"] for e in logs if e["event"] == "dead letters written again"] == [3]
    assert [x.event for x in stored(queue)] == events[:4]
    assert queue.flush() == 0

    switch.cut()
    queue.put([letter(events[4], attempts=1), letter(events[0], attempts=1)])
    switch.restore()
    # The next put writes what waited first, then its own letters.
    assert queue.put([letter(events[4], attempts=2, message="latest")]) == 3
    letters = stored(queue)
    assert [x.event for x in letters] == events
    assert (letters[0].attempts, letters[4].attempts) == (4, 3)
    assert letters[4].error_message == "latest"


def test_letters_waiting_in_memory_are_bounded_too(
    outage: tuple[DatabaseService, Switch],
) -> None:
    db, switch = outage
    queue = DeadLetterQueue(db, max_entries=2)
    events = [pilot_event(n) for n in range(4)]
    switch.cut()
    assert queue.put([letter(e) for e in events[:3]]) == 0
    assert queue.put([letter(events[3])]) == 0
    assert (queue.unwritten, queue.evicted) == (2, 2)
    switch.restore()
    assert queue.flush() == 2
    assert [x.event for x in stored(queue)] == events[2:]
    assert queue.stats() == {"size": 2, "bound": 2, "evicted": 2, "unwritten": 0, "rejected": 0}
