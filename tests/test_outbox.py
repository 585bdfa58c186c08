"""The transactional outbox: a snapshot's events are written in the snapshot's own transaction.

A committed snapshot leaves exactly its events (those the bus gets, in the same order, under
``<prefix>.<type>``); a snapshot the database refuses leaves none; an outbox row the database
refuses takes the snapshot down with it. Real databases, real refusals (triggers), no mocks.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from feeds import SMALL, encode, later, load
from test_poison_pills import refuse_poison, with_poison
from vatsim_collector.events.event import decode_event, encode_event
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, IngestResult, Outcome
from vatsim_collector.store import outbox
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.forget import forget_member
from vatsim_collector.store.outbox import EventOutbox

PREFIX = "test.events"


def outbox_ingestor(engine: Engine, **config: object) -> Ingestor:
    ingestor = Ingestor(engine, IngestConfig(**config))  # type: ignore[arg-type]
    ingestor.outbox = EventOutbox(PREFIX)
    ingestor.restore()
    return ingestor


def rows(engine: Engine) -> list[outbox.OutboxRow]:
    with engine.connect() as conn:
        return outbox.read_batch(conn, 1_000_000)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def assert_rows_are(found: list[outbox.OutboxRow], result: IngestResult) -> None:
    assert [r.event_id for r in found] == [e.id for e in result.events]
    assert [r.subject for r in found] == [f"{PREFIX}.{e.type}" for e in result.events]
    assert [r.body for r in found] == [encode_event(e) for e in result.events]
    assert {r.snapshot_id for r in found} == {result.snapshot_id}
    assert [decode_event(r.body) for r in found] == result.events


def test_a_committed_snapshot_leaves_exactly_its_events_in_order(engine: Engine) -> None:
    ingestor = outbox_ingestor(engine)
    first = load(SMALL)
    result = ingestor.ingest(encode(first))
    assert result.outcome is Outcome.INGESTED
    # The first snapshot of a network: its snapshot.received, then every connection.
    assert len(result.events) > 100
    assert_rows_are(rows(engine), result)

    # A second snapshot appends its own after the first one's, oldest first by id.
    second = copy.deepcopy(later(first, 15))
    second["pilots"] = second["pilots"][5:]  # some pilots gone: still the same sessions (missed)
    second["pilots"][0]["callsign"] = "NEW1"  # and a new connection
    result2 = ingestor.ingest(encode(second))
    assert result2.outcome is Outcome.INGESTED
    found = rows(engine)
    assert_rows_are(found[len(result.events) :], result2)
    assert [r.id for r in found] == sorted(r.id for r in found)
    assert {e.type for e in result2.events} >= {"snapshot.received", "pilot.connected"}


def test_a_snapshot_the_database_refuses_leaves_no_outbox_rows(engine: Engine) -> None:
    refuse_poison(engine)
    ingestor = outbox_ingestor(engine)
    first = load(SMALL)
    good = ingestor.ingest(encode(first))
    before = rows(engine)
    assert len(before) == len(good.events)

    refused = ingestor.ingest(encode(with_poison(later(first, 15))))
    assert refused.outcome is Outcome.HELD
    assert refused.events == []
    assert rows(engine) == before, "the refused snapshot's events were rolled back with it"

    # The next snapshot's events follow the first one's directly.
    third = ingestor.ingest(encode(later(first, 30)))
    assert third.outcome is Outcome.INGESTED
    assert_rows_are(rows(engine)[len(before) :], third)


# The database refuses an outbox row the way a full disk or a constraint would.
REFUSE_OUTBOX = {
    "sqlite": [
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON event_outbox "
        "WHEN NEW.subject LIKE '%pilot.connected' "
        "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.subject LIKE '%pilot.connected' THEN "
        "RAISE EXCEPTION 'outbox refused' USING ERRCODE = 'check_violation'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON event_outbox "
        "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()",
    ],
}


def test_an_outbox_row_the_database_refuses_takes_the_snapshot_with_it(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in REFUSE_OUTBOX[engine.dialect.name]:
            conn.execute(text(statement))
    ingestor = outbox_ingestor(engine)
    result = ingestor.ingest(encode(load(SMALL)))
    assert result.outcome is Outcome.HELD
    assert count(engine, t.snapshots) == 0
    assert count(engine, t.pilot_sessions) == 0
    assert rows(engine) == []


def test_a_quarantined_snapshot_leaves_its_snapshot_received(engine: Engine) -> None:
    ingestor = outbox_ingestor(engine)
    first = load(SMALL)
    ingestor.ingest(encode(first))
    before = len(rows(engine))
    collapsed = later(first, 15)
    collapsed["pilots"] = collapsed["pilots"][:3]  # most of the network gone at once
    result = ingestor.ingest(encode(collapsed))
    assert result.outcome is Outcome.QUARANTINED
    [row] = rows(engine)[before:]
    [event] = result.events
    assert (row.event_id, row.subject) == (event.id, f"{PREFIX}.snapshot.received")
    assert decode_event(row.body).payload.outcome == "quarantined"  # type: ignore[union-attr]
    assert row.snapshot_id == result.snapshot_id


def test_without_an_outbox_nothing_is_written_and_the_events_are_the_same(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    result = ingestor.ingest(encode(load(SMALL)))
    assert result.outcome is Outcome.INGESTED
    assert result.events[0].type == "snapshot.received"
    assert rows(engine) == []


def test_reads_backlog_and_deletes(engine: Engine) -> None:
    ingestor = outbox_ingestor(engine)
    result = ingestor.ingest(encode(load(SMALL)))
    db = DatabaseService.for_engine(engine)
    with db.read("test") as conn:
        first = outbox.read_batch(conn, 10)
        waiting = outbox.backlog(conn)
    assert [r.event_id for r in first] == [e.id for e in result.events[:10]]
    assert waiting.rows == len(result.events)
    assert waiting.oldest_created_at is not None
    assert waiting.oldest_created_at.tzinfo is not None
    assert abs(waiting.oldest_created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert waiting.age_seconds(waiting.oldest_created_at + timedelta(seconds=7)) == 7.0
    with db.write("test") as conn:
        assert outbox.delete_rows(conn, [r.id for r in first]) == 10
        assert outbox.delete_rows(conn, [r.id for r in first]) == 0
    with db.read("test") as conn:
        assert outbox.read_batch(conn, 1)[0].event_id == result.events[10].id
        assert outbox.backlog(conn).rows == len(result.events) - 10


def test_an_empty_outbox_has_no_age() -> None:
    assert outbox.OutboxBacklog(0, None).age_seconds(datetime.now(UTC)) == 0.0


@pytest.mark.parametrize("prefix", ["vatsim.events", "x"])
def test_subjects_are_the_prefix_and_the_event_type(prefix: str) -> None:
    assert EventOutbox(prefix).subject("pilot.connected") == f"{prefix}.pilot.connected"


def test_forget_removes_their_events_still_waiting_in_the_outbox(engine: Engine) -> None:
    ingestor = outbox_ingestor(engine)
    doc = load(SMALL)
    result = ingestor.ingest(encode(doc))
    cid = int(doc["pilots"][0]["cid"])

    def about(row: outbox.OutboxRow) -> bool:
        payload = decode_event(row.body).payload
        return getattr(payload, "cid", None) == cid

    before = rows(engine)
    theirs = [r for r in before if about(r)]
    assert theirs, "the pilot's pilot.connected waits in the outbox"
    report = forget_member(DatabaseService.for_engine(engine), cid)
    assert report.deleted["event_outbox"] == len(theirs)
    after = rows(engine)
    assert not any(about(r) for r in after)
    assert [r.event_id for r in after] == [r.event_id for r in before if not about(r)]
    assert len(after) == len(result.events) - len(theirs)
