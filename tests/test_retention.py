"""Retention on a real database: partitions dropped on PostgreSQL, chunked deletes elsewhere."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from sqlalchemy import ColumnElement, Engine, Table, func, insert, select, text

from vatsim_collector.config import Settings
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import AtisChanged
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue, NewDeadLetter
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.partitions import PartitionManager, day_bounds, partition_name
from vatsim_collector.store.retention import (
    RetentionJob,
    RetentionPolicy,
    RetentionReport,
    run_periodically,
)

DAY1 = date(2026, 1, 1)
DAY2 = date(2026, 1, 2)
START = datetime(2026, 1, 1, 23, 58, tzinfo=UTC)  # 8 snapshots before midnight, 8 after
SNAPSHOTS = 16
DAY2_START_ID = day_bounds(DAY2)[0]
# Positions and transceivers kept for one day: at this moment all of day 1 is expired.
DAY1_EXPIRED_AT = datetime(2026, 1, 3, 0, 0, tzinfo=UTC)
HISTORY = (t.snapshots, t.pilot_sessions, t.flights, t.flight_plans, t.controller_sessions)
VOLUME_ONLY = RetentionPolicy(
    positions=1, transceivers=1, held_documents=0, error_records=0, events=0
)


def on_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def require_postgresql(engine: Engine) -> None:
    if not on_postgresql(engine):
        pytest.skip("partitions exist only on PostgreSQL; set VATSIM_TEST_DATABASE_URL to run")


def require_sqlite(engine: Engine) -> None:
    if on_postgresql(engine):
        pytest.skip("on PostgreSQL the volume tables expire by partition, not by chunked delete")


@dataclass
class Filled:
    partitions: PartitionManager
    day1: dict[str, int]  # rows per volume table on day 1
    day2: dict[str, int]


def count(engine: Engine, table: Table, *where: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def volume_by_day(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    day1, day2 = {}, {}
    for table in (t.positions, t.transceivers):
        day1[table.name] = count(engine, table, table.c.snapshot_id < DAY2_START_ID)
        day2[table.name] = count(engine, table, table.c.snapshot_id >= DAY2_START_ID)
    return day1, day2


def history_counts(engine: Engine) -> dict[str, int]:
    return {table.name: count(engine, table) for table in HISTORY}


def fill_two_days(engine: Engine) -> Filled:
    """Simulated snapshots either side of midnight, ingested with transceivers."""
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
    ingestor.restore()
    network = SimulatedNetwork(seed=11, start=START)
    for _ in range(SNAPSHOTS):
        result = ingestor.ingest(
            orjson.dumps(network.data_document()),
            transceivers_raw=orjson.dumps(network.transceivers_document()),
            fetched_at=network.now,
        )
        assert result.outcome is Outcome.INGESTED
        network.tick()
    day1, day2 = volume_by_day(engine)
    assert all(n > 0 for n in (*day1.values(), *day2.values()))
    return Filled(ingestor.partitions, day1, day2)


def job_for(
    engine: Engine,
    policy: RetentionPolicy,
    now: datetime,
    *,
    partitions: PartitionManager | None = None,
    chunk_rows: int = 5000,
    lock_timeout: float = 5.0,
) -> RetentionJob:
    return RetentionJob(
        engine,
        policy,
        chunk_rows=chunk_rows,
        partitions=partitions or PartitionManager(),
        clock=lambda: now,
        lock_timeout=lock_timeout,
        chunk_pause=0.0,
    )


def partition_exists(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT to_regclass(:name)"), {"name": name}).scalar() is not None


def children(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {p.name for p in PartitionManager.existing(conn, table)}


# ----- both backends ----------------------------------------------------------------------


def test_expired_day_goes_and_the_current_day_stays(engine: Engine) -> None:
    filled = fill_two_days(engine)
    history = history_counts(engine)
    report = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT, partitions=filled.partitions).run_once()

    day1, day2 = volume_by_day(engine)
    assert day1 == {"positions": 0, "transceivers": 0}
    assert day2 == filled.day2
    assert history_counts(engine) == history
    assert set(report.cutoffs) == {"positions", "transceivers"}
    if on_postgresql(engine):
        assert sorted(report.partitions_dropped) == [
            "positions_p20260101",
            "transceivers_p20260101",
        ]
        assert report.deleted == dict.fromkeys(report.deleted, 0)
        assert report.chunks == 0
    else:
        assert report.partitions_dropped == []
        assert report.deleted["positions"] == filled.day1["positions"]
        assert report.deleted["transceivers"] == filled.day1["transceivers"]
    # Running again finds nothing more to do.
    again = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT, partitions=filled.partitions).run_once()
    assert again.partitions_dropped == []
    assert sum(again.deleted.values()) == 0


def test_a_partly_expired_day_is_kept_whole_on_postgresql_and_trimmed_on_sqlite(
    engine: Engine,
) -> None:
    filled = fill_two_days(engine)
    cutoff = datetime(2026, 1, 1, 23, 59, tzinfo=UTC)
    report = job_for(engine, VOLUME_ONLY, cutoff + timedelta(days=1)).run_once()
    cutoff_id = t.snapshot_id_for(cutoff)
    if on_postgresql(engine):
        assert report.partitions_dropped == []
        assert volume_by_day(engine) == (filled.day1, filled.day2)
    else:
        assert count(engine, t.positions, t.positions.c.snapshot_id < cutoff_id) == 0
        assert count(engine, t.transceivers, t.transceivers.c.snapshot_id < cutoff_id) == 0
        assert count(engine, t.positions, t.positions.c.snapshot_id >= cutoff_id) > 0
        assert volume_by_day(engine)[1] == filled.day2


def test_zero_days_keeps_everything(engine: Engine) -> None:
    filled = fill_two_days(engine)
    add_times(engine, [datetime(2020, 1, 1, tzinfo=UTC)])
    add_events(engine, [datetime(2020, 1, 1, tzinfo=UTC)])
    never = RetentionPolicy(
        positions=0, transceivers=0, held_documents=0, error_records=0, events=0
    )
    report = job_for(engine, never, datetime(2030, 1, 1, tzinfo=UTC)).run_once()
    assert report.partitions_dropped == []
    assert report.chunks == 0
    assert sum(report.deleted.values()) == 0
    assert report.cutoffs == {}
    assert volume_by_day(engine) == (filled.day1, filled.day2)
    assert count(engine, t.held_documents) == 1
    assert count(engine, t.error_records) == 1
    assert count(engine, t.events) == 1


def add_times(engine: Engine, moments: list[datetime]) -> None:
    """One held document and one error record at each moment."""
    with engine.begin() as conn:
        for at in moments:
            conn.execute(
                insert(t.held_documents).values(
                    received_at=at, kind="rejected", source="test", reason="bad", body_gzip=b"x"
                )
            )
            conn.execute(
                insert(t.error_records).values(
                    occurred_at=at,
                    service="collector",
                    operation="fetch",
                    category="network",
                    severity="error",
                    error_type="Timeout",
                    message="timed out",
                )
            )


def remaining(engine: Engine, table: Table, column: str) -> list[datetime]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(table.c[column])).scalars())


def test_held_documents_and_error_records_expire_by_their_own_times(engine: Engine) -> None:
    now = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)
    moments = [now - timedelta(days=d, minutes=1) for d in range(0, 40, 3)]
    add_times(engine, moments)
    policy = RetentionPolicy(
        positions=0, transceivers=0, held_documents=10, error_records=20, events=0
    )
    report = job_for(engine, policy, now).run_once()

    held = [m for m in moments if m >= now - timedelta(days=10)]
    errors = [m for m in moments if m >= now - timedelta(days=20)]
    assert remaining(engine, t.held_documents, "received_at") == sorted(held)
    assert remaining(engine, t.error_records, "occurred_at") == sorted(errors)
    assert report.deleted == {
        "positions": 0,
        "transceivers": 0,
        "held_documents": len(moments) - len(held),
        "error_records": len(moments) - len(errors),
        "events": 0,
    }


def test_small_tables_are_deleted_in_bounded_chunks(engine: Engine) -> None:
    now = datetime(2026, 5, 31, tzinfo=UTC)
    old = [now - timedelta(days=40, seconds=s) for s in range(230)]
    recent = [now - timedelta(days=1, seconds=s) for s in range(7)]
    add_times(engine, old + recent)
    policy = RetentionPolicy(positions=0, transceivers=0, held_documents=30, error_records=30)
    report = job_for(engine, policy, now, chunk_rows=50).run_once()
    assert report.deleted["held_documents"] == report.deleted["error_records"] == 230
    assert report.chunks == 2 * 5  # 50 + 50 + 50 + 50 + 30 for each table
    assert remaining(engine, t.held_documents, "received_at") == sorted(recent)
    assert remaining(engine, t.error_records, "occurred_at") == sorted(recent)


def add_events(engine: Engine, moments: list[datetime], per_moment: int = 1) -> None:
    """``per_moment`` events at each moment, as one snapshot publishes several at one time."""
    events = [
        Event.create(
            AtisChanged(
                session_id=n,
                cid=1_000_000 + n,
                callsign="EGLL_ATIS",
                frequency="128.075",
                atis_code="A",
                text=None,
            ),
            time=at,
            source="test",
        )
        for at in moments
        for n in range(per_moment)
    ]
    EventLog(DatabaseService.for_engine(engine)).write(events)


def test_events_expire_by_their_time_in_bounded_chunks(engine: Engine) -> None:
    now = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)
    old = [now - timedelta(days=40, seconds=15 * s) for s in range(9)]
    recent = [now - timedelta(days=1, seconds=15 * s) for s in range(2)]
    add_events(engine, old + recent, per_moment=3)  # chunks end in the middle of an instant
    add_times(engine, old)
    policy = RetentionPolicy(
        positions=0, transceivers=0, held_documents=0, error_records=0, events=30
    )
    report = job_for(engine, policy, now, chunk_rows=4).run_once()
    assert report.deleted["events"] == 27
    assert report.chunks == 7  # 4 * 6 + 3
    assert report.cutoffs == {"events": now - timedelta(days=30)}
    assert remaining(engine, t.events, "time") == sorted(recent * 3)
    assert count(engine, t.held_documents) == count(engine, t.error_records) == len(old)
    assert count(engine, t.dead_letters) == 0


def test_dead_letters_are_not_expired(engine: Engine) -> None:
    now = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)
    add_events(engine, [now - timedelta(days=400)])
    (event,) = EventLog(DatabaseService.for_engine(engine)).read()
    old = now - timedelta(days=400)
    DeadLetterQueue(DatabaseService.for_engine(engine)).put(
        [NewDeadLetter(event, "stats", "RuntimeError", "handler", "boom", 3, old, old)]
    )
    report = job_for(engine, RetentionPolicy(events=1, error_records=1), now).run_once()
    assert report.deleted["events"] == 1
    assert count(engine, t.dead_letters) == 1


# ----- SQLite: chunked deletes of the volume tables ---------------------------------------


def test_sqlite_volume_tables_are_deleted_in_many_small_chunks(engine: Engine) -> None:
    require_sqlite(engine)
    filled = fill_two_days(engine)
    assert filled.day1["positions"] > 2000
    history = history_counts(engine)
    report = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT, chunk_rows=100).run_once()

    expected_chunks = sum(-(-n // 100) for n in filled.day1.values())
    assert report.chunks == expected_chunks > 1
    assert report.deleted["positions"] == filled.day1["positions"]
    assert report.deleted["transceivers"] == filled.day1["transceivers"]
    assert volume_by_day(engine) == ({"positions": 0, "transceivers": 0}, filled.day2)
    assert history_counts(engine) == history


# ----- PostgreSQL: partitions -------------------------------------------------------------


def test_postgresql_drops_an_expired_days_partition_and_keeps_the_current_one(
    engine: Engine,
) -> None:
    require_postgresql(engine)
    filled = fill_two_days(engine)
    history = history_counts(engine)
    for table in ("positions", "transceivers"):
        assert {partition_name(table, DAY1), partition_name(table, DAY2)} <= children(engine, table)

    report = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT, partitions=filled.partitions).run_once()

    for table in ("positions", "transceivers"):
        assert partition_name(table, DAY1) in report.partitions_dropped
        assert not partition_exists(engine, partition_name(table, DAY1))
        assert partition_name(table, DAY1) not in children(engine, table)
        assert partition_exists(engine, partition_name(table, DAY2))
        assert partition_name(table, DAY2) in children(engine, table)
    assert volume_by_day(engine) == ({"positions": 0, "transceivers": 0}, filled.day2)
    assert history_counts(engine) == history
    # The day was forgotten: a late snapshot of that day gets its partitions back.
    filled.partitions.ensure_for(engine, day_bounds(DAY1)[0])
    assert partition_exists(engine, partition_name("positions", DAY1))


def test_postgresql_retention_creates_partitions_ahead(engine: Engine) -> None:
    require_postgresql(engine)
    now = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    RetentionJob(
        engine,
        VOLUME_ONLY,
        chunk_rows=100,
        partitions=PartitionManager(),
        clock=lambda: now,
        ahead_days=2,
    ).run_once()
    for table in ("positions", "transceivers"):
        for day in (date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)):
            assert partition_exists(engine, partition_name(table, day))
        assert not partition_exists(engine, partition_name(table, date(2026, 3, 13)))


def test_postgresql_partitions_of_one_day_created_at_once_by_many_callers(
    engine: Engine,
) -> None:
    """Retention's look-ahead and the first snapshot of a day (each with its own manager, on
    their own threads) may create the same partitions at the same moment: CREATE TABLE IF NOT
    EXISTS alone is not safe against that on PostgreSQL, and the loser's snapshot was held as
    failed. Every caller must return with the partitions there."""
    require_postgresql(engine)
    day = date(2031, 7, 1)
    start, _ = day_bounds(day)
    callers = 8
    barrier = threading.Barrier(callers, timeout=30)
    failures: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            PartitionManager().ensure_for(engine, start)
        except BaseException as exc:  # reported below, with its type
            failures.append(exc)

    for _attempt in range(5):
        threads = [threading.Thread(target=create) for _ in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, [f"{type(e).__name__}: {e}"[:300] for e in failures]
        for table in ("positions", "transceivers"):
            assert partition_exists(engine, partition_name(table, day))
        with engine.begin() as conn:
            for table in ("positions", "transceivers"):
                conn.execute(text(f"DROP TABLE {partition_name(table, day)}"))
        barrier.reset()


def test_postgresql_skips_a_partition_whose_lock_is_busy(engine: Engine) -> None:
    require_postgresql(engine)
    filled = fill_two_days(engine)
    busy = partition_name("positions", DAY1)
    with engine.connect() as reader:
        # An open reading transaction holds its lock on the partition until it ends.
        reader.execute(text(f"SELECT count(*) FROM {busy}"))
        report = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT, lock_timeout=0.2).run_once()
        assert report.partitions_skipped == [busy]
        assert report.partitions_dropped == [partition_name("transceivers", DAY1)]
        reader.rollback()
    assert partition_exists(engine, busy)
    retry = job_for(engine, VOLUME_ONLY, DAY1_EXPIRED_AT).run_once()
    assert retry.partitions_dropped == [busy]
    assert retry.partitions_skipped == []
    assert volume_by_day(engine)[1] == filled.day2


# ----- the periodic runner ----------------------------------------------------------------


async def _run_until(
    job: RetentionJob, interval: float, runs: int, events: list[MutableMapping[str, Any]]
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(job, interval, stop))
    for _ in range(500):  # at most ~5 s
        if len([e for e in events if str(e["event"]).startswith("retention run")]) >= runs:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


def test_run_periodically_runs_until_stopped(engine: Engine) -> None:
    now = datetime(2026, 5, 31, tzinfo=UTC)
    add_times(engine, [now - timedelta(days=90), now])
    policy = RetentionPolicy(positions=0, transceivers=0, held_documents=30, error_records=30)
    with structlog.testing.capture_logs() as events:
        asyncio.run(_run_until(job_for(engine, policy, now), 0.02, 2, events))
    summaries = [e for e in events if e["event"] == "retention run"]
    assert len(summaries) >= 2
    assert summaries[0]["held_documents_deleted"] == 1
    assert summaries[1]["held_documents_deleted"] == 0
    assert remaining(engine, t.held_documents, "received_at") == [now]


def test_run_periodically_logs_failures_and_keeps_going(tmp_path: Path) -> None:
    # A database without the schema: every run fails.
    empty = create_db_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        job = job_for(empty, RetentionPolicy(), datetime(2026, 5, 31, tzinfo=UTC))
        with structlog.testing.capture_logs() as events:
            asyncio.run(_run_until(job, 0.02, 3, events))
    finally:
        empty.dispose()
    failures = [e for e in events if e["event"] == "retention run failed"]
    assert len(failures) >= 3
    assert all(e["log_level"] == "error" for e in failures)


def test_policy_from_settings_and_report_summary() -> None:
    settings = Settings(
        retention_positions_days=3,
        retention_transceivers_days=0,
        retention_held_documents_days=5,
        retention_error_records_days=6,
        retention_events_days=8,
    )
    policy = RetentionPolicy.from_settings(settings)
    assert policy == RetentionPolicy(3, 0, 5, 6, 8)
    summary = RetentionReport().summary()
    assert summary["positions_deleted"] == 0
    assert summary["partitions_dropped"] == []
    with pytest.raises(ValueError, match="must be >= 0"):
        RetentionPolicy(positions=-1)


def test_retention_goes_through_the_database_service(engine: Engine) -> None:
    """Its statements are counted and timed with every other query (the service's stats)."""
    filled = fill_two_days(engine)
    db = DatabaseService.for_engine(engine)
    RetentionJob(
        db,
        VOLUME_ONLY,
        chunk_rows=5000,
        partitions=filled.partitions,
        clock=lambda: DAY1_EXPIRED_AT,
        chunk_pause=0.0,
    ).run_once()
    names = set(db.query_summaries())
    expected = (
        {"retention.positions.partitions", "retention.positions.drop"}
        if on_postgresql(engine)
        else {"retention.positions.bound", "retention.positions.delete"}
    )
    assert expected <= names, names
