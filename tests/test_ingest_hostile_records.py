"""Ingest of documents with arbitrary bad records inside valid envelopes, on the real database:
it never raises, and per section every served record is either stored or dropped."""

from __future__ import annotations

import itertools
from datetime import timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from feeds import feed_time, parse_time
from test_record_validation import REAL, REAL_RECORDS, mutated
from vatsim_collector.feed.report import SNAPSHOT_SECTIONS
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t

HELD_PER_SNAPSHOT = 5


@st.composite
def hostile_sections(draw: st.DrawFn) -> dict[str, list[bytes]]:
    """Each section: distinct real records (so no two are one session), some spoiled."""
    sections: dict[str, list[bytes]] = {}
    for name in SNAPSHOT_SECTIONS:
        pool = REAL_RECORDS[name]
        picks = draw(st.lists(st.integers(0, len(pool) - 1), unique=True, max_size=8))
        sections[name] = [draw(mutated(pool[i])) for i in picks]
    return sections


def document(sections: dict[str, list[bytes]], stamp: str) -> bytes:
    general = orjson.dumps({**REAL["general"], "update_timestamp": stamp})
    body = [b'"general": ' + general] + [
        f'"{name}": ['.encode() + b", ".join(raws) + b"]" for name, raws in sections.items()
    ]
    return b"{" + b", ".join(body) + b"}"


def test_ingest_never_raises_and_every_served_record_is_stored_or_dropped(
    engine: Engine,
) -> None:
    ingestor = Ingestor(
        engine,
        IngestConfig(
            sanity_min_pilots=0,
            sanity_max_drop_fraction=1.0,
            held_records_per_snapshot=HELD_PER_SNAPSHOT,
        ),
    )
    ingestor.restore()
    start = parse_time(REAL["general"]["update_timestamp"])
    ticks = itertools.count(1)

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostile_sections())
    def check(sections: dict[str, list[bytes]]) -> None:
        at = start + timedelta(seconds=15 * next(ticks))
        result = ingestor.ingest(document(sections, feed_time(at)))  # never raises
        assert result.outcome is Outcome.INGESTED, result.reason
        snapshot_id = t.snapshot_id_for(at)
        with engine.connect() as conn:
            stored_pilots = conn.execute(
                select(func.count())
                .select_from(t.positions)
                .where(t.positions.c.snapshot_id == snapshot_id)
            ).scalar_one()
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snapshot_id)).one()
            held = conn.execute(
                select(func.count())
                .select_from(t.held_documents)
                .where(t.held_documents.c.snapshot_id == snapshot_id)
            ).scalar_one()
        dropped = result.drop_reasons
        for name in SNAPSHOT_SECTIONS:
            lost = sum(n for key, n in dropped.items() if key.startswith(f"{name}."))
            stored = stored_pilots if name == "pilots" else getattr(row, name)
            assert stored + lost == len(sections[name]), name
        assert result.records_dropped == sum(dropped.values())
        assert held == min(result.records_dropped, HELD_PER_SNAPSHOT)

    check()
