"""A snapshot the database refuses for its data is held, and the next one proceeds.

The refusal is real: a trigger on the database refuses one callsign, the way a value out of a
column's range or over an index's size limit would be refused. On SQLite a cid beyond 64 bits
is refused by the driver itself.
"""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from sqlalchemy import Engine, func, select, text

from feeds import SMALL, encode, later, load, timestamp
from vatsim_collector.feed.models import Snapshot
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t

POISON = "POISON1"

# The database refuses a pilot session with the poisoned callsign as a constraint would.
REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON pilot_sessions "
        f"WHEN NEW.callsign = '{POISON}' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned callsign'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.callsign = '{POISON}' THEN "
        "RAISE EXCEPTION 'poisoned callsign' USING ERRCODE = 'check_violation'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON pilot_sessions "
        "FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ],
}


def refuse_poison(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in REFUSE[engine.dialect.name]:
            conn.execute(text(statement))


def with_poison(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    pilot = copy.deepcopy(out["pilots"][0])
    pilot.update(callsign=POISON, cid=999_999_1)
    out["pilots"].append(pilot)
    return out


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (t.snapshots, t.pilot_sessions, t.positions)
        }


def held(engine: Engine) -> list[tuple[str, str, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.held_documents.c.kind, t.held_documents.c.reason, t.held_documents.c.body_gzip
            ).order_by(t.held_documents.c.id)
        ).all()
    return [(kind, reason, gzip.decompress(body)) for kind, reason, body in rows]


def test_a_refused_snapshot_is_held_and_the_next_one_proceeds(engine: Engine) -> None:
    refuse_poison(engine)
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    first = load(SMALL)
    second = with_poison(later(first, 15))
    third = later(first, 30)

    assert ingestor.ingest(encode(first)).outcome is Outcome.INGESTED
    before = counts(engine)
    result = ingestor.ingest(encode(second))
    assert result.outcome is Outcome.HELD
    assert result.update_timestamp == timestamp(second)
    assert result.reason is not None
    assert result.reason.startswith("not stored: ")
    # The constraint is named by its code, PostgreSQL's SQLSTATE or SQLite's result code.
    assert "(23514)" in result.reason or "SQLITE_CONSTRAINT" in result.reason
    assert counts(engine) == before, "nothing of the refused snapshot is stored"
    [(kind, reason, body)] = held(engine)
    assert (kind, reason) == ("held", result.reason)
    assert orjson.loads(body)["general"] == second["general"]
    assert "poisoned" not in reason, "the driver's message (which may quote rows) is not kept"

    # The next snapshot is applied on the state the database really has: every session of the
    # first snapshot continues, and none of the held one's new sessions exist.
    assert ingestor.ingest(encode(third)).outcome is Outcome.INGESTED
    after = counts(engine)
    assert after["snapshots"] == 2
    assert after["pilot_sessions"] == before["pilot_sessions"]
    assert after["positions"] == before["positions"] + len(third["pilots"])
    assert ingestor.stats.snapshots_held == 1


def test_a_value_the_driver_cannot_send_is_held_not_raised(engine: Engine) -> None:
    # Built past the decoder, which would drop such a record: the writer's own last line.
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    snapshot = msgspec.json.decode(encode(doc), type=Snapshot)
    snapshot.pilots[0].cid = 10**20
    doc["pilots"][0]["cid"] = 10**20
    raw = json.dumps(doc).encode()
    result = ingestor.ingest_snapshot(snapshot, None, raw=raw, fetched_at=datetime.now(UTC))
    assert result.outcome is Outcome.HELD
    assert counts(engine)["snapshots"] == 0
    assert [kind for kind, _, _ in held(engine)] == ["held"]
    assert ingestor.ingest(encode(later(load(SMALL), 15))).outcome is Outcome.INGESTED


@pytest.mark.parametrize(
    ("stamp", "why"),
    [
        ("2099-01-01T00:00:00Z", "ahead of the collector's clock"),
        ("1970-01-01T00:00:00Z", "before the VATSIM feed existed"),
        ("0001-01-01T00:00:00Z", "before the VATSIM feed existed"),
    ],
)
def test_impossible_timestamps_are_quarantined_and_hide_nothing(
    engine: Engine, stamp: str, why: str
) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    good = load(SMALL)
    bad = copy.deepcopy(good)
    bad["general"]["update_timestamp"] = stamp
    result = ingestor.ingest(encode(bad))
    assert result.outcome is Outcome.QUARANTINED
    assert result.reason is not None
    assert why in result.reason
    [(kind, reason, _)] = held(engine)
    assert (kind, reason) == ("quarantined", result.reason)
    assert counts(engine)["snapshots"] == 0, "an impossible moment gets no snapshot row"
    # The real documents after it are stored, and so is one dated before it.
    assert ingestor.ingest(encode(good)).outcome is Outcome.INGESTED
    assert ingestor.ingest(encode(later(good, 15))).outcome is Outcome.INGESTED
    assert ingestor.live.snapshot_at == timestamp(later(good, 15))


def test_a_document_from_just_inside_the_margin_is_accepted(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig(future_margin_seconds=300))
    ingestor.restore()
    doc = load(SMALL)
    fetched_at = timestamp(doc) - timedelta(seconds=299)
    assert ingestor.ingest(encode(doc), fetched_at=fetched_at).outcome is Outcome.INGESTED
    ahead = later(doc, 15)
    fetched_at = timestamp(ahead) - timedelta(seconds=301)
    assert ingestor.ingest(encode(ahead), fetched_at=fetched_at).outcome is Outcome.QUARANTINED


def test_live_collection_quarantines_a_document_too_old_when_fetched(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig(max_document_age_seconds=3600))
    ingestor.restore()
    doc = load(SMALL)
    fetched_at = timestamp(doc) + timedelta(hours=2)
    live = ingestor.ingest(encode(doc), fetched_at=fetched_at, live=True)
    assert live.outcome is Outcome.QUARANTINED
    assert live.reason is not None
    assert "old when fetched" in live.reason
    # A replay of the same recorded file takes it: age is no fault in a recording.
    replayed = ingestor.ingest(encode(doc), fetched_at=fetched_at)
    assert replayed.outcome is Outcome.INGESTED


def test_an_oversized_section_quarantines_the_snapshot(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig(max_records_per_section=100))
    ingestor.restore()
    doc = load(SMALL)
    assert len(doc["pilots"]) > 100
    result = ingestor.ingest(encode(doc))
    assert result.outcome is Outcome.QUARANTINED
    assert result.reason is not None
    assert "more than the limit of 100" in result.reason
    assert counts(engine)["pilot_sessions"] == 0
