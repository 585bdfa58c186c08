"""Sessions, flights and snapshots as stored, on real shared snapshots (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from feeds import LARGEST, REAL_FEEDS, SMALL, encode, later, load, parse_time, pilot_keys, timestamp
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t

ALL_TABLES = [
    t.snapshots,
    t.held_documents,
    t.flights,
    t.pilot_sessions,
    t.flight_plans,
    t.positions,
    t.controller_sessions,
    t.atis_sessions,
    t.atis_revisions,
    t.prefiles,
    t.transceivers,
]


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in ALL_TABLES
        }


def make_ingestor(engine: Engine, **config: Any) -> Ingestor:
    ingestor = Ingestor(engine, IngestConfig(**config))
    ingestor.restore()
    return ingestor


def test_session_counts_equal_distinct_keys_across_real_snapshots(engine: Engine) -> None:
    ingestor = make_ingestor(engine)
    docs = sorted((load(p) for p in REAL_FEEDS), key=timestamp)
    expected: dict[str, set[Any]] = {"pilots": set(), "controllers": set(), "atis": set()}
    for doc in docs:
        assert ingestor.ingest(encode(doc)).outcome is Outcome.INGESTED
        for section, keys in expected.items():
            keys |= pilot_keys(doc, section)
    counts = row_counts(engine)
    assert counts["pilot_sessions"] == len(expected["pilots"])
    assert counts["controller_sessions"] == len(expected["controllers"])
    assert counts["atis_sessions"] == len(expected["atis"])
    assert counts["positions"] == sum(
        len({(p["cid"], p["callsign"], p["logon_time"]) for p in d["pilots"]}) for d in docs
    )
    assert counts["snapshots"] == len(docs)
    with engine.connect() as conn:
        stored = {
            (r.cid, r.callsign, r.logon_time)
            for r in conn.execute(
                select(
                    t.pilot_sessions.c.cid,
                    t.pilot_sessions.c.callsign,
                    t.pilot_sessions.c.logon_time,
                )
            )
        }
    assert stored == expected["pilots"]


def test_a_second_copy_is_a_duplicate_and_writes_nothing(engine: Engine) -> None:
    raw = SMALL.read_bytes()
    ingestor = make_ingestor(engine)
    assert ingestor.ingest(raw).outcome is Outcome.INGESTED
    before = row_counts(engine)
    assert ingestor.ingest(raw).outcome is Outcome.DUPLICATE
    # A restarted collector knows it too.
    again = make_ingestor(engine)
    assert again.ingest(raw).outcome is Outcome.DUPLICATE
    assert row_counts(engine) == before
    assert ingestor.stats.snapshots_duplicate == 1


def test_two_snapshots_of_the_same_sessions_make_one_session_each(engine: Engine) -> None:
    first = load(LARGEST)
    second = later(first, 15)
    ingestor = make_ingestor(engine)
    ingestor.ingest(encode(first))
    ingestor.ingest(encode(second))
    counts = row_counts(engine)
    distinct = len(pilot_keys(first))
    assert counts["pilot_sessions"] == distinct
    assert counts["flights"] == distinct
    assert counts["positions"] == 2 * distinct
    assert counts["controller_sessions"] == len(pilot_keys(first, "controllers"))
    with engine.connect() as conn:
        last_seen = set(conn.execute(select(t.pilot_sessions.c.last_seen_at)).scalars())
        open_count = conn.execute(
            select(func.count()).where(t.pilot_sessions.c.ended_at.is_(None))
        ).scalar_one()
    assert last_seen == {timestamp(second)}
    assert open_count == distinct


def _without_pilot(doc: dict[str, Any], callsign: str) -> dict[str, Any]:
    return {**doc, "pilots": [p for p in doc["pilots"] if p["callsign"] != callsign]}


@pytest.mark.parametrize("missed_to_end", [1, 4])
def test_absent_sessions_close_after_n_snapshots_at_their_last_seen_time(
    engine: Engine, missed_to_end: int
) -> None:
    base = load(SMALL)
    gone = base["pilots"][0]["callsign"]
    ingestor = make_ingestor(engine, missed_snapshots_to_end=missed_to_end)
    ingestor.ingest(encode(base))
    ingestor.ingest(encode(later(base, 15)))
    last_seen = timestamp(base) + timedelta(seconds=15)

    def ended_at() -> Any:
        with engine.connect() as conn:
            return conn.execute(
                select(t.pilot_sessions.c.ended_at).where(t.pilot_sessions.c.callsign == gone)
            ).scalar_one()

    for n in range(1, missed_to_end + 1):
        ingestor.ingest(encode(_without_pilot(later(base, 15 * (n + 1)), gone)))
        if n < missed_to_end:
            assert ended_at() is None, f"closed after only {n} missed snapshots"
    assert ended_at() == last_seen
    assert ingestor.stats.pilot_sessions_closed == 1
    with engine.connect() as conn:
        flight_end = conn.execute(
            select(t.flights.c.ended_at).where(t.flights.c.callsign == gone)
        ).scalar_one()
    assert flight_end == last_seen


def test_a_returning_session_resets_its_missed_count(engine: Engine) -> None:
    base = load(SMALL)
    gone = base["pilots"][0]["callsign"]
    ingestor = make_ingestor(engine, missed_snapshots_to_end=2)
    ingestor.ingest(encode(base))
    ingestor.ingest(encode(_without_pilot(later(base, 15), gone)))
    ingestor.ingest(encode(later(base, 30)))
    ingestor.ingest(encode(_without_pilot(later(base, 45), gone)))
    assert ingestor.stats.pilot_sessions_closed == 0
    assert ingestor.stats.pilot_sessions_opened == len(pilot_keys(base))


def test_a_quarantined_snapshot_closes_nothing(engine: Engine) -> None:
    base = load(SMALL)
    ingestor = make_ingestor(engine, missed_snapshots_to_end=1, sanity_accept_after=3)
    ingestor.ingest(encode(base))
    glitch = later(base, 15)
    glitch["pilots"] = glitch["pilots"][: len(glitch["pilots"]) // 5]
    glitch["controllers"] = glitch["controllers"][:5]
    result = ingestor.ingest(encode(glitch), source="glitch.json")
    assert result.outcome is Outcome.QUARANTINED
    assert result.reason is not None
    assert "drop" in result.reason
    assert ingestor.ingest(encode(later(base, 30))).outcome is Outcome.INGESTED
    assert ingestor.stats.pilot_sessions_closed == 0
    assert ingestor.stats.controller_sessions_closed == 0
    with engine.connect() as conn:
        held = conn.execute(select(t.held_documents.c.kind, t.held_documents.c.source)).all()
        statuses = conn.execute(select(t.snapshots.c.status)).scalars().all()
    assert [(h.kind, h.source) for h in held] == [("quarantined", "glitch.json")]
    assert sorted(statuses) == ["accepted", "accepted", "quarantined"]


def test_too_few_pilots_is_quarantined(engine: Engine) -> None:
    ingestor = make_ingestor(engine, sanity_min_pilots=10_000)
    result = ingestor.ingest(SMALL.read_bytes())
    assert result.outcome is Outcome.QUARANTINED
    assert result.reason is not None
    assert "fewer than the configured minimum" in result.reason
    assert row_counts(engine)["pilot_sessions"] == 0


def test_a_persistent_drop_is_believed_after_the_configured_count(engine: Engine) -> None:
    base = load(SMALL)
    ingestor = make_ingestor(engine, sanity_accept_after=2)
    ingestor.ingest(encode(base))
    outcomes = []
    for i in range(1, 5):
        smaller = later(base, 15 * i)
        smaller["pilots"] = smaller["pilots"][:100]
        outcomes.append(ingestor.ingest(encode(smaller)).outcome)
    assert outcomes == [
        Outcome.QUARANTINED,
        Outcome.QUARANTINED,
        Outcome.INGESTED,
        Outcome.INGESTED,
    ]


def test_an_older_snapshot_than_the_latest_is_rejected_not_applied(engine: Engine) -> None:
    base = load(SMALL)
    ingestor = make_ingestor(engine)
    ingestor.ingest(encode(later(base, 60)))
    before = row_counts(engine)
    result = ingestor.ingest(encode(base))
    assert result.outcome is Outcome.REJECTED
    assert result.reason is not None
    assert "older than the latest" in result.reason
    after = row_counts(engine)
    assert after["held_documents"] == before["held_documents"] + 1
    assert {k: v for k, v in after.items() if k != "held_documents"} == {
        k: v for k, v in before.items() if k != "held_documents"
    }


def test_restart_never_splits_a_session_and_keeps_missed_counts(engine: Engine) -> None:
    base = load(SMALL)
    gone = base["pilots"][0]["callsign"]
    first = make_ingestor(engine, missed_snapshots_to_end=3)
    first.ingest(encode(base))
    first.ingest(encode(_without_pilot(later(base, 15), gone)))  # missed once
    second = make_ingestor(engine, missed_snapshots_to_end=3)
    assert len(second.state.pilots) == len(pilot_keys(base))
    second.ingest(encode(_without_pilot(later(base, 30), gone)))  # twice
    assert second.stats.pilot_sessions_closed == 0
    second.ingest(encode(_without_pilot(later(base, 45), gone)))  # three times: ends
    assert second.stats.pilot_sessions_closed == 1
    assert second.stats.pilot_sessions_opened == 0
    counts = row_counts(engine)
    assert counts["pilot_sessions"] == len(pilot_keys(base))
    with engine.connect() as conn:
        ended = conn.execute(
            select(t.pilot_sessions.c.ended_at).where(t.pilot_sessions.c.callsign == gone)
        ).scalar_one()
    assert ended == timestamp(base)


def test_observers_and_supervisors_are_flagged(engine: Engine) -> None:
    doc = load(SMALL)
    make_ingestor(engine).ingest(encode(doc))
    expected_obs = {
        c["callsign"]
        for c in doc["controllers"]
        if c["facility"] == 0 or c["frequency"] == "199.998" or c["callsign"].endswith("_OBS")
    }
    expected_sup = {c["callsign"] for c in doc["controllers"] if c["rating"] in (11, 12)}
    with engine.connect() as conn:
        rows = conn.execute(select(t.controller_sessions)).all()
    assert expected_obs
    assert {r.callsign for r in rows if r.is_observer} == expected_obs
    assert {r.callsign for r in rows if r.is_supervisor} == expected_sup


def test_logon_times_keep_their_fraction(engine: Engine) -> None:
    doc = load(LARGEST)
    make_ingestor(engine).ingest(encode(doc))
    with engine.connect() as conn:
        stored = set(conn.execute(select(t.pilot_sessions.c.logon_time)).scalars())
    assert stored == {parse_time(p["logon_time"]) for p in doc["pilots"]}


@pytest.mark.parametrize("restart", [False, True])
def test_the_same_connection_back_after_a_long_gap_resumes_its_session(
    engine: Engine, restart: bool
) -> None:
    base = load(SMALL)
    gone = base["pilots"][0]["callsign"]
    ingestor = make_ingestor(engine, missed_snapshots_to_end=2)
    ingestor.ingest(encode(base))
    ingestor.ingest(encode(_without_pilot(later(base, 15), gone)))
    ingestor.ingest(encode(_without_pilot(later(base, 30), gone)))
    assert ingestor.stats.pilot_sessions_closed == 1
    if restart:
        ingestor = make_ingestor(engine, missed_snapshots_to_end=2)
    ingestor.ingest(encode(later(base, 45)))
    counts = row_counts(engine)
    assert counts["pilot_sessions"] == len(pilot_keys(base))
    with engine.connect() as conn:
        row = conn.execute(
            select(t.pilot_sessions).where(t.pilot_sessions.c.callsign == gone)
        ).one()
        flight_ended = conn.execute(
            select(t.flights.c.ended_at).where(t.flights.c.id == row.flight_id)
        ).scalar_one()
    assert row.ended_at is None
    assert row.last_seen_at == timestamp(base) + timedelta(seconds=45)
    assert flight_ended is None
